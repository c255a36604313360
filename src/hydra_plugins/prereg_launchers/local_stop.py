"""Stop a local sweep's running job processes when the sweep process itself is interrupted.

``hydra/launcher=local`` runs each job as a child process of the sweep.  A terminal's Ctrl-C
reaches the whole process group, but ``kill -INT <sweep pid>`` (or SIGTERM from a scheduler
or a script) reaches the sweep process only; its jobs would train on, orphaned.  So the sweep
hands the signal on to each running job, which stops as it does for any interrupt (it
finishes its current update, checkpoints it and records ``failed: RunInterrupted ...`` in
``run.json``; the same command resumes it), and waits for them to end, at most ``grace``
seconds; a job still running then, or any job once the sweep is interrupted again, is killed
(its newest periodic checkpoint is kept).
"""

from __future__ import annotations

import logging
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

import psutil

log = logging.getLogger(__name__)

#: seconds a stopped job gets to checkpoint its current update and record the stop
GRACE_SECONDS = 120.0


def stop_jobs(jobs: Sequence[Any], exc: BaseException, grace: float = GRACE_SECONDS) -> None:
    """Hand the interrupt ``exc`` (its signal; SIGINT for any other error) on to the running
    submitit local ``jobs`` and wait for their processes to end; never raises."""
    from prereg.core.signals import RunInterrupted

    signum = exc.signum if isinstance(exc, RunInterrupted) else signal.SIGINT
    trees = [t for t in (_tree(getattr(job, "_process", None)) for job in jobs) if t]
    tasks = []
    for task in (t for tree in trees for t in _tasks(tree)):
        try:
            task.send_signal(signum)
            tasks.append(task)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    if tasks:
        log.warning(
            f"stopping {len(tasks)} running job(s): each checkpoints its current update and "
            f"records the stop (at most {grace:.0f} s; interrupt again to kill them now)"
        )
        try:
            psutil.wait_procs(tasks, timeout=grace)
        except BaseException:  # noqa: BLE001 - a second interrupt: kill them now
            pass
    # what is left: submitit's controller and shell (they end after their task), a job past its
    # grace, or every process after a second interrupt
    leftover = [proc for tree in trees for proc in tree]
    try:
        _, leftover = psutil.wait_procs(leftover, timeout=2)
    except BaseException:  # noqa: BLE001 - interrupted again: kill them all now
        pass
    for proc in leftover:
        _kill_quietly(proc)


def _tree(popen: subprocess.Popen | None) -> list[psutil.Process]:
    """The process submitit started for a job and all its descendants, parents first."""
    if popen is None or popen.poll() is not None:
        return []
    try:
        root = psutil.Process(popen.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _tasks(tree: list[psutil.Process]) -> list[psutil.Process]:
    """The job's task processes: the children of submitit's controller (``python -m
    submitit.local._local``, run under a shell when the launcher has setup commands).  Not the
    controller itself: on SIGINT it kills its tasks a second later, before they checkpoint."""
    tasks = []
    for proc in tree:
        try:
            if "submitit.local._local" in proc.cmdline():  # its argv; not the shell's -c text
                tasks.extend(c for c in tree if c.ppid() == proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return tasks


def _kill_quietly(proc: psutil.Process) -> None:
    try:
        proc.kill()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
