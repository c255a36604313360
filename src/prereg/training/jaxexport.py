"""Traced JAX programs kept on disk (``jax.export``), so that a new process skips tracing.

``jax.jit`` traces a function and lowers it to StableHLO in every new process; only then can
JAX's persistent compilation cache (:mod:`.jaxcache`) skip XLA's compile.  For exp9's programs
tracing and lowering cost 0.2-1 s each, more than a small cell's whole training, and every job
of a sweep runs in a fresh process or worker.  :func:`cached_jit` exports the traced program
once (StableHLO plus its calling convention), keeps it in ``<JAX cache dir>/prereg-exported/``
and calls the stored program in every later process.

The key is everything the traced program depends on: the function (module and name), the
source of the whole prereg package (an edit to any file changes every key), the file that
defines the function, the versions of jax, jaxlib, optax and numpy, JAX's configuration (x64,
matmul precision...), the backend, the static arguments' values and the other arguments' tree
structure, shapes and dtypes.  So a cached function must be a module-level pure function of its
arguments and of that code: it may not close over data, and takes named parameters only (no
``*args``).

The program that runs is the exported one on a first call too, so a cold process and a warm one
compute the same bits (and the same as ``jax.jit``: tests/test_trace_cache.py).  With no
compilation cache directory configured (``jax_compilation_cache_dir`` unset;
:func:`.jaxcache.enable_compilation_cache` sets it), or with ``PREREG_TRACE_CACHE=0`` in the
environment, it is plain ``jax.jit``.  An entry that cannot be read is traced again and
replaced; a function JAX cannot export or serialize runs as plain ``jax.jit``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import os
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("prereg")

#: Bump when the entry layout changes (old entries are then never read).
FORMAT = 1
SUBDIR = "prereg-exported"


@functools.cache
def _code_fingerprint() -> str:
    """Hash of prereg's own source (every ``.py`` file of the package) and the versions of the
    libraries traced programs are built from; computed once per process."""
    from importlib.metadata import PackageNotFoundError, version

    import prereg

    digest = hashlib.sha256()
    root = Path(prereg.__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    for name in ("jax", "jaxlib", "optax", "numpy"):
        try:
            digest.update(f"{name}=={version(name)}".encode())
        except PackageNotFoundError:
            digest.update(f"{name} absent".encode())
    return digest.hexdigest()


#: JAX options that change what is logged or cached, not the program (left out of the key).
_NOT_SEMANTIC = ("cache", "log", "traceback", "explain", "profil")


@functools.cache
def _file_fingerprint(fun: Callable[..., Any]) -> str:
    """Hash of the file that defines ``fun`` (a function outside prereg: a test's, a study's
    own); '' when it has none. Read once per process, as prereg's own source is."""
    try:
        source = inspect.getsourcefile(fun)
        return hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else ""
    except (OSError, TypeError):
        return ""


#: The settings text of each configuration seen (rendering it costs ~0.3 ms, on every call).
_SETTINGS: dict[tuple, str] = {}


def _jax_settings() -> str:
    """JAX's configuration values (x64, precision, ...) but those in :data:`_NOT_SEMANTIC`, and
    the backend; rendered once per configuration (a later ``jax.config.update`` is a new one)."""
    import jax

    snapshot = tuple(jax.config.values.items())
    try:
        return _SETTINGS[snapshot]
    except KeyError:
        pass
    except TypeError:  # an unhashable option value: render it every time
        return _settings_text(snapshot, jax.default_backend())
    text = _SETTINGS[snapshot] = _settings_text(snapshot, jax.default_backend())
    return text


def _settings_text(items: tuple, backend: str) -> str:
    values = {k: v for k, v in items if not any(w in k for w in _NOT_SEMANTIC)}
    return f"{sorted(values.items(), key=lambda kv: kv[0])!r} backend={backend}"


def _aval_text(leaves: Iterable[Any]) -> str:
    """Shape, dtype and weak type of each argument leaf (what a traced program is specific to)."""
    import jax

    parts = []
    for leaf in leaves:
        aval = jax.typeof(leaf)
        parts.append(f"{aval.shape}:{aval.dtype}:{getattr(aval, 'weak_type', False)}")
    return ";".join(parts)


def cache_root() -> Path | None:
    """``<jax_compilation_cache_dir>/prereg-exported``; None when JAX caches nothing on disk or
    ``PREREG_TRACE_CACHE=0`` turns the traced-program cache off."""
    import jax

    where = jax.config.jax_compilation_cache_dir
    if not where or os.environ.get("PREREG_TRACE_CACHE", "1") == "0":
        return None
    return Path(where) / SUBDIR


class CachedJit:
    """``jax.jit(fun, static_argnames=...)`` whose traced programs persist across processes."""

    def __init__(self, fun: Callable[..., Any], static_argnames: tuple[str, ...]) -> None:
        import jax

        self.fun = fun
        self.static_argnames = static_argnames
        self.signature = inspect.signature(fun)
        kinds = {p.kind for p in self.signature.parameters.values()}
        unnamed = {inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL,
                   inspect.Parameter.VAR_KEYWORD}  # fmt: skip
        if kinds & unnamed:  # the program calls the function by parameter name
            raise TypeError(f"cached_jit: {fun.__qualname__} must take named parameters only")
        self.jitted = jax.jit(fun, static_argnames=static_argnames)
        self.programs: dict[str, tuple[Callable[..., Any], Any]] = {}
        functools.update_wrapper(self, fun)

    def _cache_size(self) -> int:
        """Distinct programs this process has traced or loaded (as ``jax.jit``'s own count)."""
        return len(self.programs) + self.jitted._cache_size()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        root = cache_root()
        if root is None:
            return self.jitted(*args, **kwargs)
        import jax

        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        static = {k: v for k, v in bound.arguments.items() if k in self.static_argnames}
        dynamic = {k: v for k, v in bound.arguments.items() if k not in self.static_argnames}
        leaves, treedef = jax.tree.flatten(dynamic)
        key = self._key(static, leaves, treedef)
        if key not in self.programs:
            self.programs[key] = self._program(root / f"{key}.bin", static, leaves, treedef)
        call, out_tree = self.programs[key]
        if out_tree is None:  # not exportable: plain jit
            return call(*args, **kwargs)
        return jax.tree.unflatten(out_tree, call(*jax.device_put(leaves, jax.devices()[0])))

    def _key(self, static: dict[str, Any], leaves: list[Any], treedef: Any) -> str:
        text = "\n".join(
            [
                f"format {FORMAT}",
                f"{self.fun.__module__}.{self.fun.__qualname__}",
                _code_fingerprint(),
                _file_fingerprint(self.fun),
                _jax_settings(),
                repr(sorted(static.items())),
                repr(treedef),
                _aval_text(leaves),
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def _program(
        self, path: Path, static: dict[str, Any], leaves: list[Any], treedef: Any
    ) -> tuple[Callable[..., Any], Any]:
        """(jitted call of the exported program, output tree): from ``path``, else exported now
        and stored there; ``(plain jit, None)`` if JAX cannot export this function."""
        import jax
        from jax import export

        stored = _read(path)
        if stored is not None:
            return jax.jit(stored[0].call), stored[1]
        found: dict[str, Any] = {}

        def flat(*flat_args: Any) -> list[Any]:
            out = self.fun(**jax.tree.unflatten(treedef, flat_args), **static)
            out_leaves, found["tree"] = jax.tree.flatten(out)
            return out_leaves

        try:
            exported = export.export(jax.jit(flat))(*leaves)
            blob = bytes(exported.serialize())
        except Exception as exc:  # noqa: BLE001 - e.g. a custom call JAX will not serialize
            log.debug("%s not exportable (%s); plain jax.jit", self.fun.__qualname__, exc)
            return self.jitted, None
        _write(path, pickle.dumps((FORMAT, blob, found["tree"])))
        return jax.jit(exported.call), found["tree"]


def _read(path: Path) -> tuple[Any, Any] | None:
    """(exported program, output tree) stored at ``path``, or None (absent or unreadable)."""
    from jax import export

    try:
        fmt, blob, out_tree = pickle.loads(path.read_bytes())
        if fmt != FORMAT:
            return None
        return export.deserialize(bytearray(blob)), out_tree
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - truncated, damaged, written by another layout
        log.warning("traced-program cache entry %s unreadable (%s); traced again", path, exc)
        return None


def _write(path: Path, data: bytes) -> None:
    """Store an entry atomically (a reader sees all of it or none); a failure only costs a
    trace in the next process."""
    from prereg.training.jaxcache import _write_atomically

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data)
    except OSError as exc:
        log.debug("traced-program cache entry %s not written (%s)", path, exc)


def cached_jit(
    fun: Callable[..., Any] | None = None, *, static_argnames: Iterable[str] = ()
) -> Any:
    """Decorator: :class:`CachedJit` of ``fun`` (``@cached_jit(static_argnames=(...))``)."""
    names = tuple(static_argnames)
    if fun is None:
        return lambda f: CachedJit(f, names)
    return CachedJit(fun, names)
