"""Launcher profiles (``hydra/launcher=slurm`` and ``=local``) and the local SLURM helper.

The profiles are YAML files in the repository's ``launchers/hydra/launcher/`` folder, one per
profile, each documented for the user to edit. :func:`register_launcher_profiles` stores them in
Hydra's ConfigStore under the ``hydra/launcher`` group, so they are found whatever the current
directory, and a profile's ``defaults: [submitit_slurm, _self_]`` still pulls in the
hydra-submitit-launcher schema it extends. ConfigStore contents travel with the pickled Hydra
singletons into each submitit job, so jobs see the same profiles.

``slurm`` runs a multirun as one SLURM job array through :class:`SlurmLauncher`, and ``local``
is a bounded version of ``submitit_local`` (:class:`BoundedLocalLauncher`: at most
``array_parallelism`` jobs at once, default the CPUs this process may use). Both wait for EVERY
job. A job that dies outside its own code (SIGKILL, out of memory, ``scancel``, node failure,
time limit) has no result to return: the stock launchers raise at the first such job, so Hydra
never calls ``on_multirun_end`` and there is no verdict. Here its ``run.json`` is written as
``failed`` ("killed by SLURM: state FAILED (job 123_4)"), its return value says so, the sweep
logs the dead jobs by name, and the verdict callback still runs over every job's directory.

:func:`ensure_slurm_cluster` checks (and, in CI or with ``PREREG_START_SLURM=1`` or
``PREREG_REQUIRE_SLURM=1``, starts) the single-node SLURM cluster of
``launchers/slurm_cluster.sh``; the test suite's fixture uses it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import subprocess
import sys
import time
import types
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, LocalQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf, open_dict

from prereg.core.atomic import atomic_write_json, read_json

log = logging.getLogger(__name__)

GROUP = "hydra/launcher"
PROVIDER = "prereg"
#: Name of the structured schema the ``local`` profile extends (not meant to be selected).
LOCAL_SCHEMA = "prereg_local_schema"


def launchers_dir() -> Path:
    """The repository's ``launchers/`` folder (``PREREG_LAUNCHERS_DIR`` overrides)."""
    env = os.environ.get("PREREG_LAUNCHERS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    # src/prereg/sweep/launchers.py -> repository root
    return Path(__file__).resolve().parents[3] / "launchers"


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------
# Jobs that end without a result: record them, never raise (every launcher below)
# --------------------------------------------------------------------------------------------
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
    if record.get("status") == "failed" and record.get("reason"):
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


def wait_for_slurm_jobs(jobs: Sequence[Any], check_s: float = QUEUE_CHECK_S) -> dict[str, str]:
    """Block until every job is done; return ``{job id: state}`` of jobs SLURM ended unseen.

    submitit learns that a job ended from its result file or sacct. A pending array task that
    is cancelled vanishes from slurmctld with no sacct record (SLURM 22.05), so submitit would
    wait for it forever (and sacct is polled ever more rarely as a sweep runs on).
    Every ``check_s`` the jobs still waited for are looked up in squeue; one that squeue shows
    ended (or no longer knows) while a fresh sacct still does not, twice in a row, is lost.
    """
    lost: dict[str, str] = {}
    suspects: dict[str, str] = {}
    next_check = time.monotonic() + check_s
    while True:
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


# --------------------------------------------------------------------------------------------
# Bounded local launcher
# --------------------------------------------------------------------------------------------
@dataclass
class BoundedLocalQueueConf(LocalQueueConf):
    """``submitit_local`` plus a cap on how many jobs run at once, and setup lines."""

    _target_: str = "hydra_plugins.prereg_launchers.BoundedLocalLauncher"
    # at most this many jobs at once; null = the number of CPUs available to the sweep process
    array_parallelism: int | None = None
    # shell lines run before each job (e.g. "export XLA_PYTHON_CLIENT_PREALLOCATE=false")
    setup: list[str] | None = None


def _prepare_jobs(
    config: Any, sweep_dir: Path, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[tuple[Any, ...]]:
    """Create the sweep dir (with ``hydra.sweep.mode``), log each job, and return the argument
    tuples submitit passes to ``BaseSubmititLauncher.__call__`` for each job (as the stock
    launcher builds them)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if "mode" in config.hydra.sweep:
        os.chmod(sweep_dir, mode=int(str(config.hydra.sweep.mode), 8))
    job_params: list[tuple[Any, ...]] = []
    for i, overrides in enumerate(job_overrides):
        idx = initial_job_idx + i
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        job_params.append(
            (list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state())
        )
    return job_params


class BoundedLocalLauncher(BaseSubmititLauncher):
    """submitit's local executor, with a sliding window of ``array_parallelism`` jobs.

    Each job is a separate process (submitit's local job controller) in
    ``<sweep dir>/.submitit/<pid>/``. The sweep process waits for every job to end (even after
    one died), then returns their results in order (:func:`collect_results`: a job whose
    process was killed is written ``failed`` and does not stop the sweep or its verdict).
    """

    _EXECUTOR = "local"

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None
        num_jobs = len(job_overrides)
        assert num_jobs > 0
        params = dict(self.params)
        limit = params.pop("array_parallelism", None) or available_cpus()
        limit = max(1, int(limit))
        folder = params.pop("submitit_folder")
        init: dict[str, Any] = {}
        if "max_num_timeout" in params:
            init["local_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(folder=folder, cluster="local", **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{(k if k in base else f"local_{k}"): v for k, v in params.items()}
        )

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(
            f"Bounded local sweep ({num_jobs} jobs, at most {limit} at once), "
            f"output dir : {sweep_dir}"
        )
        job_params = _prepare_jobs(self.config, sweep_dir, job_overrides, initial_job_idx)

        jobs: list[Any] = [None] * num_jobs
        waiting = deque(range(num_jobs))
        running: set[int] = set()
        try:
            while waiting or running:
                while waiting and len(running) < limit:
                    i = waiting.popleft()
                    jobs[i] = executor.submit(self, *job_params[i])
                    running.add(i)
                finished = {i for i in running if jobs[i].done()}
                running -= finished
                if not finished:
                    time.sleep(0.1)
        except BaseException:
            # Ctrl-C (or any error here): do not leave orphan job processes behind.
            for i in running:
                try:
                    jobs[i].cancel(check=False)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
            raise
        return collect_results(self, jobs, job_overrides, initial_job_idx)


# --------------------------------------------------------------------------------------------
# SLURM launcher
# --------------------------------------------------------------------------------------------
class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """hydra-submitit-launcher's SlurmLauncher (one job array per sweep) that waits for every job.

    Submission is the stock one. Then :func:`wait_for_slurm_jobs` and :func:`collect_results`:
    a task SLURM ended without a result (UncompletedJobError: FAILED, CANCELLED, OUT_OF_MEMORY,
    NODE_FAIL, TIMEOUT; or cancelled while pending, which leaves no sacct record) ends
    ``failed`` in its ``run.json`` and the sweep (and its verdict) goes on. A requeued job
    (preemption, ``scontrol requeue``, time limit via ``checkpoint()``) re-runs the same Hydra
    job in the same directory; the runner resumes from its checkpoint there.
    """

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None
        num_jobs = len(job_overrides)
        assert num_jobs > 0
        # executor and parameters exactly as BaseSubmititLauncher.launch (plugin 1.2.0)
        params = dict(self.params)
        init_keys = {"max_num_timeout", "submitit_folder"}
        init = {f"{self._EXECUTOR}_max_num_timeout": params["max_num_timeout"]}
        executor = submitit.AutoExecutor(
            folder=params["submitit_folder"], cluster=self._EXECUTOR, **init
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                (k if k in base else f"{self._EXECUTOR}_{k}"): v
                for k, v in params.items()
                if k not in init_keys
            }
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(f"SLURM sweep ({num_jobs} jobs, one job array), output dir : {sweep_dir}")
        job_params = _prepare_jobs(self.config, sweep_dir, job_overrides, initial_job_idx)
        jobs = executor.map_array(self, *zip(*job_params, strict=True))
        ids = ", ".join(sorted({str(j.job_id).split("_")[0] for j in jobs}))
        log.info(f"submitted as SLURM job {ids} ({num_jobs} tasks); waiting for every one")
        lost = wait_for_slurm_jobs(jobs)
        return collect_results(self, jobs, job_overrides, initial_job_idx, lost)


def _rebuild_launcher(cls: type, state: dict[str, Any]) -> Any:
    """Unpickle a launcher plugin instance as the real class ``cls`` (see below)."""
    launcher = cls.__new__(cls)
    launcher.__dict__.update(state)
    return launcher


# Hydra instantiates a launcher only from a registered plugin class whose name starts with
# "hydra_plugins." (Plugins._instantiate), imported from its `_target_`. Rather than installing
# a module into the shared hydra_plugins namespace, register_launcher_profiles() puts an alias
# module hydra_plugins.prereg_launchers into sys.modules holding the classes below, and
# registers them with Hydra's Plugins. That alias module does not exist in other processes, so:
# - a launcher *instance* pickles (into each submitit job, and again into a requeue's
#   DelayedSubmission) as the real, importable prereg.sweep.launchers class (__reduce__ below);
# - the alias *class*, which is inside Hydra's Plugins singleton and so inside the singleton
#   state that every submitit launcher (slurm too) ships to its jobs, is pickled by value
#   (cloudpickle.register_pickle_by_value), so unpickling never imports the alias module.
PLUGIN_MODULE = "hydra_plugins.prereg_launchers"


class _BoundedLocalLauncherPlugin(BoundedLocalLauncher):
    def __reduce__(self) -> Any:
        return (_rebuild_launcher, (BoundedLocalLauncher, self.__dict__))


class _SlurmLauncherPlugin(SlurmLauncher):
    def __reduce__(self) -> Any:
        return (_rebuild_launcher, (SlurmLauncher, self.__dict__))


for _plugin, _name in (
    (_BoundedLocalLauncherPlugin, "BoundedLocalLauncher"),
    (_SlurmLauncherPlugin, "SlurmLauncher"),
):
    _plugin.__module__ = PLUGIN_MODULE
    _plugin.__name__ = _name
    _plugin.__qualname__ = _name


def _register_plugin_alias() -> None:
    import cloudpickle
    from hydra.core.plugins import Plugins

    module = sys.modules.get(PLUGIN_MODULE)
    if module is None:
        module = types.ModuleType(PLUGIN_MODULE, "alias made by prereg.sweep.launchers")
        sys.modules[PLUGIN_MODULE] = module
    module.BoundedLocalLauncher = _BoundedLocalLauncherPlugin  # type: ignore[attr-defined]
    module.SlurmLauncher = _SlurmLauncherPlugin  # type: ignore[attr-defined]
    cloudpickle.register_pickle_by_value(module)
    Plugins.instance().register(_BoundedLocalLauncherPlugin)
    Plugins.instance().register(_SlurmLauncherPlugin)


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------
def register_launcher_profiles(directory: str | os.PathLike[str] | None = None) -> None:
    """Store every ``<launchers>/hydra/launcher/*.yaml`` in Hydra's ConfigStore.

    After this, ``hydra/launcher=<file stem>`` works from any working directory. Call it before
    ``@hydra.main`` composes the config (run.py does). Calling it again re-reads the files.
    If the folder is missing (e.g. a non-editable install without the repository), a warning
    is issued and only the stock launchers remain.
    """
    _register_plugin_alias()
    cs = ConfigStore.instance()
    cs.store(group=GROUP, name=LOCAL_SCHEMA, node=BoundedLocalQueueConf, provider=PROVIDER)
    folder = Path(directory) if directory is not None else launchers_dir()
    profile_dir = folder / "hydra" / "launcher"
    if not profile_dir.is_dir():
        warnings.warn(
            f"launcher profiles not found: {profile_dir} is missing (set PREREG_LAUNCHERS_DIR); "
            "only hydra/launcher=basic|submitit_local|submitit_slurm are available",
            stacklevel=2,
        )
        return
    for path in sorted(profile_dir.glob("*.yaml")):
        node = OmegaConf.load(path)
        cs.store(group=GROUP, name=path.stem, node=node, provider=PROVIDER)


# --------------------------------------------------------------------------------------------
# The single-node SLURM cluster (launchers/slurm_cluster.sh), for tests
# --------------------------------------------------------------------------------------------
def slurm_cluster_script() -> Path:
    return launchers_dir() / "slurm_cluster.sh"


def _run_script(subcommand: str, timeout: float) -> tuple[int, str]:
    script = slurm_cluster_script()
    if not script.is_file():
        return 127, f"{script} not found"
    env = dict(os.environ, CI=os.environ.get("CI", ""))
    try:
        proc = subprocess.run(
            ["bash", str(script), subcommand],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return 124, f"'{script.name} {subcommand}' did not finish within {timeout:.0f} s"
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode == 0:
        # status line is the last stdout line
        out = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        return 0, out[-1] if out else "ok"
    # the script's one-line reason: prefer its 'slurm_cluster.sh: ...' stderr line
    reasons = [ln for ln in proc.stderr.splitlines() if ln.startswith("slurm_cluster.sh:")]
    msg = reasons[-1] if reasons else (lines[-1] if lines else f"exit status {proc.returncode}")
    return proc.returncode, msg


def slurm_required() -> bool:
    """``PREREG_REQUIRE_SLURM=1`` (set by ``.ci/run``): SLURM tests must fail, not skip."""
    return os.environ.get("PREREG_REQUIRE_SLURM") == "1"


def slurm_start_allowed() -> bool:
    """Starting a cluster is allowed in CI (``CI`` set), with ``PREREG_START_SLURM=1``, or
    where SLURM is required (``PREREG_REQUIRE_SLURM=1``)."""
    ci = os.environ.get("CI", "").strip().lower()
    return (
        (ci not in ("", "0", "false", "no"))
        or os.environ.get("PREREG_START_SLURM") == "1"
        or slurm_required()
    )


def ensure_slurm_cluster(
    allow_start: bool | None = None, timeout: float = 900.0
) -> tuple[bool, str]:
    """Is the single-node SLURM cluster up? Start it if allowed. Returns ``(ok, message)``.

    ``message`` is the one-line status when ``ok``, otherwise the reason it is not available
    (meant for ``pytest.skip(f"SLURM not available: {message}")``).
    """
    rc, msg = _run_script("status", timeout=60)
    if rc == 0:
        return True, msg
    if allow_start is None:
        allow_start = slurm_start_allowed()
    if not allow_start:
        return False, f"{msg} (set PREREG_START_SLURM=1 to let the tests start it)"
    rc, up_msg = _run_script("up", timeout=timeout)
    if rc != 0:
        return False, up_msg
    return True, up_msg
