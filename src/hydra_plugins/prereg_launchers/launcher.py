"""prereg's launchers: :class:`BoundedLocalLauncher` (``hydra/launcher=local``) and
:class:`SlurmLauncher` (``hydra/launcher=slurm``), both built on hydra-submitit-launcher 1.2.0.

Both set up submitit's executor the same way (:func:`make_executor`), submit the jobs Hydra
hands them, wait for every one, and return every job's result in order, recording the jobs
that died without one (:func:`~.dead_jobs.collect_results`) instead of raising at the first.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf

from .dead_jobs import collect_results, job_failed, wait_for_slurm_jobs

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


class BoundedLocalLauncher(BaseSubmititLauncher):
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
        except BaseException:
            # Ctrl-C (or any error here): do not leave orphan job processes behind.
            for i in running:
                try:
                    jobs[i].cancel(check=False)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
            raise
        started = [i for i in range(num_jobs) if jobs[i] is not None]
        returns = collect_results(
            self, [jobs[i] for i in started], [job_overrides[i] for i in started], initial_job_idx
        )
        by_index = dict(zip(started, returns, strict=True))
        return [by_index.get(i) or not_run_return(job_overrides[i]) for i in range(num_jobs)]


class SlurmLauncher(submitit_launcher.SlurmLauncher):
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

        from .dead_jobs import _job_dir
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
