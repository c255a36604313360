"""A multirun's swept values in the order its study asks for (:attr:`Experiment.sweep_order`).

Hydra launches a sweep's jobs in the order the command line lists the values (``glob(*)`` is
alphabetical).  A study that needs another order (the Path-B ladder: registered candidate
order) names a ``sweep_order`` function; the command line is rewritten before Hydra starts,
so every launcher (in-process, local processes, a SLURM array) runs the jobs in that order.
"""

from __future__ import annotations

from pathlib import Path


def study_sweep_order(argv: list[str], conf_dir: Path | str) -> list[str]:
    """``argv`` with each swept value list in its study's order; unchanged when none applies.

    A command line that does not compose comes back unchanged (the precheck has already
    reported it).
    """
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    from prereg.core.experiments import experiment_or_none
    from prereg.sweep.precheck import _loader, expand_jobs

    try:
        args = get_args_parser().parse_args(argv)
        multirun = bool(args.multirun) or "hydra.mode=MULTIRUN" in args.overrides
        if not multirun:
            return argv
        loader = _loader(conf_dir)
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(args.overrides)
        sweeps = [o for o in parsed if o.is_sweep_override()]
        if not sweeps:
            return argv
        job = expand_jobs(loader, list(args.overrides), multirun=True)[0]
        cfg = loader.load_configuration(args.config_name or "config", job, run_mode=RunMode.RUN)
        exp = experiment_or_none(str(cfg.get("runner")))
        order = exp.order_function() if exp is not None else None
        if order is None:
            return argv
        rewritten = list(argv)
        for sweep in sweeps:
            key = sweep.get_key_element().lstrip("+")
            values = list(sweep.sweep_string_iterator())
            ordered = order(cfg, key, values)
            if ordered is None:  # the study does not order this key
                continue
            new = f"{sweep.get_key_element()}={','.join(ordered)}"
            print(f"{exp.name}: {key} values in registered order: {', '.join(ordered)}")
            rewritten = [new if a == sweep.input_line else a for a in rewritten]
        return rewritten
    except Exception:  # noqa: BLE001 - never block a run over its order
        return argv
