"""prereg's launchers: :class:`BoundedLocalLauncher` (``hydra/launcher=local``) and
:class:`SlurmLauncher` (``hydra/launcher=slurm``), both built on hydra-submitit-launcher 1.2.0.

Both set up submitit's executor the same way (:func:`make_executor`), submit the jobs Hydra
hands them, wait for every one, and return every job's result in order, recording the jobs
that died without one (:func:`~.dead_jobs.collect_results`) instead of raising at the first.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf

from .dead_jobs import collect_results, wait_for_slurm_jobs

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


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
        executor = make_executor(self._EXECUTOR, self.params)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(f"SLURM sweep ({num_jobs} jobs, one job array), output dir : {sweep_dir}")
        job_params = prepare_jobs(self.config, sweep_dir, job_overrides, initial_job_idx)
        jobs = executor.map_array(self, *zip(*job_params, strict=True))
        ids = ", ".join(sorted({str(j.job_id).split("_")[0] for j in jobs}))
        log.info(f"submitted as SLURM job {ids} ({num_jobs} tasks); waiting for every one")
        lost = wait_for_slurm_jobs(jobs)
        return collect_results(self, jobs, job_overrides, initial_job_idx, lost)
