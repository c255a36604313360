"""The launcher a multirun gets when its command line names none.

Hydra's default (``basic``) runs the jobs one after another in the sweep process. A study whose
jobs use one core each (:attr:`Experiment.one_core_jobs`, exp9) leaves the other cores idle that
way, so its multirun gets ``hydra/launcher=pool`` (worker processes that live for the sweep,
:mod:`hydra_plugins.prereg_launchers.pool`) when more than one CPU is free (:func:`free_cpus`)
and there is more than one job. ``hydra/launcher=basic`` (or any other) on the command line wins.
On a machine whose cores other processes keep busy, workers would only compete with them.
A re-run into a directory that holds a sweep keeps that sweep's launcher (:func:`previous_choice`).
"Free" is measured over the sweep process's own start-up (:func:`start_cpu_window`): the CPU
time the machine spent outside this process since then. The 1-minute load average, used where
no window was started, still counts a sweep that ended seconds ago: a second sweep started
right after a first one got the sequential launcher.
"""

from __future__ import annotations

from prereg.sweep.preflight import Plan

POOL = "hydra/launcher=pool"

#: A window shorter than this says too little; :func:`free_cpus` uses the load average then.
MIN_WINDOW_S = 0.25

_window: tuple[float, float, float] | None = None  # (wall, busy CPU s of our CPUs, own CPU s)


def _busy_and_own() -> tuple[float, float]:
    """(CPU seconds the CPUs this process may use have been busy, this process's CPU seconds)."""
    import os
    import time

    import psutil

    try:
        mine = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        mine = None
    per_cpu = psutil.cpu_times(percpu=True)
    busy = sum(
        sum(t) - t.idle - getattr(t, "iowait", 0.0)
        for i, t in enumerate(per_cpu)
        if mine is None or i in mine
    )
    return busy, time.process_time()


def start_cpu_window() -> None:
    """Start measuring what other processes use (``run.py`` calls it first thing)."""
    import time

    global _window
    _window = (time.monotonic(), *_busy_and_own())


def busy_elsewhere() -> float | None:
    """CPUs kept busy by other processes since :func:`start_cpu_window` (0.8: one core 80 %
    busy); None without a window of at least :data:`MIN_WINDOW_S`."""
    import time

    if _window is None:
        return None
    wall = time.monotonic() - _window[0]
    if wall < MIN_WINDOW_S:
        return None
    busy, own = _busy_and_own()
    return max(0.0, (busy - _window[1]) - (own - _window[2])) / wall


def free_cpus() -> int:
    """The CPUs this process may use less those other processes keep busy, at least 1.

    Busy: :func:`busy_elsewhere` rounded to the nearest CPU; without a window, the 1-minute
    load average rounded down."""
    import os

    from hydra_plugins.prereg_launchers.launcher import available_cpus

    busy = busy_elsewhere()
    if busy is not None:
        return max(1, available_cpus() - int(busy + 0.5))
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform: count every CPU as free
        load = 0.0
    return max(1, available_cpus() - int(load))


def names_launcher(argv: list[str]) -> bool:
    """Whether the command line picks a launcher itself."""
    return any(a.lstrip("+~").startswith("hydra/launcher=") for a in argv)


def previous_choice(plan: Plan) -> bool | None:
    """Whether the earlier sweep in this command's ``hydra.sweep.dir`` got the pool (its
    ``multirun.yaml``); None when that directory is not fixed (``outputs/${now:...}``) or no
    sweep ran there. The directory is the composed one, however it is set (the command line,
    ``++hydra.sweep.dir``, an experiment's or a study's config).

    A re-run keeps the earlier choice, so the Hydra records of finished jobs (``.hydra/``),
    rewritten before every job, keep their bytes whatever the machine's load is now."""
    from dataclasses import replace

    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from prereg.sweep.outputdir import output_location

    # composed as check_output_dir will compose it if the pool is chosen: one composition
    likely = replace(plan, overrides=[*plan.overrides, POOL])
    try:
        cfg = plan.loader.load_configuration(
            plan.config_name, likely.hydra_overrides, RunMode.MULTIRUN
        )
        raw = str(OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["dir"])
    except Exception:  # noqa: BLE001 - Hydra reports a config it cannot compose
        return None
    directory, fixed = output_location(raw)
    record = directory / "multirun.yaml"
    if not fixed or not record.is_file():
        return None
    try:
        overrides = list(OmegaConf.load(record).hydra.overrides.hydra)
    except Exception:  # noqa: BLE001 - an unreadable record: decide afresh
        return None
    return POOL in overrides


def with_default_launcher(plan: Plan, cpus: int | None = None) -> list[str]:
    """The planned argv, with :data:`POOL` added where the module docstring says (``cpus``:
    the free CPUs; None asks the OS, :func:`free_cpus`)."""
    from hydra.types import RunMode

    from prereg.core.experiments import experiment_or_none

    if not (plan.multirun and plan.jobs and len(plan.jobs) > 1) or names_launcher(plan.argv):
        return plan.argv
    previous = previous_choice(plan)
    if previous is not None:  # a re-run keeps the launcher its directory's records name
        if previous:
            plan.argv, plan.overrides = [*plan.argv, POOL], [*plan.overrides, POOL]
        return plan.argv
    if cpus is None:
        cpus = free_cpus()
    if cpus < 2:
        return plan.argv
    try:
        cfg = plan.loader.load_configuration(plan.config_name, plan.jobs[0], RunMode.RUN)
    except Exception:  # noqa: BLE001 - the precheck has already reported a bad command line
        return plan.argv
    exp = experiment_or_none(str(cfg.get("runner")))
    if exp is None or not exp.one_core_jobs:
        return plan.argv
    plan.argv, plan.overrides = [*plan.argv, POOL], [*plan.overrides, POOL]
    return plan.argv


def prestart_pool(plan: Plan) -> int:
    """Start a pool sweep's workers now (how many: :func:`pool_size`), so that they import the
    study (JAX) while this process composes the jobs for Hydra; the launcher adopts them. The
    number started (0: not a pool sweep, or its configs do not compose: Hydra says why)."""
    from hydra.types import RunMode

    if not (plan.multirun and plan.jobs and POOL in plan.overrides):
        return 0
    try:
        job = plan.loader.load_configuration(plan.config_name, plan.jobs[0], RunMode.RUN)
        hydra_overrides = plan.hydra_overrides
        master = plan.loader.load_configuration(plan.config_name, hydra_overrides, RunMode.MULTIRUN)
    except Exception:  # noqa: BLE001 - Hydra reports it; the launcher starts its own workers
        return 0
    from hydra_plugins.prereg_launchers.pool import prestart_configured

    return prestart_configured(str(job.get("runner", "")), master.hydra.launcher, len(plan.jobs))


def end_pool_workers() -> None:
    """Wait for the pool's workers to exit, and end those started for a sweep that never
    reached its launcher (bad input)."""
    import sys

    pool = sys.modules.get("hydra_plugins.prereg_launchers.pool")
    if pool is not None:
        pool.end_workers()
