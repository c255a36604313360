"""The launcher a multirun gets when its command line names none.

Hydra's default (``basic``) runs the jobs one after another in the sweep process. A study whose
jobs use one core each (:attr:`Experiment.one_core_jobs`, exp9) leaves the other cores idle that
way, so its multirun gets ``hydra/launcher=pool`` (worker processes that live for the sweep,
:mod:`hydra_plugins.prereg_launchers.pool`) when more than one CPU is free (:func:`free_cpus`)
and there is more than one job. ``hydra/launcher=basic`` (or any other) on the command line wins.
On a machine whose cores other processes keep busy, workers would only compete with them.
"""

from __future__ import annotations

from prereg.sweep.preflight import Plan

POOL = "hydra/launcher=pool"


def free_cpus() -> int:
    """The CPUs this process may use less the 1-minute load average (rounded down), at least 1."""
    import os

    from hydra_plugins.prereg_launchers.launcher import available_cpus

    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform: count every CPU as free
        load = 0.0
    return max(1, available_cpus() - int(load))


def names_launcher(argv: list[str]) -> bool:
    """Whether the command line picks a launcher itself."""
    return any(a.lstrip("+~").startswith("hydra/launcher=") for a in argv)


def with_default_launcher(plan: Plan, cpus: int | None = None) -> list[str]:
    """The planned argv, with :data:`POOL` added where the module docstring says (``cpus``:
    the free CPUs; None asks the OS, :func:`free_cpus`)."""
    from hydra.types import RunMode

    from prereg.core.experiments import experiment_or_none

    if not (plan.multirun and plan.jobs and len(plan.jobs) > 1) or names_launcher(plan.argv):
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
    from hydra_plugins.prereg_launchers.pool import pool_size, prestart

    count = pool_size(master.hydra.launcher.get("workers"), len(plan.jobs))
    prestart(str(job.get("runner", "")), count)
    return count


def stop_prestarted() -> None:
    """End pool workers started for a sweep that never reached its launcher (bad input)."""
    import sys

    pool = sys.modules.get("hydra_plugins.prereg_launchers.pool")
    if pool is not None:
        pool.stop_prestarted()
