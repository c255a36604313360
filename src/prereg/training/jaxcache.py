"""The persistent JAX compilation cache, under the user's cache directory.

One cache directory is shared by every process on the machine (two sweeps at once, the
jobs of a local or SLURM array).  JAX's own file cache (``jax._src.lru_cache.LRUCache``,
jax 0.4-0.10) writes an entry with a plain ``write_bytes``: a process reading the entry
while another writes it sees half of it, and a process killed mid-write leaves a truncated
entry.  JAX tolerates a bad entry (it warns "Error reading persistent compilation cache
entry" and compiles again) but never repairs it, since ``put`` skips keys that exist: every
later process warns and recompiles.  :class:`AtomicFileCache` closes both holes: an entry
is written to a temporary file in the cache directory and renamed into place, and an entry
that does not decompress is deleted on read so that the fresh compile replaces it.

JAX has no public hook for the cache object; the subclass is installed by pointing
``jax._src.compilation_cache.LRUCache`` (the name its ``get_file_cache`` builds the cache
from) at it.  If a later JAX moves that name, JAX's own cache is used unchanged.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger("prereg")


def cache_dir() -> Path:
    """``$PREREG_JAX_CACHE``, else ``$XDG_CACHE_HOME/prereg/jax``, else ``~/.cache/prereg/jax``."""
    if os.environ.get("PREREG_JAX_CACHE"):
        return Path(os.environ["PREREG_JAX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prereg" / "jax"


def _atomic_cache_class() -> type | None:
    """:class:`AtomicFileCache`, built on the installed JAX's ``LRUCache`` (None if absent)."""
    try:
        from jax._src import compilation_cache
        from jax._src.lru_cache import _ATIME_SUFFIX, _CACHE_SUFFIX, LRUCache
    except ImportError:
        return None
    existing = getattr(compilation_cache, "LRUCache", None)
    if existing is not LRUCache:
        return existing if getattr(existing, "prereg_atomic", False) else None

    class AtomicFileCache(LRUCache):
        """JAX's file cache with atomic ``put`` and self-repairing ``get`` (module doc)."""

        prereg_atomic = True

        def get(self, key: str) -> bytes | None:
            value = super().get(key)
            if value is None or _decompresses(value):
                return value
            log.warning("JAX cache entry %s is damaged; it is compiled again", key)
            try:
                (self.path / f"{key}{_CACHE_SUFFIX}").unlink()
            except OSError:
                pass
            return None

        def put(self, key: str, value: bytes) -> None:
            if not key:
                raise ValueError("key cannot be empty")
            path = self.path / f"{key}{_CACHE_SUFFIX}"
            if self.eviction_enabled:
                if len(value) > self.max_size:
                    return super().put(key, value)  # JAX warns and skips it
                self.lock.acquire(timeout=self.lock_timeout_secs)
            try:
                if path.exists():
                    return None
                self._evict_if_needed(additional_size=len(value))
                _write_atomically(Path(str(path)), value)
                if self.eviction_enabled:  # the access time, as JAX stores it
                    stamp = time.time_ns().to_bytes(8, "little")
                    _write_atomically(Path(str(self.path / f"{key}{_ATIME_SUFFIX}")), stamp)
            finally:
                if self.eviction_enabled:
                    self.lock.release()
            return None

    return AtomicFileCache


def _decompresses(value: bytes) -> bool:
    """True if a cache entry decompresses (a truncated or damaged one does not)."""
    from jax._src import compilation_cache

    try:
        compilation_cache.decompress_executable(value)
    except Exception:  # noqa: BLE001 - zlib.error, zstd errors: a damaged entry
        return False
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp file beside ``path``, then rename: readers see the whole entry or none.

    No fsync: a cache entry lost in a power cut is only compiled again.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def install_atomic_cache() -> bool:
    """Make JAX build its persistent cache as :class:`AtomicFileCache`; True if it does.

    A cache JAX already built in this process with its own class is reset, so the next
    compile re-creates it (same directory) with ours.
    """
    cls = _atomic_cache_class()
    if cls is None:
        log.debug("JAX's file cache class not found; using JAX's own (non-atomic) writes")
        return False
    from jax._src import compilation_cache

    compilation_cache.LRUCache = cls
    current = getattr(compilation_cache, "_cache", None)
    base = getattr(current, "_base_cache", current)  # VerificationCache wraps the file cache
    if current is not None and not isinstance(base, cls):
        compilation_cache.reset_cache()
    return True


def enable_compilation_cache() -> Path:
    """Turn on JAX's persistent cache in :func:`cache_dir`, with atomic entries."""
    import jax

    path = cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    install_atomic_cache()
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
