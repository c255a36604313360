"""The run-directory contract shared by every runner (DESIGN section 4).

``run.json`` records status (running, completed, failed, halted, skipped, requeued), the reason,
start/end times, wall seconds, the registration hash, package/JAX versions, the git
commit and, under SLURM, the job and array ids.  A run's life is wrapped by
:func:`guarded_run`: whatever happens inside, ``run.json`` ends in a final state.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prereg import __version__
from prereg.core.atomic import (
    atomic_write_json,
    atomic_write_text,
    cannot_write,
    read_json,
    remove_stale_temps,
)
from prereg.core.errors import ConfigError
from prereg.core.lease import lease
from prereg.core.registration import differing_constants
from prereg.core.requeue import requeue_note
from prereg.core.signals import RunInterrupted, interrupts_as_exceptions

log = logging.getLogger("prereg")

STATUSES = ("running", "completed", "failed", "halted", "skipped", "requeued")
#: how an attempt ends (``requeued``: stopped by a signal while SLURM requeues its job, which
#: starts it again from its checkpoint)
FINAL_STATUSES = ("completed", "failed", "halted", "skipped", "requeued")


class RunHalted(Exception):
    """A pre-registered check went out of tolerance: the run stops with status ``halted``."""


class RunSkipped(Exception):
    """The run is not needed (e.g. an earlier ladder candidate passed): status ``skipped``."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    """The commit of the source tree this package was imported from, if it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def slurm_ids() -> dict[str, str]:
    """SLURM job/array ids of this process (empty off SLURM)."""
    keys = {
        "job_id": "SLURM_JOB_ID",
        "array_job_id": "SLURM_ARRAY_JOB_ID",
        "array_task_id": "SLURM_ARRAY_TASK_ID",
        "restart_count": "SLURM_RESTART_COUNT",
        "node": "SLURMD_NODENAME",
    }
    return {k: os.environ[v] for k, v in keys.items() if v in os.environ}


def jax_backend() -> str | None:
    """The default JAX backend, if JAX has already been imported by the runner."""

    jax = sys.modules.get("jax")
    if jax is None:
        return None
    try:
        return f"{jax.default_backend()} (jax {jax.__version__})"
    except Exception:  # noqa: BLE001 - a broken backend must not break bookkeeping
        return None


class RunDir:
    """One run's directory and its ``run.json`` record."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    def read(self) -> dict[str, Any] | None:
        """The current ``run.json`` content, or None for a fresh directory."""
        return read_json(self.run_json)

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into ``run.json`` and write it atomically."""
        record = self.read() or {}
        record.update(fields)
        atomic_write_json(self.run_json, record)
        return record

    def start(self, experiment: str, registration: str, registration_hash: str) -> dict:
        """Mark the run as running; keeps the first start time and counts attempts.

        Temporary files a killed earlier attempt left behind are deleted first.
        """
        remove_stale_temps(self.path)
        previous = self.read() or {}
        return self.update(
            status="running",
            reason=None,
            experiment=experiment,
            registration=registration,
            registration_hash=registration_hash,
            started_at=previous.get("started_at") or _now(),
            attempt_started_at=_now(),
            ended_at=None,
            attempts=int(previous.get("attempts", 0)) + 1,
            wall_seconds=float(previous.get("wall_seconds") or 0.0),
            package_version=__version__,
            git_commit=git_commit(),
            python=platform.python_version(),
            host=platform.node(),
            pid=os.getpid(),
            slurm=slurm_ids(),
        )

    def finish(self, status: str, reason: str | None, attempt_seconds: float) -> dict:
        """Record a final status, its reason and the cumulative wall time."""
        assert status in FINAL_STATUSES, status
        previous = self.read() or {}
        return self.update(
            status=status,
            reason=reason,
            ended_at=_now(),
            wall_seconds=float(previous.get("wall_seconds") or 0.0) + attempt_seconds,
            jax_backend=jax_backend(),
        )


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, for run.json reasons and terminal errors."""
    msg = " ".join(str(exc).split())
    name = type(exc).__name__
    return f"{name}: {msg}" if msg else name


def guarded_run(
    rundir: RunDir,
    experiment: str,
    registration: str,
    registration_hash: str,
    body: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``body`` and leave ``run.json`` in a final state whatever happens.

    ``body`` returns the run's summary dict.  A :class:`RunHalted` becomes ``halted``, a
    :class:`RunSkipped` ``skipped``, any other exception (including SIGTERM and Ctrl-C)
    ``failed`` with a one-line reason and the traceback in ``logs/error.txt``; the
    exception is then re-raised so the caller decides whether the sweep goes on.  A full or
    read-only disk is re-raised as :class:`CannotWrite`, which stops the sweep (``failed``
    is then recorded only if the disk still takes ``run.json``).  A signal is first handed on
    to a handler the run replaced (submitit's SIGUSR2: requeue), then recorded
    (:func:`record_interrupted`: ``requeued`` when SLURM requeues the job).
    """
    tic = time.perf_counter()
    try:
        with interrupts_as_exceptions():  # from before run.json says running: no unrecorded gap
            rundir.start(experiment, registration, registration_hash)
            summary = body()
    except RunHalted as exc:
        rundir.finish("halted", str(exc), time.perf_counter() - tic)
        raise
    except RunSkipped as exc:
        rundir.finish("skipped", str(exc), time.perf_counter() - tic)
        raise
    except RunInterrupted as exc:  # the training loop has checkpointed the interrupted update
        try:
            exc.hand_on()  # submitit's SIGUSR2 handler requeues the job, then raises SystemExit
        finally:
            record_interrupted(rundir, exc, time.perf_counter() - tic)
        raise
    except BaseException as exc:
        handed = exc.__context__ if isinstance(exc, SystemExit) else None
        if isinstance(handed, RunInterrupted) and handed.handed_on:
            # the body handed its interrupt on (a vmapped ladder records its candidates after
            # submitit's requeue): the SystemExit of that handler is the interrupt
            record_interrupted(rundir, handed, time.perf_counter() - tic)
            raise
        record_failure(rundir, exc, time.perf_counter() - tic)
        unwritable = cannot_write(exc, rundir.path)
        if unwritable is not None and unwritable is not exc:
            raise unwritable from exc
        raise
    rundir.finish("completed", None, time.perf_counter() - tic)
    return summary


def record_interrupted(rundir: RunDir, exc: RunInterrupted, seconds: float) -> None:
    """``requeued`` with SLURM's note if SLURM is requeueing this job (preemption, ``scontrol
    requeue``, submitit's time-limit requeue), else ``failed`` (:func:`record_failure`)."""
    note = requeue_note()
    if note is None:
        return record_failure(rundir, exc, seconds)
    reason = f"{one_line(exc)}; {note}"
    log.warning("%s: %s", rundir.path.name, reason)  # run.log keeps it after the restart
    try:
        rundir.finish("requeued", reason, seconds)
    except OSError as err:
        log.error("could not record the requeue in %s: %s", rundir.path, one_line(err))
    return None


def record_failure(rundir: RunDir, exc: BaseException, seconds: float) -> None:
    """``failed`` + reason in ``run.json`` and the traceback in ``logs/error.txt``, as far as
    the disk allows: a write that fails here is logged, never raised over ``exc``."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for write in (
        lambda: atomic_write_text(rundir.path / "logs" / "error.txt", text),
        lambda: rundir.finish("failed", one_line(exc), seconds),
    ):
        try:
            write()
        except OSError as err:
            log.error("could not record the failure in %s: %s", rundir.path, one_line(err))


def _get(reg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        reg = reg.get(part, "<absent>") if isinstance(reg, dict) else "<absent>"
    return reg


def describe_changes(old: dict[str, Any], new: dict[str, Any], limit: int = 6) -> str:
    """``lr (0.01 -> 0.02), step_cap (2000 -> 200)``: the constants that differ, with values."""
    keys = differing_constants(old, new)
    if not keys:
        return "<unknown>"
    items = [f"{k} ({_get(old, k)!r} -> {_get(new, k)!r})" for k in keys[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(items) + more


def check_registration(rd: RunDir, reg: dict[str, Any], reg_hash: str) -> None:
    """Refuse to reuse a run dir that holds work of another registration, naming the constants."""
    previous = rd.read()
    if not previous or previous.get("registration_hash") in (None, reg_hash):
        return
    old = read_json(rd.path / "registration.json") or {}
    raise ConfigError(
        "registration",
        f"{rd.path} holds a run of registration hash {previous['registration_hash']}, this run's "
        f"is {reg_hash}; differing constants: {describe_changes(old, reg)}; "
        "use a new output directory",
    )


def run_registered(
    run_dir: Path,
    experiment: str,
    reg: dict[str, Any],
    reg_hash: str,
    body: Callable[[RunDir], dict[str, Any]],
) -> dict[str, Any]:
    """The life of one registered run: refuse a run dir of another registration, return the
    summary of a completed run without redoing it, else record the registration and run
    ``body(rundir)`` under :func:`guarded_run` (resuming is the body's job).

    All of it under the directory's lease (:mod:`prereg.core.lease`, re-entrant: dispatch has
    usually taken it already): :class:`~prereg.core.lease.RunHeldElsewhere` if another live
    process owns the directory, so ``attempts`` counts only attempts that ran."""
    with lease(run_dir):
        return _run_registered(RunDir(run_dir), experiment, reg, reg_hash, body)


def _run_registered(
    rd: RunDir,
    experiment: str,
    reg: dict[str, Any],
    reg_hash: str,
    body: Callable[[RunDir], dict[str, Any]],
) -> dict[str, Any]:
    run_dir = rd.path
    check_registration(rd, reg, reg_hash)
    previous = rd.read()
    if previous and previous.get("status") == "completed":
        log.info("%s already completed; not redone", run_dir)
        return read_json(rd.path / "summary.json") or {}
    try:
        atomic_write_json(rd.path / "registration.json", reg)
    except OSError as exc:
        unwritable = cannot_write(exc, rd.path)
        if unwritable is None:
            raise
        raise unwritable from exc
    return guarded_run(rd, experiment, reg["name"], reg_hash, lambda: body(rd))
