"""Atomic, checksummed checkpoints of any train state (PPO and exp9 alike).

Layout of a checkpoint directory::

    <dir>/state.npz        every array leaf of the state, keyed by its pytree path
    <dir>/checkpoint.json  {"format", "sha256" (of state.npz), "bytes", "n_arrays", "meta"}

Why this format: the state is flattened with ``jax.tree_util.tree_flatten_with_path``
into ``{path: numpy array}`` (``".params['actor']['hidden_0']['kernel']"``,
``".opt_state[1][0].mu['critic']..."``, ``".rng"`` ...) and written with
``numpy.savez``.  Unlike pickle it executes no code on load, does not depend on the
state's Python classes being importable (the env's state type, optax's NamedTuples),
and works for any pytree, which flax's msgpack state dicts do not (custom env-state
pytrees); unlike a bare leaf list it is readable and is restored by *name*, so a
mismatching trainer (other tier, num_envs, env) fails loudly instead of silently
mis-assigning arrays.  Restoring needs a template (``PPOTrainer.state_template()``),
see :func:`unflatten_like`.

Writes are atomic: everything goes into a temporary sibling directory that is then
renamed onto ``<dir>`` (an existing checkpoint there is first renamed aside, then
deleted), so a crash leaves either the old or the new checkpoint, never a mix: a write
that fails or is interrupted puts the old one back, and after a SIGKILL between the two
renames :func:`tidy` (run by :func:`latest_valid` on resume) does.  A truncated or
corrupted ``state.npz`` fails the sha256 check with :class:`CheckpointError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import jax
import numpy as np

from prereg.core.atomic import DIR_MODE, naming

log = logging.getLogger("prereg")

FORMAT = "prereg.checkpoint/1"
_LEFTOVER = re.compile(r"^\.(.+)\.(tmp|old|del)-[A-Za-z0-9_]+$")
STATE_FILE = "state.npz"
META_FILE = "checkpoint.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, corrupted or does not fit the trainer."""


def flatten_state(state) -> dict[str, np.ndarray]:
    """``{pytree path: numpy array}`` for every leaf of ``state``."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    flat = {}
    for path, leaf in leaves:
        arr = np.asarray(jax.device_get(leaf))
        if arr.dtype == object:
            raise CheckpointError(f"leaf {jax.tree_util.keystr(path)} is not a numeric array")
        flat[jax.tree_util.keystr(path)] = arr
    return flat


def unflatten_like(template, flat: dict[str, Any]):
    """Rebuild ``template``'s pytree from ``flat`` by path, checking shapes and dtypes.

    ``template`` may hold arrays or ``jax.ShapeDtypeStruct`` leaves (``jax.eval_shape``).
    Leaves come back as jax arrays.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    missing = [jax.tree_util.keystr(p) for p, _ in leaves if jax.tree_util.keystr(p) not in flat]
    if missing:
        raise CheckpointError(
            "checkpoint does not fit this trainer: "
            f"{len(missing)} arrays missing, e.g. {missing[0]}"
        )
    if len(flat) != len(leaves):
        known = {jax.tree_util.keystr(p) for p, _ in leaves}
        extra = sorted(set(flat) - known)
        raise CheckpointError(
            f"checkpoint does not fit this trainer: {len(extra)} unexpected arrays, e.g. {extra[0]}"
        )
    out = []
    for path, leaf in leaves:
        key = jax.tree_util.keystr(path)
        arr = np.asarray(flat[key])
        shape, dtype = tuple(np.shape(leaf)), np.dtype(leaf.dtype)
        if arr.shape != shape or arr.dtype != dtype:
            raise CheckpointError(
                f"checkpoint does not fit this trainer: {key} is {arr.dtype}{list(arr.shape)}, "
                f"expected {dtype}{list(shape)}"
            )
        out.append(jax.numpy.asarray(arr))
    return jax.tree_util.tree_unflatten(treedef, out)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(path_dir, state, meta: dict | None = None) -> Path:
    """Write ``state`` (any pytree of arrays) and JSON-able ``meta`` atomically to ``path_dir``.

    On any failure (an ``OSError`` then names the checkpoint) or interruption the previous
    checkpoint at ``path_dir``, if any, is left in place.
    """
    target = Path(path_dir)
    flat = flatten_state(state)
    buf = io.BytesIO()
    np.savez(buf, **flat)
    payload = buf.getvalue()
    record = {
        "format": FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "bytes": len(payload),
        "n_arrays": len(flat),
        "meta": meta or {},
    }
    try:
        record_text = json.dumps(record, indent=2, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint meta is not JSON-serialisable: {e}") from None
    tmp: Path | None = None
    old: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        os.chmod(tmp, DIR_MODE)
        _write(tmp / STATE_FILE, payload)
        _write(tmp / META_FILE, record_text.encode())
        _fsync_dir(tmp)
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
        os.rename(tmp, target)
        tmp = None
        _fsync_dir(target.parent)
    except OSError as exc:
        named = naming(exc, target)
        if named is exc:
            raise
        raise named from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if target.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:  # failed or interrupted between the renames: the old one goes back
                os.rename(old, target)
    return target


def tidy(ckpt_dir) -> None:
    """Finish what a killed :func:`save_checkpoint` left in ``ckpt_dir``.

    A temporary ``.<name>.tmp-*`` directory is an unfinished write and is deleted; an
    ``.<name>.old-*`` directory is the previous checkpoint, put back if ``<name>`` is
    missing (killed between the two renames), else deleted; a ``.<name>.del-*`` directory
    is an unfinished :func:`prune_periodic` and is deleted.
    """
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return
    for path in sorted(ckpt_dir.iterdir()):
        m = _LEFTOVER.match(path.name)
        if m is None or not path.is_dir():
            continue
        target = ckpt_dir / m.group(1)
        if m.group(2) == "old" and not target.exists():
            os.rename(path, target)
            log.warning("restored checkpoint %s that an interrupted write had moved aside", target)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _read_record(path: Path) -> tuple[dict, bytes]:
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path}: not a directory")
    try:
        record = json.loads((path / META_FILE).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: {META_FILE} missing") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: {META_FILE} unreadable ({e})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a {FORMAT} checkpoint")
    try:
        payload = (path / STATE_FILE).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} missing") from None
    if len(payload) != record.get("bytes") or hashlib.sha256(payload).hexdigest() != record.get(
        "sha256"
    ):
        raise CheckpointError(
            f"checkpoint {path}: {STATE_FILE} fails its sha256 check (corrupted or truncated)"
        )
    return record, payload


def load_checkpoint(path_dir) -> tuple[dict[str, np.ndarray], dict]:
    """``(flat_state, meta)``: ``{pytree path: numpy array}`` and the saved meta dict.

    Feed ``flat_state`` to ``PPOTrainer.restore`` (or :func:`unflatten_like`).
    Raises :class:`CheckpointError` (one line) if anything is missing or corrupt.
    """
    path = Path(path_dir)
    record, payload = _read_record(path)
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            flat = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any decode failure is a bad checkpoint
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} unreadable ({e})") from None
    if len(flat) != record.get("n_arrays"):
        raise CheckpointError(f"checkpoint {path}: array count does not match {META_FILE}")
    return flat, record.get("meta", {})


def is_checkpoint(path_dir) -> bool:
    """True if ``path_dir`` holds a complete checkpoint whose checksum verifies."""
    try:
        _read_record(Path(path_dir))
    except CheckpointError:
        return False
    return True


# ------------------------------------------------------------------ periodic checkpoints
_STEP = re.compile(r"^step_(\d+)$")


def periodic_name(step: int) -> str:
    """Directory name of the periodic checkpoint after ``step`` steps/updates."""
    return f"step_{step:08d}"


def _periodic(ckpt_dir: Path) -> list[tuple[int, Path]]:
    if not ckpt_dir.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP.match(p.name)))


def latest_valid(ckpt_dir) -> tuple[dict[str, np.ndarray], dict, Path] | None:
    """``(flat, meta, path)`` of the newest periodic checkpoint that verifies, or None.

    A corrupted or truncated newer checkpoint is skipped (and logged), so a resume falls
    back to the previous one instead of failing.  The directory is first :func:`tidy`-ed.
    """
    tidy(ckpt_dir)
    for _, path in reversed(_periodic(Path(ckpt_dir))):
        try:
            flat, meta = load_checkpoint(path)
        except CheckpointError as exc:
            log.warning("skipping unusable checkpoint: %s", exc)
            continue
        return flat, meta, path
    return None


def prune_periodic(ckpt_dir, keep: int = 2) -> None:
    """Delete all but the newest ``keep`` periodic checkpoints.

    Each is first renamed to a hidden name (atomic), so an interrupted deletion never leaves
    a half-deleted checkpoint under its own name; :func:`tidy` finishes it.
    """
    for _, path in _periodic(Path(ckpt_dir))[:-keep]:
        doomed = path.parent / f".{path.name}.del-{uuid.uuid4().hex[:8]}"
        os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
