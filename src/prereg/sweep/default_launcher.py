"""The launcher a multirun gets when its command line names none.

Hydra's default (``basic``) runs the jobs one after another in the sweep process. A study whose
jobs use one core each (:attr:`Experiment.one_core_jobs`, exp9) leaves the other cores idle that
way, so its multirun gets ``hydra/launcher=pool`` (worker processes that live for the sweep,
:mod:`hydra_plugins.prereg_launchers.pool`) when this process may use more than one CPU and
there is more than one job. ``hydra/launcher=basic`` (or any other) on the command line wins.
"""

from __future__ import annotations

from prereg.sweep.preflight import Plan

POOL = "hydra/launcher=pool"


def names_launcher(argv: list[str]) -> bool:
    """Whether the command line picks a launcher itself."""
    return any(a.lstrip("+~").startswith("hydra/launcher=") for a in argv)


def with_default_launcher(plan: Plan, cpus: int | None = None) -> list[str]:
    """The planned argv, with :data:`POOL` added where the module docstring says (``cpus``:
    the CPUs this process may use; None asks the OS)."""
    from hydra.types import RunMode

    from prereg.core.experiments import experiment_or_none

    if not (plan.multirun and plan.jobs and len(plan.jobs) > 1) or names_launcher(plan.argv):
        return plan.argv
    if cpus is None:
        from hydra_plugins.prereg_launchers.launcher import available_cpus

        cpus = available_cpus()
    if cpus < 2:
        return plan.argv
    try:
        cfg = plan.loader.load_configuration(plan.config_name, plan.jobs[0], RunMode.RUN)
    except Exception:  # noqa: BLE001 - the precheck has already reported a bad command line
        return plan.argv
    exp = experiment_or_none(str(cfg.get("runner")))
    if exp is None or not exp.one_core_jobs:
        return plan.argv
    plan.argv = [*plan.argv, POOL]
    return plan.argv
