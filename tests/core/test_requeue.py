"""A run stopped by submitit's requeue says ``requeued`` in ``run.json`` (issue 14, part 3).

submitit's SIGUSR2 handler (the time-limit / preemption signal) checkpoints the job, requeues it
and exits; prereg's launchers see the signal first wherever it lands in the job's process, so
the stopped attempt is recorded ``requeued`` (naming submitit's requeue) before submitit acts,
and the job starts again and resumes.  Here through ``hydra/launcher=local``: submitit's own
local executor, whose requeue restarts the job at once (no SLURM needed); the same on the real
cluster is in ``tests/launchers/test_slurm_sweeps.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import REPO
from launchers.slurm_helpers import wait_until

from prereg.core import requeue

# ~4 s of training after the first checkpoint (as the SLURM requeue test): a signal sent once
# the first checkpoint exists lands mid-run
STEPS, CELL = 2000, "n5m3"


def test_submitits_requeue_is_the_answer_without_asking_slurm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SLURM may not count the restart submitit asked for yet: the note decides."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text('#!/bin/sh\necho "JobId=$4 JobState=RUNNING Restarts=1"\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(requeue, "_noted", [])
    env = {"SLURM_JOB_ID": "77", "SLURM_ARRAY_JOB_ID": "76", "SLURM_ARRAY_TASK_ID": "3"}
    env["SLURM_RESTART_COUNT"] = "1"
    assert requeue.requeue_note(env) is None  # Restarts not above this attempt's count
    note = requeue.note_submitit_requeue(env)
    assert note == "submitit requeued job 76_3 (restart 2); it resumes from its newest checkpoint"
    assert requeue.requeue_note(env) == note
    monkeypatch.setattr(requeue, "_noted", [])
    local = requeue.note_submitit_requeue({"SUBMITIT_LOCAL_JOB_ID": "4242"})
    assert local.startswith("submitit requeued local job 4242; ")


def run_dir_of(sweep: Path) -> Path:
    return sweep / f"arm=primary,cell={CELL},registration.step_cap={STEPS}"


def read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def local_sweep(tmp_path: Path, signal_when: Callable[[Path], int | None]) -> dict[str, Any]:
    """One exp9 job through ``hydra/launcher=local``; SIGUSR2 to the job's process once
    ``signal_when(run_dir)`` gives its pid. The record the stopped attempt left (seen before
    the restart overwrote it); the sweep must then end with exit status 0."""
    sweep = tmp_path / "sweep"
    run_dir = run_dir_of(sweep)
    out = tmp_path / "sweep.log"
    with open(out, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "run.py"), "-m", "hydra/launcher=local", "arm=primary",
             f"cell={CELL}", f"registration.step_cap={STEPS}", "exp9.chunk_steps=100",
             f"hydra.sweep.dir={sweep}"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            pid = wait_until(lambda: signal_when(run_dir), 180, 0.05, "the moment to signal")
            os.kill(pid, signal.SIGUSR2)

            def stopped() -> dict[str, Any] | None:
                r = read(run_dir / "run.json") or {}
                return r if r.get("status") not in (None, "running") else None

            record = wait_until(stopped, 120, 0.02, "the stopped attempt's record")
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, out.read_text()[-3000:]
    final = read(run_dir / "run.json") or {}
    assert final["status"] == "completed", final
    assert len(pd.read_csv(run_dir / "metrics.csv")) == STEPS
    job_log = "".join(p.read_text() for p in run_dir.glob("*.log"))
    return {"stopped": record, "final": final, "log": job_log}


def assert_requeued_by_submitit(seen: dict[str, Any]) -> None:
    """The stopped attempt said ``requeued``, naming submitit's requeue, in run.json and in the
    job's log (which keeps it after the restart)."""
    stopped = seen["stopped"]
    assert stopped["status"] == "requeued", stopped
    why = "RunInterrupted: interrupted by signal SIGUSR2; submitit requeued local job "
    assert stopped["reason"].startswith(why), stopped["reason"]
    assert stopped["reason"].split("; ", 1)[1] in seen["log"]


def test_a_sigusr2_mid_run_is_recorded_requeued_and_the_run_resumes(tmp_path: Path) -> None:
    def checkpointed(run_dir: Path) -> int | None:
        r = read(run_dir / "run.json") or {}
        ready = r.get("status") == "running" and any((run_dir / "checkpoints").glob("step_*"))
        return int(r["pid"]) if ready else None

    seen = local_sweep(tmp_path, checkpointed)
    assert_requeued_by_submitit(seen)
    assert seen["stopped"]["attempts"] == 1 and seen["final"]["attempts"] == 2
    assert "resuming " in seen["log"]  # from the checkpoint of the interrupted update


def test_a_sigusr2_before_the_run_starts_is_recorded_requeued(tmp_path: Path) -> None:
    """The signal lands after the job claimed its directory, before the run's own guard
    (while the runner imports JAX): submitit's handler would have requeued it unrecorded."""

    def claimed(run_dir: Path) -> int | None:
        lease, r = read(run_dir / "lease.json"), read(run_dir / "run.json") or {}
        return int(lease["pid"]) if lease and r.get("job") and "status" not in r else None

    for attempt in range(5):  # the window (~1 s) can be missed on a busy machine: try again
        (where := tmp_path / f"try{attempt}").mkdir()
        seen = local_sweep(where, claimed)
        assert_requeued_by_submitit(seen)
        if "attempts" not in seen["stopped"]:  # landed before the run started: the case here
            break
        print(f"try {attempt}: the signal landed after the run had started; trying again")
    assert seen["stopped"]["job"]["overrides"] and "attempts" not in seen["stopped"]
    assert seen["final"]["attempts"] == 1  # the stopped attempt never started the run
