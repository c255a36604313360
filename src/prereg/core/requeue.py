"""Whether SLURM is requeueing this process's job: a stopped run is then ``requeued``.

SLURM requeues a job on preemption (PreemptMode=REQUEUE), on ``scontrol requeue`` and, through
submitit's SIGUSR2 handler, before its time limit; the process gets SIGTERM (or SIGUSR2) and
the same task starts again later in the same directory.  While the process still runs, SLURM
already counts the restart: ``scontrol show job`` reports ``Restarts`` one above the
``SLURM_RESTART_COUNT`` this attempt started with.  A plain ``scancel`` leaves it equal.

When submitit itself requeues the job (its SIGUSR2 handler ran ``scontrol requeue``), the
launcher says so (:func:`note_submitit_requeue`) and that is the answer: SLURM may not count
the restart yet when the run's stop is recorded.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping

SCONTROL_TIMEOUT_S = 10
RESUMES = "it resumes from its newest checkpoint"

_noted: list[str] = []  # this process's job requeued by submitit (note_submitit_requeue)


def restarts(output: str) -> int | None:
    """``Restarts=<n>`` of ``scontrol show job`` output, else None."""
    found = re.search(r"\bRestarts=(\d+)\b", output)
    return int(found.group(1)) if found else None


def job_name(env: Mapping[str, str]) -> str | None:
    """``<array>_<task>`` for an array task, else the SLURM job id; None off SLURM."""
    job = env.get("SLURM_JOB_ID")
    task, array = env.get("SLURM_ARRAY_TASK_ID"), env.get("SLURM_ARRAY_JOB_ID")
    return f"{array}_{task}" if job and task and array else job


def note_submitit_requeue(env: Mapping[str, str] | None = None) -> str:
    """Note that submitit has requeued this process's job (its signal handler ended by
    ``sys.exit`` after requeueing it); from now on :func:`requeue_note` is this note."""
    env = os.environ if env is None else env
    name = job_name(env)
    if name is None:  # submitit's local executor starts the job again itself
        where = f"local job {env.get('SUBMITIT_LOCAL_JOB_ID', os.getpid())}"
    else:
        where = f"job {name} (restart {int(env.get('SLURM_RESTART_COUNT') or 0) + 1})"
    note = f"submitit requeued {where}; {RESUMES}"
    _noted.append(note)
    return note


def requeue_note(env: Mapping[str, str] | None = None) -> str | None:
    """Why this process's job is being requeued, if it is: the submitit requeue noted
    (:func:`note_submitit_requeue`), else ``SLURM requeued job <id> (restart <n>)`` when
    ``scontrol`` counts a restart; None off SLURM, for a job not requeued, or when
    ``scontrol`` cannot say."""
    if _noted:
        return _noted[-1]
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", job],
            capture_output=True,
            text=True,
            timeout=SCONTROL_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    now = restarts(out.stdout) if out.returncode == 0 else None
    if now is None or now <= int(env.get("SLURM_RESTART_COUNT") or 0):
        return None
    return f"SLURM requeued job {job_name(env)} (restart {now}); {RESUMES}"
