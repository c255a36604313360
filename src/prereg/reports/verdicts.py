"""Recompute whichever verdict a sweep directory calls for, from disk."""

from __future__ import annotations

from pathlib import Path

from prereg.reports.rundirs import find_runs
from prereg.sweep.callbacks import verdict_function


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
    writer = verdict_function(exp or "")
    if writer is None:
        return f"{sweep_dir}: no verdict for experiment {exp!r} (no run.json naming one found)"
    return writer(sweep_dir)
