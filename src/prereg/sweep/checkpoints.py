"""Single-file checkpoints with an embedded checksum, written atomically.

A checkpoint file is one JSON header line (format, SHA-256 of the payload, metadata)
followed by a pickle of a pytree of numpy arrays.  Pickle of plain numpy keeps any
optax/flax state shape without a template; the checksum makes a truncated or corrupted
file detectable, so resuming falls back to the previous checkpoint instead of crashing.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from prereg.sweep.atomic import atomic_write_bytes

FORMAT = "prereg-checkpoint-v1"


class CheckpointError(ValueError):
    """A file that is not a checkpoint, or one whose content does not match its checksum."""


def _to_numpy(tree: Any) -> Any:
    import jax

    return jax.tree_util.tree_map(lambda x: np.asarray(x) if hasattr(x, "shape") else x, tree)


def save_checkpoint(path: str | os.PathLike, tree: Any, meta: dict[str, Any]) -> Path:
    """Write ``tree`` (converted to numpy) and ``meta`` to ``path`` atomically."""
    payload = pickle.dumps(_to_numpy(tree), protocol=pickle.HIGHEST_PROTOCOL)
    header = {"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "meta": meta}
    atomic_write_bytes(path, json.dumps(header).encode() + b"\n" + payload)
    return Path(path)


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a checkpoint file (cheap: the payload is not read)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file")
    with open(path, "rb") as fh:
        line = fh.readline(1 << 20)
    try:
        header = json.loads(line)
    except ValueError:
        raise CheckpointError(f"{path} is not a prereg checkpoint") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a prereg checkpoint")
    return header


def load_checkpoint(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """(tree of numpy arrays, meta); raises :class:`CheckpointError` if corrupt."""
    path = Path(path)
    header = read_header(path)
    data = path.read_bytes()
    payload = data[data.index(b"\n") + 1 :]
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise CheckpointError(f"{path} is corrupted (checksum mismatch)")
    return pickle.loads(payload), header["meta"]


def is_checkpoint(path: str | os.PathLike) -> bool:
    """True if ``path`` is a complete, uncorrupted checkpoint."""
    try:
        load_checkpoint(path)
    except (CheckpointError, OSError, pickle.UnpicklingError, EOFError):
        return False
    return True


_STEP = re.compile(r"^step_(\d+)$")


def periodic_name(step: int) -> str:
    """File name of the periodic checkpoint after ``step`` steps/updates."""
    return f"step_{step:08d}"


def latest_valid(ckpt_dir: str | os.PathLike) -> tuple[Any, dict[str, Any], Path] | None:
    """The newest loadable periodic checkpoint in ``ckpt_dir`` (corrupt ones are skipped)."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP.match(p.name)))
    for _, path in reversed(found):
        try:
            tree, meta = load_checkpoint(path)
        except (CheckpointError, OSError, pickle.UnpicklingError, EOFError):
            continue
        return tree, meta, path
    return None


def prune_periodic(ckpt_dir: str | os.PathLike, keep: int = 2) -> None:
    """Delete all but the newest ``keep`` periodic checkpoints."""
    ckpt_dir = Path(ckpt_dir)
    found = sorted((int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP.match(p.name)))
    for _, path in found[:-keep]:
        path.unlink(missing_ok=True)
