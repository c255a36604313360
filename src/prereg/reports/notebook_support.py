"""Glue for the analysis notebooks in ``notebooks/``: which sweep directory they read.

The notebooks start with ``SWEEP = "outputs/multirun/<date>/<time>"``; Jupyter runs a
notebook's kernel in the notebook's own directory (``notebooks/``), and the tests point the
notebooks at a temporary sweep through an environment variable.  :func:`sweep_dir` resolves
both, so every notebook reads its sweep the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PREREG_SWEEP"


def sweep_dir(default: str | os.PathLike[str], env_var: str = ENV_VAR) -> Path:
    """The sweep directory a notebook reads: ``$PREREG_SWEEP`` when set, else ``default``.

    A relative path is looked up from the current directory, then from each of its parents,
    so ``outputs/multirun/...`` (relative to the repository root) also works from
    ``notebooks/``.  Raises FileNotFoundError saying where it looked and how to set it.
    """
    raw = os.environ.get(env_var) or os.fspath(default)
    path = Path(raw).expanduser()
    cwd = Path.cwd()
    bases = [Path()] if path.is_absolute() else [cwd, *cwd.parents]
    for base in bases:
        if (base / path).is_dir():
            return (base / path).resolve()
    where = str(path) if path.is_absolute() else f"{cwd} and its parents"
    raise FileNotFoundError(
        f"sweep directory {raw!r} not found (looked in {where}): set SWEEP in the first cell "
        f"to a sweep directory (outputs/multirun/<date>/<time>) or the environment variable "
        f"{env_var}"
    )
