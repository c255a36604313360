"""``hydra.launcher.wait=false``: submit the array and a verdict job, return, finish later.

The first tests check the pieces without SLURM (the verdict job's script and flags, what is
recorded for a dead task); the last one runs a real sweep on the single-node cluster, re-runs
it while it is queued (nothing submitted twice) and cancels one task (the verdict job still
runs, names it, and the sweep's last line says so).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
from helpers import prereg_cli, run_cli
from launchers.slurm_helpers import cancel_sweep_jobs, squeue_state, wait_until

from hydra_plugins.prereg_launchers.submission import (
    already_submitted_message,
    record_dead_tasks,
    sbatch_verdict_args,
    verdict_script,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_the_verdict_job_runs_after_the_array_with_the_launchers_setup(tmp_path: Path) -> None:
    args = sbatch_verdict_args("77", {"mem_gb": 1, "partition": "gpu", "name": None}, tmp_path)
    assert "--dependency=afterany:77" in args and "--mem=1G" in args
    assert "--partition=gpu" in args and "--job-name=prereg-verdict" in args
    script = verdict_script(tmp_path / "my sweep", ["module load x"])
    lines = script.splitlines()
    assert lines[:2] == ["#!/bin/bash", "module load x"]
    assert lines[-1].endswith(f"-m hydra_plugins.prereg_launchers.submission '{tmp_path}/my sweep'")


def test_dead_tasks_are_written_failed_and_finished_ones_kept(tmp_path: Path) -> None:
    tasks = []
    for i, status in enumerate(["completed", "running", None, "failed"]):
        run = tmp_path / f"job{i}"
        run.mkdir()
        if status is not None:
            (run / "run.json").write_text(json.dumps({"status": status, "reason": "own"}))
        tasks.append({"task": i, "num": i, "overrides": [f"x={i}"], "run_dir": str(run)})
    record = {"array_job_id": "9", "tasks": tasks}
    # task 2 is absent from sacct: cancelled while pending; task 3 failed inside its own code
    states = {"9_0": "COMPLETED", "9_1": "FAILED", "9_3": "COMPLETED"}
    lines = record_dead_tasks(record, states, NOW)
    assert lines == [
        "#1 x=1 (killed by SLURM: state FAILED (job 9_1))",
        "#2 x=2 (killed by SLURM: state CANCELLED (job 9_2))",
    ]
    read = [json.loads((tmp_path / f"job{i}" / "run.json").read_text()) for i in range(4)]
    assert [r["status"] for r in read] == ["completed", "failed", "failed", "failed"]
    assert read[2]["job"] == {"overrides": ["x=2"]} and read[2]["slurm"]["array_task_id"] == "2"
    assert read[3]["reason"] == "own"
    text = already_submitted_message(
        tmp_path, {"array_job_id": "9", "verdict_job_id": "10"}, {"9_1": "RUNNING", "10": "PENDING"}
    )
    assert text.startswith("already on SLURM: array job 9 (1 running), verdict job 10 (PENDING)")
    assert "nothing submitted" in text


SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
    "hydra.launcher.signal_delay_s=30",
    "hydra.launcher.wait=false",
]


@pytest.mark.slurm
@pytest.mark.slow
def test_wait_false_returns_at_once_and_the_verdict_job_names_a_killed_task(
    slurm_cluster: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", *SLURM, "arm=baseline,primary", "cell=n4m2", "registration.step_cap=30"]
    args.append(f"hydra.sweep.dir={sweep}")
    go = tmp_path / "go"  # the tasks wait in their setup lines until the test creates it
    wait = f"while [ ! -e {go} ]; do sleep 0.2; done"
    args.append(f"hydra.launcher.setup=['export PYTHONUNBUFFERED=1','{wait}']")
    first = run_cli(*args, timeout=300)
    verdict = ""
    try:
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
        record = json.loads((sweep / "slurm_submission.json").read_text())
        array, verdict = record["array_job_id"], record["verdict_job_id"]
        assert f"as SLURM array job {array}, and verdict job {verdict}" in first.stdout
        assert f"sweep dir: {sweep}" in first.stdout
        assert f"python -m prereg status {sweep}" in first.stdout
        # it returned without waiting: the verdict job waits for the array
        assert squeue_state(verdict) == "PENDING", first.stdout
        assert not (sweep / "verdict.md").exists()
        again = run_cli(*args, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        assert f"already on SLURM: array job {array} (" in again.stdout, again.stdout[-2000:]
        assert f"verdict job {verdict} (PENDING)" in again.stdout
        assert "nothing submitted" in again.stdout
        assert json.loads((sweep / "slurm_submission.json").read_text()) == record

        subprocess.run(["scancel", f"{array}_1"], check=True, timeout=30)  # before it starts
        go.touch()

        wait_until(
            lambda: (sweep / "verdict.json").exists() and squeue_state(verdict) == "",
            timeout=400,
            interval=1.0,
            what="the verdict job",
        )
    except BaseException:
        cancel_sweep_jobs(sweep)
        if (sweep / "slurm_submission.json").exists():
            subprocess.run(["scancel", verdict], capture_output=True, timeout=30)
        raise
    out = (sweep / ".submitit" / f"verdict_{verdict}.out").read_text()
    victim = record["tasks"][1]
    name = Path(victim["run_dir"]).name
    assert f"1 of 2 tasks of array job {array} ended without a result" in out, out[-3000:]
    assert out.strip().splitlines()[-1] == f"error: 1 of 2 jobs did not complete: 1 failed ({name})"
    run = json.loads((Path(victim["run_dir"]) / "run.json").read_text())
    assert run["status"] == "failed"
    assert run["reason"] == f"killed by SLURM: state CANCELLED (job {array}_1)"
    v = json.loads((sweep / "verdict.json").read_text())
    assert v["runs"]["completed"] == 1 and (sweep / "plots").is_dir()
    status = prereg_cli("status", str(sweep))
    assert status.returncode == 1 and "1 completed, 1 failed" in status.stdout
