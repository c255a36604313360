"""Jobs of a sweep that end without a result: find them, write their ``run.json``, never raise.

A job that dies outside its own code (SIGKILL, out of memory, ``scancel``, node failure, time
limit) has no result for submitit to return. :func:`collect_results` writes its ``run.json`` as
``failed`` with the reason (:func:`killed_record`), returns a JobReturn saying so
(:func:`dead_job_return`), and logs one line naming every dead job (:func:`dead_jobs_message`).
:func:`wait_for_slurm_jobs` also notices SLURM jobs that vanished without an accounting record.
"""

# No ``from __future__ import annotations`` here: Hydra's plugin scan executes this module
# before it is in sys.modules, where dataclasses cannot resolve string annotations.
import datetime as _dt
import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf, open_dict

log = logging.getLogger(__name__)

#: Final states (sacct's, and the local executor's) of a job that ended without its result:
#: waiting longer for its result file is pointless.
DEAD_STATES = {
    "slurm": frozenset(
        {"FAILED", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", "TIMEOUT", "BOOT_FAIL", "DEADLINE"}
    ),
    # the local job controller killed by a signal, or exited without writing the result
    "local": frozenset({"INTERRUPTED", "FINISHED"}),
}
#: run.json statuses that mean the run itself finished its work: a later death keeps them.
SETTLED = ("completed", "halted", "skipped")


@dataclass(frozen=True)
class DeadJob:
    """A job of a sweep that ended without returning (its process died or never ran)."""

    num: int  # Hydra job number
    job_id: str  # "<array>_<task>" on SLURM, the controller's pid locally
    overrides: tuple[str, ...]
    reason: str
    run_dir: Path | None  # None if it could not be worked out
    log: Path | None  # the job's stderr file


def base_state(state: str) -> str:
    """``'CANCELLED by 0'`` -> ``'CANCELLED'`` (sacct appends who cancelled)."""
    words = state.split()
    return words[0].upper() if words else "UNKNOWN"


def death_reason(
    executor: str,
    state: str,
    job_id: str,
    error: str | None = None,
    exit_status: int | None = None,
) -> str:
    """The one-line ``run.json`` reason for a job that died outside its own code."""
    where = f"job {job_id}" if executor == "slurm" else f"local job {job_id}"
    if error:  # the job's process raised outside the run (submitit's "error" outcome)
        return f"failed outside the run ({where}): {error}"
    if executor == "slurm":
        return f"killed by SLURM: state {base_state(state)} ({where})"
    how = f"exit status {exit_status}" if exit_status is not None else base_state(state)
    return f"killed: job process ended without a result ({how}, {where})"


def last_line(text: str) -> str:
    """The exception line of a traceback; of submitit's FailedJobError text, the traceback
    between its ``-----`` rules (the log paths after them are not the error)."""
    lines = text.splitlines()
    rules = [i for i, ln in enumerate(lines) if ln.strip() and set(ln.strip()) <= {"-"}]
    if len(rules) >= 2:
        lines = lines[rules[0] + 1 : rules[-1]]
    body = [ln.strip() for ln in lines if ln.strip()]
    return body[-1][:300] if body else ""


def slurm_ids_of(job_id: str) -> dict[str, str]:
    """``run.json["slurm"]`` as far as a submitit SLURM job id tells it (``123_4`` or ``123``)."""
    array, sep, task = job_id.partition("_")
    return {"array_job_id": array, "array_task_id": task} if sep else {"job_id": array}


def killed_record(
    previous: Mapping[str, Any] | None,
    reason: str,
    now: _dt.datetime,
    job: Mapping[str, Any],
    slurm: Mapping[str, str],
) -> dict[str, Any] | None:
    """``run.json`` for a job that died outside its own code; None keeps ``previous`` as is.

    A run that had already finished its work (completed, halted, skipped) is kept. Otherwise
    the record becomes ``failed`` with ``reason`` (plus the run's own last failure, e.g. the
    SIGTERM that came before a SIGKILL), the wall time of the unfinished attempt is added, and
    a job that never started gets its ``job`` and ``slurm`` fields so status views find it.
    """
    record = dict(previous or {})
    if record.get("status") in SETTLED:
        return None
    wall = float(record.get("wall_seconds") or 0.0)
    if record.get("status") == "running" and record.get("attempt_started_at"):
        try:
            started = _dt.datetime.fromisoformat(str(record["attempt_started_at"]))
            wall += max(0.0, (now - started).total_seconds())
        except (TypeError, ValueError):
            pass
    if record.get("status") in ("failed", "requeued") and record.get("reason"):
        reason = f"{reason}; the run had recorded: {record['reason']}"
    record.update(
        status="failed",
        reason=reason,
        ended_at=now.isoformat(timespec="seconds"),
        wall_seconds=wall,
    )
    if not record.get("job"):
        record["job"] = dict(job)
    if not record.get("slurm") and slurm:
        record["slurm"] = dict(slurm)
    return record


def job_choices(choices: Mapping[str, Any]) -> dict[str, Any]:
    """Config-group choices as ``run.json["job"]["choices"]`` holds them (as dispatch writes)."""
    return {k: v for k, v in choices.items() if v is not None and not k.startswith("hydra")}


def _job_dir(
    launcher: BaseSubmititLauncher, overrides: Sequence[str], num: int, job_id: str
) -> tuple[Path, dict[str, Any]]:
    """A job's output directory and ``run.json["job"]``, composed exactly as the job does it.

    Same steps as the job's own ``__call__`` + Hydra's ``run_job``: the sweep config for its
    overrides (with the master config's resolver cache, so ``${now:...}`` agrees), its
    ``hydra.job.num``/``id``, then ``hydra.sweep.dir`` / ``hydra.sweep.subdir``.
    """
    assert launcher.hydra_context is not None and launcher.config is not None
    cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(cfg.hydra.job) as job:
        job.id = job_id
        job.num = num
    hydra_config = HydraConfig.instance()
    saved = hydra_config.cfg
    try:
        hydra_config.set_config(cfg)  # ${hydra:...} in the subdir resolves against this job
        sweep_dir = str(OmegaConf.select(cfg, "hydra.sweep.dir"))
        subdir = str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
        record = {
            "choices": job_choices(OmegaConf.to_container(cfg.hydra.runtime.choices)),
            "overrides": list(OmegaConf.to_container(cfg.hydra.overrides.task)),
        }
    finally:
        hydra_config.cfg = saved
    return Path(os.path.abspath(os.path.join(sweep_dir, subdir))), record


def _record_dead_job(
    launcher: BaseSubmititLauncher, job: Any, num: int, overrides: Sequence[str], reason: str
) -> DeadJob:
    """Write the dead job's ``run.json`` as failed (best effort: a problem here is logged)."""
    # lazily: Hydra imports this plugin in every app it starts; prereg loads only when needed
    from prereg.core.atomic import atomic_write_json, read_json

    executor = getattr(launcher, "_EXECUTOR", "")
    run_dir: Path | None = None
    try:
        run_dir, job_record = _job_dir(launcher, overrides, num, str(job.job_id))
        previous = read_json(run_dir / "run.json")
        record = killed_record(
            previous if isinstance(previous, dict) else None,
            reason,
            _dt.datetime.now(_dt.timezone.utc),
            job_record,
            slurm_ids_of(str(job.job_id)) if executor == "slurm" else {},
        )
        if record is None:
            log.warning(
                f"job #{num} ({job.job_id}) died after its run ended "
                f"({previous.get('status')}); run.json kept: {run_dir}"
            )
        else:
            atomic_write_json(run_dir / "run.json", record)
    except Exception as exc:  # noqa: BLE001 - the sweep (and its verdict) must go on
        log.error(f"could not record the death of job #{num} ({job.job_id}) in run.json: {exc}")
    stderr = getattr(getattr(job, "paths", None), "stderr", None)
    return DeadJob(num, str(job.job_id), tuple(overrides), reason, run_dir, stderr)


def dead_job_return(dead: DeadJob) -> JobReturn:
    """A JobReturn Hydra's sweeper accepts (no raise), saying ``failed`` like dispatch does."""
    ret = JobReturn(overrides=list(dead.overrides), status=JobStatus.COMPLETED)
    ret.return_value = {"status": "failed", "reason": dead.reason, "killed": True}
    if dead.run_dir is not None:
        ret.working_dir = str(dead.run_dir)
    return ret


def dead_jobs_message(dead: Sequence[DeadJob], total: int) -> str:
    """The sweep's closing log line naming every job that died (with its stderr file)."""
    items = []
    for d in dead:
        where = f"; log {d.log}" if d.log else ""
        items.append(f"#{d.num} {' '.join(filter_overrides(d.overrides))} ({d.reason}{where})")
    return (
        f"{len(dead)} of {total} jobs died without a result (their run.json now says failed; "
        f"the other jobs' results are kept): " + " | ".join(items)
    )


def job_failed(job: Any) -> bool:
    """Whether a finished submitit job failed or halted (or died without a result)."""
    try:
        ret = job.results()[0]
    except Exception:  # noqa: BLE001 - died, or raised outside the run: a failure
        return True
    return returned_failure(ret)


def returned_failure(ret: JobReturn) -> bool:
    """Whether a job's JobReturn says it failed or halted (an exception, or dispatch's status)."""
    if ret.status != JobStatus.COMPLETED:
        return True
    value = getattr(ret, "_return_value", None)
    return isinstance(value, dict) and value.get("status") in ("failed", "halted")


#: How often (seconds) the SLURM launcher asks slurmctld about jobs submitit still waits for.
QUEUE_CHECK_S = 10.0


def parse_squeue(text: str) -> dict[str, str]:
    """``squeue -h -r -o '%i|%T'`` output -> ``{job id: state}`` (array tasks as ``123_4``)."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        job_id, sep, state = line.strip().partition("|")
        if sep and job_id:
            states[job_id] = state.strip()
    return states


def queue_states(job_ids: Sequence[str]) -> dict[str, str] | None:
    """What slurmctld still holds about these jobs' arrays (any state); None if squeue failed."""
    arrays = sorted({j.split("_")[0] for j in job_ids})
    try:
        proc = subprocess.run(
            ["squeue", "-h", "-r", "--states=all", "-j", ",".join(arrays), "-o", "%i|%T"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:  # every array purged from slurmctld (MinJobAge) says so
        return {} if "Invalid job id" in proc.stderr else None
    return parse_squeue(proc.stdout)


def ended_in_queue(state: str | None) -> bool:
    """squeue says the job is over (a final state), or no longer knows it (None)."""
    return state is None or base_state(state) in DEAD_STATES["slurm"] | {"COMPLETED"}


def lost_state(queue_state: str | None, cached: str) -> str:
    """The state to report for a job submitit never saw end.

    ``queue_state`` is squeue's (None: slurmctld no longer lists it), ``cached`` submitit's last
    sacct state. A job gone from squeue that sacct only ever saw pending never ran: cancelling a
    pending array task removes it from slurmctld at once and leaves no accounting record.
    """
    if queue_state is not None:
        return base_state(queue_state)
    return "CANCELLED" if base_state(cached) in ("PENDING", "UNKNOWN") else "UNKNOWN"


def wait_for_slurm_jobs(
    jobs: Sequence[Any],
    check_s: float = QUEUE_CHECK_S,
    on_failure: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Block until every job is done; return ``{job id: state}`` of jobs SLURM ended unseen.

    submitit learns that a job ended from its result file or sacct. A pending array task that
    is cancelled vanishes from slurmctld with no sacct record (SLURM 22.05), so submitit would
    wait for it forever (and sacct is polled ever more rarely as a sweep runs on).
    Every ``check_s`` the jobs still waited for are looked up in squeue; one that squeue shows
    ended (or no longer knows) while a fresh sacct still does not, twice in a row, is lost.
    ``on_failure(job id)`` is called once, for the first job seen failed or halted (fail-fast).
    """
    lost: dict[str, str] = {}
    suspects: dict[str, str] = {}
    next_check = time.monotonic() + check_s
    seen: set[str] = set()
    while True:
        if on_failure is not None:
            for job in jobs:
                if str(job.job_id) not in seen and job.done():
                    seen.add(str(job.job_id))
                    if job_failed(job):
                        on_failure(str(job.job_id))
                        on_failure = None
                        break
        pending = [j for j in jobs if str(j.job_id) not in lost and not j.done()]
        if not pending:
            return lost
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + check_s
            states = queue_states([str(j.job_id) for j in pending])
            ended = {
                str(j.job_id): (states or {}).get(str(j.job_id))
                for j in pending
                if states is not None and ended_in_queue(states.get(str(j.job_id)))
            }
            if ended:
                pending[0].done(force_check=True)  # a fresh sacct for every job of the sweep
            for job in pending:
                job_id = str(job.job_id)
                if job_id not in ended or job.done():
                    suspects.pop(job_id, None)
                elif job_id in suspects:
                    lost[job_id] = lost_state(ended[job_id], str(job.state))
                else:
                    suspects[job_id] = lost_state(ended[job_id], str(job.state))
        time.sleep(1.0)


def collect_results(
    launcher: BaseSubmititLauncher,
    jobs: Sequence[Any],
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    lost: Mapping[str, str] | None = None,
) -> list[JobReturn]:
    """Return every (finished) job's result in order, never raising for a dead job.

    A task's own exception still comes back as Hydra's failed JobReturn (Hydra raises it, as
    with any launcher). A job that died outside its code, or is in ``lost`` (job id -> state),
    is recorded by :func:`_record_dead_job` and returned as :func:`dead_job_return`; the sweep
    then logs one line naming all of them.
    """
    from submitit.core.utils import FailedJobError, UncompletedJobError

    executor = getattr(launcher, "_EXECUTOR", "")
    dead_states = DEAD_STATES.get(executor, frozenset())
    lost = lost or {}
    returns: list[JobReturn] = []
    dead: list[DeadJob] = []
    for i, (job, overrides) in enumerate(zip(jobs, job_overrides, strict=True)):
        num = initial_job_idx + i
        job_id = str(job.job_id)
        state = lost.get(job_id) or str(job.state)
        try:
            if job_id in lost or (
                not job.paths.result_pickle.exists() and base_state(state) in dead_states
            ):
                raise UncompletedJobError(f"no result (state: {state})")  # nothing to wait for
            returns.append(job.results()[0])
            continue
        except FailedJobError as exc:
            reason = death_reason(executor, state, job_id, last_line(str(exc)))
        except UncompletedJobError:
            # a local job's process exit status (submitit keeps the Popen; SLURM has sacct)
            code = getattr(getattr(job, "_process", None), "returncode", None)
            state = lost.get(job_id) or str(job.state)
            reason = death_reason(executor, state, job_id, exit_status=code)
        d = _record_dead_job(launcher, job, num, overrides, reason)
        dead.append(d)
        returns.append(dead_job_return(d))
    if dead:
        log.error(dead_jobs_message(dead, len(jobs)))
    return returns
