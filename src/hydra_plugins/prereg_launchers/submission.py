"""Fire-and-forget SLURM sweeps (``hydra.launcher.wait=false``): submit, record, return.

The launcher submits the job array and one small verdict job with
``--dependency=afterany:<array>``, writes ``<sweep dir>/slurm_submission.json`` (ids, and each
task's job number, overrides and run directory) and returns. When the array ends, the verdict
job runs :func:`finish` (``python -m hydra_plugins.prereg_launchers.submission <sweep dir>``):
each task SLURM ended without a result is written ``failed`` with its SLURM state (as the
waiting launcher does, :mod:`.dead_jobs`), then the verdict and its plots are written and the
sweep's closing line printed (exit status 1 when a job did not complete).

Running the same command again while the array or its verdict job is still queued or running
submits nothing (:func:`still_on_slurm`); runs already completed or owned by a live process
(:mod:`prereg.core.lease`) are not submitted again.
"""

# No ``from __future__ import annotations`` here: Hydra's plugin scan executes this module
# before it is in sys.modules (see dead_jobs.py).
import datetime as _dt
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .dead_jobs import (
    DEAD_STATES,
    base_state,
    death_reason,
    ended_in_queue,
    killed_record,
    queue_states,
    slurm_ids_of,
)

log = logging.getLogger(__name__)

SUBMISSION_FILE = "slurm_submission.json"
VERDICT_TIME_MIN = 30  # the verdict job's --time (it reads run dirs and draws the plots)


def read_submission(sweep_dir: Path) -> dict[str, Any] | None:
    """The sweep's ``slurm_submission.json`` (None if there is none or it is unreadable)."""
    from prereg.core.atomic import read_json

    record = read_json(Path(sweep_dir) / SUBMISSION_FILE)
    return record if isinstance(record, dict) and record.get("array_job_id") else None


def still_on_slurm(record: Mapping[str, Any]) -> dict[str, str] | None:
    """``{job id: state}`` of the recorded array tasks and verdict job SLURM still holds
    unfinished (empty: all ended); None if squeue could not be asked."""
    ids = [str(record["array_job_id"])]
    if record.get("verdict_job_id"):
        ids.append(str(record["verdict_job_id"]))
    states = queue_states(ids)
    if states is None:
        return None
    return {job: state for job, state in states.items() if not ended_in_queue(state)}


def already_submitted_message(sweep_dir: Path, record: Mapping[str, Any], live: Mapping) -> str:
    """What is already on SLURM for this sweep, and that nothing was submitted."""
    counts: dict[str, int] = {}
    for job, state in live.items():
        if job != str(record.get("verdict_job_id")):
            counts[base_state(state).lower()] = counts.get(base_state(state).lower(), 0) + 1
    tasks = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no task left"
    verdict = record.get("verdict_job_id")
    return (
        f"already on SLURM: array job {record['array_job_id']} ({tasks}), verdict job "
        f"{verdict} ({live.get(str(verdict), 'ended')}), submitted {record.get('submitted_at')}; "
        f"nothing submitted. Where it stands: python -m prereg status {sweep_dir}"
    )


def verdict_script(sweep_dir: Path, setup: Sequence[str] | None) -> str:
    """The verdict job's batch script: the launcher's setup lines, then :func:`finish`."""
    lines = ["#!/bin/bash", *(setup or [])]
    lines.append(f"cd {shlex.quote(os.getcwd())}")
    lines.append(
        f"exec {shlex.quote(sys.executable)} -m hydra_plugins.prereg_launchers.submission "
        f"{shlex.quote(str(sweep_dir))}"
    )
    return "\n".join(lines) + "\n"


def sbatch_verdict_args(array_job_id: str, params: Mapping[str, Any], out: Path) -> list[str]:
    """``sbatch`` flags of the verdict job: after the array (any end), small, same queue."""
    args = [
        "--parsable",
        f"--dependency=afterany:{array_job_id}",
        f"--job-name={params.get('name') or 'prereg'}-verdict",
        f"--output={out}",
        f"--time={VERDICT_TIME_MIN}",
        "--ntasks=1",
        "--cpus-per-task=1",
    ]
    if params.get("mem_gb"):
        args.append(f"--mem={params['mem_gb']}G")
    for key in ("partition", "qos", "account"):
        if params.get(key):
            args.append(f"--{key}={params[key]}")
    return args


def submit_verdict_job(sweep_dir: Path, array_job_id: str, params: Mapping[str, Any]) -> str:
    """Submit the verdict job; its SLURM job id."""
    from prereg.core.atomic import atomic_write_text

    folder = sweep_dir / ".submitit"
    script = folder / "verdict.sh"
    atomic_write_text(script, verdict_script(sweep_dir, params.get("setup")))
    out = folder / "verdict_%j.out"
    proc = subprocess.run(
        ["sbatch", *sbatch_verdict_args(array_job_id, params, out), str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"sbatch of the verdict job failed: {proc.stderr.strip()}")
    return proc.stdout.strip().split(";")[0]


def write_submission(
    sweep_dir: Path,
    array_job_id: str,
    verdict_job_id: str | None,
    tasks: Sequence[Mapping[str, Any]],
    held: Sequence[Mapping[str, Any]],
) -> Path:
    """``slurm_submission.json``: what was submitted, for :func:`finish` and re-runs."""
    from prereg.core.atomic import atomic_write_json

    path = sweep_dir / SUBMISSION_FILE
    atomic_write_json(
        path,
        {
            "array_job_id": array_job_id,
            "verdict_job_id": verdict_job_id,
            "submitted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv,
            "tasks": list(tasks),
            "not_submitted": list(held),
        },
    )
    return path


def sacct_states(array_job_id: str) -> dict[str, str]:
    """``{"<array>_<task>": state}`` from sacct (tasks cancelled while pending are absent)."""
    proc = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", array_job_id, "-o", "JobID,State"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    states: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        job, sep, state = line.strip().partition("|")
        if sep:
            states[job] = state.strip()
    return states


def record_dead_tasks(
    record: Mapping[str, Any], states: Mapping[str, str], now: _dt.datetime
) -> list[str]:
    """Write ``failed`` into the run.json of every task SLURM ended without a result; one line
    per task written. A task absent from sacct never ran (cancelled while pending)."""
    from prereg.core.atomic import atomic_write_json, read_json
    from prereg.core.lease import current_owner

    array = str(record["array_job_id"])
    lines = []
    for task in record.get("tasks", []):
        job_id = f"{array}_{task['task']}"
        state = states.get(job_id, "CANCELLED")
        run_dir = Path(task["run_dir"])
        previous = read_json(run_dir / "run.json")
        if base_state(state) not in DEAD_STATES["slurm"]:  # it ran to its end and said so
            continue
        if current_owner(run_dir) is not None:  # a live process still owns it: not dead
            continue
        reason = death_reason("slurm", state, job_id)
        new = killed_record(
            previous if isinstance(previous, dict) else None,
            reason,
            now,
            task.get("job") or {"overrides": task.get("overrides")},
            slurm_ids_of(job_id),
        )
        if new is None:
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "run.json", new)
        lines.append(f"#{task['num']} {' '.join(task.get('overrides') or [])} ({reason})")
    return lines


def finish(sweep_dir: Path) -> int:
    """The verdict job: record the dead tasks, write the verdict, print the closing line."""
    sweep_dir = Path(sweep_dir).resolve()
    record = read_submission(sweep_dir)
    if record is None:
        print(f"error: {sweep_dir / SUBMISSION_FILE}: missing or unreadable", file=sys.stderr)
        return 2
    states = sacct_states(str(record["array_job_id"]))
    dead = record_dead_tasks(record, states, _dt.datetime.now(_dt.timezone.utc))
    total = len(record.get("tasks", []))
    if dead:
        print(
            f"{len(dead)} of {total} tasks of array job {record['array_job_id']} ended without a "
            "result (their run.json now says failed): " + " | ".join(dead),
            flush=True,
        )
    from prereg.reports.status import sweep_status
    from prereg.reports.verdicts import write_any_verdict
    from prereg.sweep.callbacks import closing_check

    before = sweep_status(sweep_dir)
    try:
        print(write_any_verdict(sweep_dir), flush=True)
    except Exception as exc:  # noqa: BLE001 - the closing line still says where the runs stand
        print(f"error: verdict could not be computed for {sweep_dir}: {exc}", file=sys.stderr)
    return closing_check(sweep_dir, before)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m hydra_plugins.prereg_launchers.submission <sweep dir>")
        sys.exit(2)
    sys.exit(finish(Path(sys.argv[1])))
