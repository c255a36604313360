"""prereg runs from a wheel: ``pip install`` (not editable) into a fresh venv, then ``prereg run``
in an empty directory writes its sweep under that directory's ``outputs/`` and prints the verdict.

The venv sees this interpreter's site-packages for the heavy dependencies (JAX, Hydra...), but
prereg itself and its Hydra plugins come from the wheel: the test checks where they load from.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PREREG_EXPERIMENTS")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_wheel_install_runs_a_sweep_from_an_empty_directory(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a clean copy: no build/ or egg-info of the editable install
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", "outputs", "build", "*.egg-info", "__pycache__", "notebooks", "benchmarks", "tests",
        "examples",
    ))  # fmt: skip
    wheels = tmp_path / "wheels"
    # pip's isolated build environment fetches setuptools from the package index, as a user's does
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                  str(src)], tmp_path)  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("prereg-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = _run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]

    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run([str(python), "-c", "import prereg, hydra_plugins.prereg_launchers.launcher as l;"
                  "print(prereg.__file__); print(l.__file__)"], empty)  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert all(str(env_dir) in line for line in where.stdout.split()), where.stdout

    prereg = env_dir / "bin" / "prereg"
    helped = _run([str(prereg), "--help"], empty)
    assert helped.returncode == 0
    for command in ("run", "verdict", "compare", "status", "best-state"):
        assert command in helped.stdout
    studies = _run([str(prereg), "run", "--help"], empty)
    assert studies.returncode == 0 and "ppo_ladder" in studies.stdout and "exp9" in studies.stdout

    proc = _run([str(prereg), "run", "-m", "arm=baseline,primary", "cell=n4m2",
                 "registration.step_cap=5", "hydra/launcher=local"], empty)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (empty / "outputs" / "multirun").glob("*/*")
    verdict = json.loads((sweep / "verdict.json").read_text())
    assert verdict["outcome"]["number"] == 0  # 5 steps: not the registered set-up
    assert "verdict written to" in proc.stdout and "Outcome" in proc.stdout
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name != "plots") == [
        ".submitit", "arm=baseline,cell=n4m2,registration.step_cap=5",
        "arm=primary,cell=n4m2,registration.step_cap=5",
    ]  # fmt: skip
