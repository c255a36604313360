"""exp9, defined once: its config, registration, checks, runner, verdict and compare figures."""

from __future__ import annotations

from typing import Any

from prereg.core.experiment import Experiment
from prereg.exp9.config import Exp9Config, Exp9Registration


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """exp9: KL and rho at start/end/median of the final window, and the crossing steps."""
    out = {
        k: summary.get(k) for k in ("initial_kl", "last_kl", "median_kl", "last_rho", "median_rho")
    }
    crossings = summary.get("crossings")
    if isinstance(crossings, dict):
        for eps, hit in crossings.items():
            # a crossing that never happened is recorded as null: an empty cell
            out[f"crossings.{eps}.step"] = hit.get("step") if isinstance(hit, dict) else None
    return out


def headline(summary: dict[str, Any]) -> str:
    """exp9's closing figures: KL and rho at the last step, then their final-window medians."""
    return (
        f"final KL {summary['last_kl']:.4g}, rho {summary['last_rho']:.4g} at step "
        f"{int(summary['last_step'])} (final-window medians: KL {summary['median_kl']:.4g}, "
        f"rho {summary['median_rho']:.4g})"
    )


EXPERIMENTS = [
    Experiment(
        name="exp9",
        description="an RBM trained with a trainability predictor as an auxiliary loss",
        config=Exp9Config,
        registration=Exp9Registration,
        run="prereg.exp9.runner:run",
        validate="prereg.exp9.validate:validate",
        verdict="prereg.exp9.verdict:write_verdict",
        figures=figures,
        headline=headline,
        sweep_order="prereg.exp9.arms:sweep_order",  # registered arms only; largest cells first
        audit="prereg.exp9.audit:audit",
        one_core_jobs=True,  # single-threaded solves: a sweep's jobs share the cores (pool)
        preload=(  # what a job imports lazily (JAX, optax): a pool worker's, ahead of its jobs
            "prereg.exp9.train",
            "prereg.exp9.finite_diff",
            "prereg.exp9.diagnostics",
            "prereg.exp9.reference",
        ),
    )
]
