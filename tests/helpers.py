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


def prereg_cli(*args: str, timeout: float = 300, env: dict | None = None):
    """``python -m prereg <args>`` (``env``: variables set on top of this process's); returns
    the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "prereg", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env is not None else None,
    )


def sibling_module(test_file: str, name: str):
    """The test module ``<dir of test_file>/<name>.py``: pytest's instance if already imported
    (so cached trainers are shared), else loaded from its path (``--import-mode=importlib``
    gives test modules no importable package name)."""
    import importlib.util

    path = Path(test_file).with_name(f"{name}.py").resolve()
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and Path(f).resolve() == path:
            return mod
    spec = importlib.util.spec_from_file_location(f"_prereg_tests_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def assert_refused_in_one_line(out: Path, *args: str, starts: str) -> None:
    """``run.py *args hydra.run.dir=out`` exits 2 with one stderr line starting ``starts``
    and creates nothing at ``out``."""
    proc = run_cli(*args, f"hydra.run.dir={out}", timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(starts), proc.stderr
    assert not out.exists()
