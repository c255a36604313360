"""A multirun's swept values in the order its study asks for (:attr:`Experiment.sweep_order`).

Hydra launches a sweep's jobs in the order the command line lists the values (``glob(*)`` is
alphabetical).  A study that needs another order (the Path-B ladder: registered candidate
order) names a ``sweep_order`` function; the command line is rewritten before Hydra starts,
so every launcher (in-process, local processes, a SLURM array) runs the jobs in that order.
"""

from __future__ import annotations

from prereg.sweep.preflight import Plan


def study_sweep_order(plan: Plan) -> list[str]:
    """The planned argv with each swept value list in its study's order (``plan`` updated too).

    Unchanged for a single run, a sweeper other than the basic one, a study without a
    ``sweep_order``, or a command line whose first job does not compose (the precheck has
    already reported that).
    """
    from hydra.types import RunMode

    from prereg.core.experiments import experiment_or_none

    if not (plan.multirun and plan.basic and plan.sweeps and plan.jobs):
        return plan.argv
    try:
        cfg = plan.loader.load_configuration(plan.config_name, plan.jobs[0], RunMode.RUN)
    except Exception:  # noqa: BLE001 - never block a run over its order
        return plan.argv
    exp = experiment_or_none(str(cfg.get("runner")))
    order = exp.order_function() if exp is not None else None
    if order is None:
        return plan.argv
    argv, overrides, values = list(plan.argv), list(plan.overrides), []
    for sweep in plan.sweeps:
        key = sweep.get_key_element()
        listed = list(sweep.sweep_string_iterator())
        ordered = order(cfg, key.lstrip("+"), listed)
        if ordered is None:  # the study does not order this key
            values.append(listed)
            continue
        new = f"{key}={','.join(ordered)}"
        print(f"{exp.name}: {key.lstrip('+')} values in registered order: {', '.join(ordered)}")
        argv = [new if a == sweep.input_line else a for a in argv]
        overrides = [new if a == sweep.input_line else a for a in overrides]
        values.append(list(ordered))
    # the planned jobs follow suit: the basic sweeper's order is the product of the swept values
    # in command-line order, i.e. sorted by each swept value's position in its (new) list. Of a
    # key given twice (``a=0,1 a=3``) the sweeper keeps the last override only, so only a sweep
    # that is its key's last override orders the jobs
    last = {o.get_key_element(): o for o in plan.parsed}
    ranks = [
        (sweep.get_key_element(), {v: i for i, v in enumerate(vals)})
        for sweep, vals in zip(plan.sweeps, values, strict=True)
        if last[sweep.get_key_element()] is sweep
    ]

    def position(job: list[str]) -> tuple[int, ...]:
        chosen = dict(o.split("=", 1) for o in job)
        return tuple(r[chosen[k]] for k, r in ranks)

    plan.jobs.sort(key=position)
    plan.argv, plan.overrides = argv, overrides
    return argv
