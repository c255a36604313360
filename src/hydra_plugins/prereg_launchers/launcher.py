"""prereg's launchers: :class:`BoundedLocalLauncher` (``hydra/launcher=local``) and
:class:`SlurmLauncher` (``hydra/launcher=slurm``), both built on hydra-submitit-launcher 1.2.0.

Both set up submitit's executor the same way (:func:`make_executor`), submit the jobs Hydra
hands them, wait for every one, and return every job's result in order, recording the jobs
that died without one (:func:`~.dead_jobs.collect_results`) instead of raising at the first.
In the job's own process both run it as :class:`JobStops` does: prereg sees SIGTERM, SIGINT
and SIGUSR2 for the job's whole life and records the run's stop (``requeued`` when submitit
or SLURM requeues it) before submitit's own handler acts.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, setup_globals
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf

from .dead_jobs import SETTLED, _job_dir, collect_results, job_failed, wait_for_slurm_jobs
from .local_stop import stop_jobs

if TYPE_CHECKING:
    from prereg.core.signals import RunInterrupted

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def fail_fast_flag() -> bool:
    """``run.py --fail-fast`` (it sets this variable for the launcher and the jobs)."""
    return os.environ.get("PREREG_FAIL_FAST", "") == "1"


def fail_fast(params: dict) -> bool:
    """Whether to start no job after a failure: ``hydra.launcher.fail_fast`` (taken out of
    ``params``, which go on to submitit) or ``--fail-fast``."""
    return bool(params.pop("fail_fast", False)) or fail_fast_flag()


def not_run_return(overrides: Sequence[str], why: str = "--fail-fast") -> JobReturn:
    """The JobReturn of a job the launcher did not start (``why``)."""
    ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
    ret.return_value = {"status": "not run", "reason": why}
    return ret


def make_executor(cluster: str, params: Mapping[str, Any]) -> Any:
    """submitit's executor for ``cluster`` (``"local"`` or ``"slurm"``) with the launcher's
    ``params``, exactly as ``BaseSubmititLauncher.launch`` (plugin 1.2.0) builds it.

    ``submitit_folder`` is the executor's folder, ``max_num_timeout`` (where given) its
    ``<cluster>_max_num_timeout``; the fields of ``BaseQueueConf`` are passed as they are, every
    other one as ``<cluster>_<field>``. Fields prereg handles itself are removed by the caller.
    """
    import submitit  # lazily, like the stock plugin: Hydra imports this module in every app

    params = dict(params)
    init: dict[str, Any] = {}
    if "max_num_timeout" in params:
        init[f"{cluster}_max_num_timeout"] = params.pop("max_num_timeout")
    executor = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster=cluster, **init)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{(k if k in base else f"{cluster}_{k}"): v for k, v in params.items()}
    )
    return executor


def prepare_jobs(
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


class SubmititHandOn:
    """submitit's handler for one signal, as the target prereg hands a stop on to.

    submitit's task installs its handlers before it calls the job (SIGUSR2: call the job's
    ``checkpoint()``, ``scontrol requeue``, then ``sys.exit``; SIGTERM: a log line).  When the
    SIGUSR2 one ends by SystemExit, submitit has requeued the job: that is noted at once
    (:func:`~prereg.core.requeue.note_submitit_requeue`), so the run's record, written right
    after, says ``requeued`` whether or not SLURM counts the restart yet.
    """

    #: True while prereg hands a stop on to submitit (:meth:`JobStops.checkpoint` then leaves
    #: the record to prereg); a class attribute: the launcher pickled by checkpoint() must
    #: not carry it
    active: ClassVar[bool] = False

    def __init__(self, handler: Callable[[int, Any], Any]) -> None:
        self.handler = handler

    def __call__(self, signum: int, frame: Any) -> None:
        from prereg.core.requeue import note_submitit_requeue

        SubmititHandOn.active = True
        try:
            self.handler(signum, frame)
        except SystemExit:
            note_submitit_requeue()
            raise
        finally:
            SubmititHandOn.active = False

    @classmethod
    def installed(cls) -> dict[int, SubmititHandOn]:
        """submitit's handlers for SIGTERM, SIGINT and SIGUSR2 now in place, wrapped."""
        from prereg.core.signals import INTERRUPT_SIGNALS

        handlers = {s: signal.getsignal(s) for s in INTERRUPT_SIGNALS}
        return {
            s: cls(h)
            for s, h in handlers.items()
            if callable(h) and h is not signal.default_int_handler
        }


class JobStops(BaseSubmititLauncher):
    """The job side of prereg's submitit launchers: a stop is recorded whenever it lands.

    submitit runs the job (:meth:`__call__`) under its own signal handlers, which know nothing
    of the run: a SIGUSR2 outside the run's guarded body (while Hydra composes the job, before
    the run starts, after it ended) requeued the task with ``run.json`` left ``running`` or
    ``failed``.  Here the whole call runs under
    :func:`~prereg.core.signals.interrupts_handed_on`: a signal anywhere stops the job as
    ``RunInterrupted``; the run (``guarded_run``) checkpoints, hands it on to submitit's handler
    (:class:`SubmititHandOn`), then records it; one that lands outside the run is handed on and
    recorded here (:func:`record_stop`).  Later signals (SLURM's SIGTERM after the requeue) are
    only noted, so the record is always written.
    """

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[Any, Any],
    ) -> JobReturn:
        from prereg.core.signals import RunInterrupted, interrupts_handed_on

        args = (sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
        with interrupts_handed_on(SubmititHandOn.installed()) as stops:
            try:
                return super().__call__(*args)
            except RunInterrupted as exc:
                if not stops.stop(exc).handed_on:  # it landed outside the run's guard
                    # where the run is, worked out before submitit requeues (SLURM then
                    # kills the task after its KillWait); written once it has
                    where = job_run_dir(self, sweep_overrides, job_num, singleton_state)
                    try:
                        exc.hand_on()
                    finally:
                        record_stop(where, exc)
                raise

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """What submitit's SIGUSR2 handler requeues (the same call again); the stop is
        recorded here when that handler took the signal itself, outside :meth:`__call__`
        (before it began or after it returned), where prereg had no handler installed."""
        if not SubmititHandOn.active:
            import submitit

            from prereg.core.requeue import note_submitit_requeue
            from prereg.core.signals import RunInterrupted

            signum = signal.Signals[f"SIG{submitit.JobEnvironment.USR_SIG}"]
            note_submitit_requeue()
            record_stop(job_run_dir(self, args[0], args[2], args[4]), RunInterrupted(signum))
        return super().checkpoint(*args, **kwargs)


def job_run_dir(
    launcher: BaseSubmititLauncher,
    overrides: Sequence[str],
    num: int,
    singleton_state: dict[Any, Any],
) -> tuple[Path, dict[str, Any]] | None:
    """In a job's process: its run directory and ``run.json["job"]``, composed as the job's
    call composes them (:func:`~.dead_jobs._job_dir`); None, logged, if that fails."""
    import submitit

    try:
        Singleton.set_state(singleton_state)  # as the job's call does (it may not have yet)
        setup_globals()
        return _job_dir(launcher, overrides, num, submitit.JobEnvironment().job_id)
    except Exception as err:  # noqa: BLE001 - the stop itself must go on
        log.error(f"could not work out the run directory of job #{num}: {err}")
        return None


def record_stop(where: tuple[Path, dict[str, Any]] | None, exc: RunInterrupted) -> None:
    """Record in ``run.json`` of ``where`` (:func:`job_run_dir`) a stop by ``exc`` outside the
    run's own guard: ``requeued`` when the job is being requeued, else ``failed``
    (:func:`~prereg.core.rundir.record_interrupted`).  A run that finished (completed,
    halted, skipped) or that another live process owns is left as it is; a record the run
    never wrote gets its job fields, so status views find it.  Never raises: logged."""
    from prereg.core.atomic import read_json
    from prereg.core.lease import current_owner
    from prereg.core.rundir import RunDir, record_interrupted, slurm_ids

    if where is None:
        return
    run_dir, job = where
    try:
        previous = read_json(run_dir / "run.json") or {}
        if previous.get("status") in SETTLED or current_owner(run_dir) is not None:
            return
        rd = RunDir(run_dir)
        if not previous.get("job"):
            rd.update(job=job, slurm=slurm_ids())
        record_interrupted(rd, exc, 0.0)
    except Exception as err:  # noqa: BLE001 - the stop itself must go on
        log.error(f"could not record the stop in {run_dir} ({exc}): {err}")


class BoundedLocalLauncher(JobStops):
    """submitit's local executor, with a sliding window of ``array_parallelism`` jobs.

    Each job is a separate process (submitit's local job controller) in
    ``<sweep dir>/.submitit/<pid>/``. The sweep process waits for every job to end (even after
    one died), then returns their results in order (:func:`~.dead_jobs.collect_results`: a job
    whose process was killed is written ``failed`` and does not stop the sweep or its verdict).
    """

    _EXECUTOR = "local"

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None
        num_jobs = len(job_overrides)
        assert num_jobs > 0
        params = dict(self.params)
        limit = max(1, int(params.pop("array_parallelism", None) or available_cpus()))
        stop_after_failure = fail_fast(params)
        executor = make_executor(self._EXECUTOR, params)

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(
            f"Bounded local sweep ({num_jobs} jobs, at most {limit} at once), "
            f"output dir : {sweep_dir}"
        )
        job_params = prepare_jobs(self.config, sweep_dir, job_overrides, initial_job_idx)

        jobs: list[Any] = [None] * num_jobs
        waiting = deque(range(num_jobs))
        running: set[int] = set()
        first_failure: int | None = None
        try:
            while waiting or running:
                while waiting and len(running) < limit and first_failure is None:
                    i = waiting.popleft()
                    jobs[i] = executor.submit(self, *job_params[i])
                    running.add(i)
                finished = {i for i in running if jobs[i].done()}
                running -= finished
                if stop_after_failure and first_failure is None:
                    first_failure = next((i for i in sorted(finished) if job_failed(jobs[i])), None)
                if first_failure is not None and waiting:
                    log.warning(
                        f"fail-fast: job #{initial_job_idx + first_failure} did not complete; "
                        f"{len(waiting)} job(s) not started"
                    )
                    waiting.clear()
                if not finished:
                    time.sleep(0.1)
        except BaseException as exc:
            # Ctrl-C, a signal to this process only, or any error here: the running jobs stop
            # (checkpointed, recorded) before the sweep does; no orphan job process is left
            stop_jobs([jobs[i] for i in running], exc)
            raise
        started = [i for i in range(num_jobs) if jobs[i] is not None]
        returns = collect_results(
            self, [jobs[i] for i in started], [job_overrides[i] for i in started], initial_job_idx
        )
        by_index = dict(zip(started, returns, strict=True))
        return [by_index.get(i) or not_run_return(job_overrides[i]) for i in range(num_jobs)]


class SlurmLauncher(JobStops, submitit_launcher.SlurmLauncher):
    """hydra-submitit-launcher's SlurmLauncher (one job array per sweep) that waits for every job.

    Submission is the stock one. Then :func:`~.dead_jobs.wait_for_slurm_jobs` and
    :func:`~.dead_jobs.collect_results`: a task SLURM ended without a result
    (UncompletedJobError: FAILED, CANCELLED, OUT_OF_MEMORY, NODE_FAIL, TIMEOUT; or cancelled
    while pending, which leaves no sacct record) ends ``failed`` in its ``run.json`` and the
    sweep (and its verdict) goes on. A requeued job (preemption, ``scontrol requeue``, time
    limit via ``checkpoint()``) re-runs the same Hydra job in the same directory; the runner
    resumes from its checkpoint there.
    """

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None
        num_jobs = len(job_overrides)
        assert num_jobs > 0
        params = dict(self.params)
        wait = bool(params.pop("wait", True))
        stop_after_failure = fail_fast(params)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        if not wait:
            return self._submit_and_return(params, sweep_dir, job_overrides, initial_job_idx)
        executor = make_executor(self._EXECUTOR, params)
        log.info(f"SLURM sweep ({num_jobs} jobs, one job array), output dir : {sweep_dir}")
        job_params = prepare_jobs(self.config, sweep_dir, job_overrides, initial_job_idx)
        jobs = executor.map_array(self, *zip(*job_params, strict=True))
        ids = ", ".join(sorted({str(j.job_id).split("_")[0] for j in jobs}))
        log.info(f"submitted as SLURM job {ids} ({num_jobs} tasks); waiting for every one")
        on_failure = cancel_pending(ids) if stop_after_failure else None
        lost = wait_for_slurm_jobs(jobs, on_failure=on_failure)
        return collect_results(self, jobs, job_overrides, initial_job_idx, lost)

    def _submit_and_return(
        self,
        params: dict[str, Any],
        sweep_dir: Path,
        job_overrides: Sequence[Sequence[str]],
        initial_job_idx: int,
    ) -> list[JobReturn]:
        """``wait=false``: submit the array and its verdict job, say where, and return.

        Nothing is submitted while this sweep's earlier array or verdict job is still on
        SLURM; runs completed or owned by a live process are left out of the array.
        """
        from prereg.core.atomic import read_json
        from prereg.core.lease import current_owner

        from .submission import (
            already_submitted_message,
            read_submission,
            still_on_slurm,
            submit_verdict_job,
            write_submission,
        )

        status = f"python -m prereg status {sweep_dir}"
        earlier = read_submission(sweep_dir)
        if earlier is not None:
            live = still_on_slurm(earlier)
            if live is None:
                raise RuntimeError("squeue failed: cannot tell what of this sweep is on SLURM")
            if live:
                print(already_submitted_message(sweep_dir, earlier, live), flush=True)
                return [submitted_return(o, "already on SLURM") for o in job_overrides]
        job_params = prepare_jobs(self.config, sweep_dir, job_overrides, initial_job_idx)
        todo, tasks, left = [], [], []
        for params_i, overrides in zip(job_params, job_overrides, strict=True):
            num = params_i[2]
            run_dir, job = _job_dir(self, overrides, num, f"job_id_for_{num}")
            record = read_json(run_dir / "run.json") or {}
            owner = current_owner(run_dir)
            if owner is not None or record.get("status") in ("completed", "skipped"):
                why = f"running elsewhere ({owner.describe()})" if owner else record["status"]
                left.append({"num": num, "overrides": list(overrides), "why": why})
                continue
            tasks.append({"task": len(todo), "num": num, "overrides": list(overrides),
                          "run_dir": str(run_dir), "job": job})  # fmt: skip
            todo.append(params_i)
        for item in left:
            print(f"not submitted: #{item['num']} {' '.join(item['overrides'])}: {item['why']}")
        if not todo:
            print(f"nothing to submit: every job is completed or owned. Verdict: python -m "
                  f"prereg verdict {sweep_dir}; where it stands: {status}", flush=True)  # fmt: skip
            return [submitted_return(o, "nothing submitted") for o in job_overrides]
        executor = make_executor(self._EXECUTOR, params)
        jobs = executor.map_array(self, *zip(*todo, strict=True))
        array = str(jobs[0].job_id).split("_")[0]
        write_submission(sweep_dir, array, None, tasks, left)  # a re-run sees the array at once
        try:
            verdict = submit_verdict_job(sweep_dir, array, params)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            print(f"error: {exc}; the array runs without it: python -m prereg verdict "
                  f"{sweep_dir} once it has ended", file=sys.stderr, flush=True)  # fmt: skip
            verdict = None
        write_submission(sweep_dir, array, verdict, tasks, left)
        print(
            f"submitted {len(todo)} job(s) as SLURM array job {array}, and verdict job {verdict} "
            f"(after the array ends: verdict.md/json and plots)\n  sweep dir: {sweep_dir}\n"
            f"  where it stands: {status}",
            flush=True,
        )
        return [submitted_return(o, f"array job {array}") for o in job_overrides]


def submitted_return(overrides: Sequence[str], where: str) -> JobReturn:
    """The JobReturn of a job handed to SLURM without waiting (``wait=false``)."""
    ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
    ret.return_value = {"status": "submitted", "reason": where}
    return ret


def cancel_pending(array_ids: str) -> Any:
    """``fail_fast`` on SLURM: once a task failed, cancel the array's tasks not yet started."""

    def cancel(failed_job_id: str) -> None:
        log.warning(f"fail-fast: job {failed_job_id} did not complete; cancelling the tasks "
                    f"of array {array_ids} not yet started")  # fmt: skip
        for array in array_ids.split(", "):
            subprocess.run(["scancel", "--state=PENDING", array], timeout=60, check=False)

    return cancel
