"""Shared test helpers (importable as `helpers`): run ``run.py`` and ``python -m prereg``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path = REPO, timeout: float = 900, env: dict | None = None):
    """``python run.py <args>`` in the repo; returns the CompletedProcess (text)."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def prereg_cli(*args: str, timeout: float = 300):
    """``python -m prereg <args>``; returns the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "prereg", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
