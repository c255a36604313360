"""Recompute whichever verdict a sweep directory calls for, from disk."""

from __future__ import annotations

from pathlib import Path

from prereg.core.experiments import experiment_or_none
from prereg.core.rundirs import find_runs


def sweep_experiment(sweep_dir: Path) -> str | None:
    """The experiment recorded by the runs of a sweep (the first run.json that names one)."""
    for run in find_runs([sweep_dir]):
        exp = (run.run or {}).get("experiment")
        if exp:
            return exp
    return None


def write_any_verdict(sweep_dir: Path) -> str:
    """Write verdict.json/verdict.md for the sweep's experiment and return the markdown."""
    exp = sweep_experiment(sweep_dir)
    study = experiment_or_none(exp)
    writer = study.verdict_writer() if study is not None else None
    if writer is None:
        return f"{sweep_dir}: no verdict for experiment {exp!r} (no run.json naming one found)"
    return writer(sweep_dir)
