"""Non-finite values in a training run: find the first one, and fail the run saying where.

Both runners check every logged quantity and the parameters after each chunk.  The run then
fails with ``non-finite value at step k in <quantity>`` (its ``run.json`` reason) and keeps its
checkpoints: the newest one predates step k, so it is the last good state.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


class NonFiniteError(RuntimeError):
    """A logged quantity or a parameter became NaN or inf: the run fails at that step."""


def first_nonfinite(steps: np.ndarray, quantities: Mapping[str, Any]) -> tuple[int, str] | None:
    """``(step, name)`` of the earliest row holding a NaN/inf, or None when all are finite.

    ``quantities`` maps a name to an array whose first axis is aligned with ``steps`` (a logged
    column, or a parameter array per step); at the same step the first name in order wins.
    """
    first: tuple[int, str] | None = None
    for name, values in quantities.items():
        arr = np.asarray(values, dtype=float).reshape(len(steps), -1)
        rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        if len(rows) and (first is None or rows[0] < first[0]):
            first = (int(rows[0]), name)
    return None if first is None else (int(steps[first[0]]), first[1])


def nonfinite_error(step: int, quantity: str, ckpt_dir: Path) -> NonFiniteError:
    """The error a run fails with, naming the checkpoint it keeps (the last good state)."""
    from prereg.training.checkpoints import latest_valid

    found = latest_valid(ckpt_dir)
    kept = (
        f"last good checkpoint kept: {found[2].relative_to(ckpt_dir.parent)}"
        if found is not None
        else "no checkpoint yet"
    )
    return NonFiniteError(f"non-finite value at step {step} in {quantity}; {kept}")


def nonfinite_leaf(tree: Any, prefix: str) -> str | None:
    """``<prefix><path>`` of the first array leaf of a pytree holding a NaN/inf, else None."""
    import jax

    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        arr = np.asarray(leaf)
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            return prefix + jax.tree_util.keystr(path, simple=True, separator="/")
    return None
