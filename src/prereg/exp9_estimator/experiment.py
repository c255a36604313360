"""exp9_estimator, defined once: config, registration, checks, runner, verdict, figures."""

from __future__ import annotations

from typing import Any

from prereg.core.experiment import Experiment
from prereg.exp9_estimator.config import NAME, Exp9EstConfig, Exp9EstRegistration


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """``prereg compare`` columns: each check's headline figure."""
    get = lambda part, key: (summary.get(part) or {}).get(key)  # noqa: E731
    return {
        "thetas": summary.get("thetas"),
        "E1.worst_z": get("E1", "worst_z"),
        "E2.spearman": get("E2", "spearman"),
        "E3.fraction": get("E3", "fraction"),
        "E4.median_ratio_emp": get("E4", "median_ratio_emp"),
        "E5.earlier": get("E5", "earlier"),
    }


def headline(summary: dict[str, Any]) -> str:
    """The outcome and E1-E4's figures in one line."""
    e1, e2, e3, e4 = (summary[k] for k in ("E1", "E2", "E3", "E4"))
    return (
        f"outcome {summary['outcome']['number']}; E1 worst z {e1['worst_z']:.3g} "
        f"(bound {e1['z']:.3g}), E2 Spearman {e2['spearman']:.3g}, "
        f"E3 {e3['within']}/{e3['n']} within x{e3['factor']:g}, "
        f"E4 median ratio {e4['median_ratio_emp']:.3g}"
    )


EXPERIMENTS = [
    Experiment(
        name=NAME,
        description="exp9's estimator tier: does rho predict real Gibbs-chain gradient noise?",
        config=Exp9EstConfig,
        registration=Exp9EstRegistration,
        run="prereg.exp9_estimator.runner:run",
        validate="prereg.exp9_estimator.validate:validate",
        verdict="prereg.exp9_estimator.verdict:write_verdict",
        figures=figures,
        headline=headline,
    )
]
