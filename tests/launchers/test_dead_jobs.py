"""Jobs that die outside their own code: the records the launchers write (no SLURM needed),
the bounded local launcher end to end, and the SLURM fixture's skip-or-fail rule."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import REPO, prereg_cli
from launchers.killed_job import (
    STEPS,
    assert_the_killed_job_is_recorded_and_the_rest_kept,
    sweep_with_a_killed_job,
)
from launchers.slurm_helpers import skip_or_fail, wait_until

from hydra_plugins.prereg_launchers.dead_jobs import (
    DeadJob,
    base_state,
    dead_job_return,
    dead_jobs_message,
    death_reason,
    ended_in_queue,
    job_choices,
    killed_record,
    last_line,
    lost_state,
    parse_squeue,
    slurm_ids_of,
)

NOW = dt.datetime(2026, 1, 2, 3, 4, 10, tzinfo=dt.timezone.utc)
JOB = {"choices": {"arm": "primary"}, "overrides": ["arm=primary"]}


def test_death_reasons_name_the_state_and_the_job() -> None:
    assert death_reason("slurm", "FAILED", "123_4") == "killed by SLURM: state FAILED (job 123_4)"
    cancelled = death_reason("slurm", "CANCELLED by 0", "9")
    assert cancelled == "killed by SLURM: state CANCELLED (job 9)"
    assert (
        death_reason("local", "FINISHED", "77", exit_status=-9)
        == "killed: job process ended without a result (exit status -9, local job 77)"
    )
    assert death_reason("slurm", "FAILED", "1_0", error="ValueError: x").startswith(
        "failed outside the run (job 1_0): ValueError: x"
    )
    assert base_state("CANCELLED by 0") == "CANCELLED" and base_state("") == "UNKNOWN"
    assert slurm_ids_of("12_3") == {"array_job_id": "12", "array_task_id": "3"}
    assert slurm_ids_of("12") == {"job_id": "12"}
    failed_job_error = (  # submitit's FailedJobError text
        "Job (task=0) failed during processing with trace:\n----------------------\n"
        "Traceback (most recent call last):\n  File x\nKeyError: 'a'\n----------------------\n"
        "You can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n"
        "  - /s/1_0_log.err\n  - /s/1_0_log.out"
    )
    assert last_line(failed_job_error) == "KeyError: 'a'"
    assert last_line("Traceback\n  File x\nValueError: b\n") == "ValueError: b"
    assert job_choices({"arm": "a", "hydra/launcher": "slurm", "tier": None}) == {"arm": "a"}


def test_squeue_states_tell_which_waited_for_jobs_have_ended() -> None:
    states = parse_squeue("59_2|RUNNING\n59_3|CANCELLED\n60|PENDING\n\n")
    assert states == {"59_2": "RUNNING", "59_3": "CANCELLED", "60": "PENDING"}
    assert ended_in_queue("CANCELLED") and ended_in_queue("OUT_OF_MEMORY")
    assert ended_in_queue(None)  # slurmctld no longer knows the job
    for live in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING", "PREEMPTED", "SUSPENDED"):
        assert not ended_in_queue(live)
    assert lost_state("CANCELLED by 0", "PENDING") == "CANCELLED"
    # gone from squeue, only ever seen pending: cancelled before it ran (no sacct record)
    assert lost_state(None, "PENDING") == "CANCELLED"
    assert lost_state(None, "RUNNING") == "UNKNOWN"


def test_a_running_record_becomes_failed_with_its_attempt_time() -> None:
    running = {
        "status": "running",
        "reason": None,
        "attempt_started_at": "2026-01-02T03:04:00+00:00",
        "wall_seconds": 5.0,
        "attempts": 2,
        "slurm": {"array_job_id": "12", "array_task_id": "3", "restart_count": "1"},
        "job": JOB,
    }
    out = killed_record(running, "killed by SLURM: state FAILED (job 12_3)", NOW, {}, {})
    assert out == {
        **running,
        "status": "failed",
        "reason": "killed by SLURM: state FAILED (job 12_3)",
        "ended_at": "2026-01-02T03:04:10+00:00",
        "wall_seconds": 15.0,
    }
    assert running["status"] == "running"  # pure: the input is not changed


def test_a_finished_run_is_kept_and_an_earlier_failure_is_quoted() -> None:
    for status in ("completed", "halted", "skipped"):
        assert killed_record({"status": status}, "killed", NOW, JOB, {}) is None
    failed = {"status": "failed", "reason": "RunInterrupted: SIGTERM", "wall_seconds": 3.0}
    out = killed_record(failed, "killed by SLURM: state CANCELLED (job 5)", NOW, JOB, {})
    assert out["reason"] == (
        "killed by SLURM: state CANCELLED (job 5); the run had recorded: RunInterrupted: SIGTERM"
    )
    assert out["wall_seconds"] == 3.0


def test_a_job_that_never_started_gets_a_findable_record() -> None:
    slurm = {"array_job_id": "12", "array_task_id": "7"}
    out = killed_record(None, "killed by SLURM: state CANCELLED (job 12_7)", NOW, JOB, slurm)
    assert out == {
        "status": "failed",
        "reason": "killed by SLURM: state CANCELLED (job 12_7)",
        "ended_at": "2026-01-02T03:04:10+00:00",
        "wall_seconds": 0.0,
        "job": JOB,
        "slurm": slurm,
    }


def test_a_dead_job_returns_without_making_hydra_raise(tmp_path: Path) -> None:
    dead = DeadJob(3, "12_3", ("arm=primary",), "killed by SLURM: state FAILED (job 12_3)",
                   tmp_path, tmp_path / "12_3_0_log.err")  # fmt: skip
    ret = dead_job_return(dead)
    assert ret.return_value == {"status": "failed", "reason": dead.reason, "killed": True}
    msg = dead_jobs_message([dead], 12)
    assert msg.startswith("1 of 12 jobs died without a result")
    assert "#3 arm=primary (killed by SLURM: state FAILED (job 12_3); log " in msg


def test_unavailable_slurm_skips_or_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    assert skip_or_fail(True, "slurm up: ...") == "slurm up: ..."
    monkeypatch.delenv("PREREG_REQUIRE_SLURM", raising=False)
    with pytest.raises(pytest.skip.Exception, match="SLURM not available: no sbatch"):
        skip_or_fail(False, "no sbatch")
    monkeypatch.setenv("PREREG_REQUIRE_SLURM", "1")
    with pytest.raises(pytest.fail.Exception, match="PREREG_REQUIRE_SLURM=1"):
        skip_or_fail(False, "no sbatch")


@pytest.mark.slow
def test_local_launcher_records_a_killed_job_and_keeps_the_verdict(tmp_path: Path) -> None:
    """hydra/launcher=local: kill -9 of one job's process; the other job and the verdict stay."""
    k = sweep_with_a_killed_job(
        tmp_path, "hydra/launcher=local", "hydra.launcher.array_parallelism=2"
    )
    assert_the_killed_job_is_recorded_and_the_rest_kept(k)
    assert len(pd.read_csv(k.survivor / "metrics.csv")) == STEPS
    status = prereg_cli("status", str(k.sweep), "--json")
    assert json.loads(status.stdout)["counts"]["failed"] == 1


@pytest.mark.parametrize(
    ("launcher", "signum"),
    [("local", signal.SIGINT), ("local", signal.SIGTERM), ("pool", signal.SIGINT)],
)
def test_a_signal_to_a_sweep_process_stops_its_jobs_too(tmp_path: Path, launcher, signum) -> None:
    """``kill -INT <sweep pid>`` (not Ctrl-C, which reaches the whole process group): the
    running jobs get the same signal, checkpoint, record it and end before the sweep process
    does; none is left training."""
    steps = 100_000  # far more than the test waits for
    sweep = tmp_path / "sweep"
    argv = [
        *(sys.executable, str(REPO / "run.py"), "-m", f"hydra/launcher={launcher}"),
        *("arm=baseline,primary", "cell=n4m2", f"registration.step_cap={steps}"),
        *("exp9.chunk_steps=50", f"hydra.sweep.dir={sweep}"),
    ]
    runs = [
        sweep / f"arm={a},cell=n4m2,registration.step_cap={steps}" for a in ("baseline", "primary")
    ]

    def records() -> list[dict] | None:
        try:
            out = [json.loads((r / "run.json").read_text()) for r in runs]
        except (OSError, ValueError):
            return None
        started = all(r.get("status") == "running" for r in out)
        checkpointed = all(any((r / "checkpoints").glob("step_*")) for r in runs)
        return out if started and checkpointed else None

    log = open(tmp_path / "sweep.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        pids = [int(r["pid"]) for r in wait_until(records, timeout=180, interval=0.1)]
        os.kill(proc.pid, signum)  # the sweep process only
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    out = (tmp_path / "sweep.log").read_text()
    assert proc.returncode == 128 + signum, out[-3000:]
    if launcher == "local":
        assert "stopping 2 running job(s)" in out
    for pid in pids:  # no job process left training
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    name = signal.Signals(signum).name
    for run in runs:
        record = json.loads((run / "run.json").read_text())
        assert record["status"] == "failed", record
        assert record["reason"] == f"RunInterrupted: interrupted by signal {name}", record
        assert any((run / "checkpoints").glob("step_*"))
