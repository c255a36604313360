"""A two-job exp9 sweep whose first job's process is killed with SIGKILL mid-run: the launcher
tests' shared set-up (the local launcher's job process, the pool's worker) and the checks that
hold for every launcher (the dead job recorded, the other job and the verdict kept)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers import REPO
from launchers.slurm_helpers import wait_until

STEPS = 200


@dataclass
class KilledSweep:
    sweep: Path
    victim: Path  # the job killed while running
    survivor: Path  # the other job
    returncode: int
    out: str  # the sweep's stdout and stderr


def sweep_with_a_killed_job(tmp_path: Path, *launcher: str) -> KilledSweep:
    """Run ``arm=baseline,primary cell=n4m2`` with the ``launcher`` overrides; SIGKILL the
    baseline job's process as soon as its run.json says running; wait for the sweep."""
    sweep = tmp_path / "sweep"
    log = open(tmp_path / "sweep.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "-m", *launcher, "arm=baseline,primary",
         "cell=n4m2", f"registration.step_cap={STEPS}", "exp9.chunk_steps=20",
         f"hydra.sweep.dir={sweep}"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    victim = sweep / f"arm=baseline,cell=n4m2,registration.step_cap={STEPS}"
    survivor = sweep / f"arm=primary,cell=n4m2,registration.step_cap={STEPS}"

    def running() -> dict | None:
        try:
            record = json.loads((victim / "run.json").read_text())
        except (OSError, ValueError):
            return None
        return record if record.get("status") == "running" else None

    try:
        os.kill(int(wait_until(running, timeout=120, interval=0.05)["pid"]), signal.SIGKILL)
        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    out = (tmp_path / "sweep.log").read_text()
    return KilledSweep(sweep, victim, survivor, proc.returncode, out)


def assert_the_killed_job_is_recorded_and_the_rest_kept(k: KilledSweep) -> None:
    """Exit 1 after the verdict, naming the killed job; its run.json failed "killed: ..."; the
    other job completed; the verdict counts one completed run and names the dead one."""
    assert k.returncode == 1, k.out[-3000:]
    assert "1 of 2 jobs died without a result" in k.out
    assert k.out.strip().splitlines()[-1] == (
        f"error: 1 of 2 jobs did not complete: 1 failed ({k.victim.name})"
    )
    dead = json.loads((k.victim / "run.json").read_text())
    assert dead["status"] == "failed"
    assert dead["reason"].startswith("killed: job process ended without a result (exit status")
    assert json.loads((k.survivor / "run.json").read_text())["status"] == "completed"
    v = json.loads((k.sweep / "verdict.json").read_text())
    assert v["runs"]["completed"] == 1
    assert v["runs"]["not_completed"]["baseline/n4m2"].startswith("failed: killed: job process")
