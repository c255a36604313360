"""Whether SLURM is requeueing this process's job: a stopped run is then ``requeued``.

SLURM requeues a job on preemption (PreemptMode=REQUEUE), on ``scontrol requeue`` and, through
submitit's SIGUSR2 handler, before its time limit; the process gets SIGTERM (or SIGUSR2) and
the same task starts again later in the same directory.  While the process still runs, SLURM
already counts the restart: ``scontrol show job`` reports ``Restarts`` one above the
``SLURM_RESTART_COUNT`` this attempt started with.  A plain ``scancel`` leaves it equal.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping

SCONTROL_TIMEOUT_S = 10


def restarts(output: str) -> int | None:
    """``Restarts=<n>`` of ``scontrol show job`` output, else None."""
    found = re.search(r"\bRestarts=(\d+)\b", output)
    return int(found.group(1)) if found else None


def requeue_note(env: Mapping[str, str] | None = None) -> str | None:
    """``SLURM requeued job <id> (restart <n>)`` if SLURM is requeueing this process's job;
    None off SLURM, for a job not requeued, or when ``scontrol`` cannot say."""
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
    task = env.get("SLURM_ARRAY_TASK_ID")
    name = f"{env['SLURM_ARRAY_JOB_ID']}_{task}" if task and env.get("SLURM_ARRAY_JOB_ID") else job
    return f"SLURM requeued job {name} (restart {now}); it resumes from its newest checkpoint"
