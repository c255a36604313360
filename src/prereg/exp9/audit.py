"""``python -m prereg audit`` for exp9: how much its verdict can be trusted, before or after.

With a registration only: what its P2 gates can say by chance (the consistency count is a
count of coin flips if the auxiliary term does nothing: exact binomial), how many arms are
tested (a generalised registration tests each augmented arm), and the trust section's
constants.  With a sweep dir: the verdict's "How much this verdict can be trusted" section.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prereg.core.stats import pass_probability
from prereg.exp9 import trust
from prereg.exp9.arms import augmented


def chance_pass(pairs: int, count: int) -> float:
    """P(at least ``count`` of ``pairs`` ratios exceed 1) when each does so with probability 1/2
    independently (an auxiliary term with no effect): the consistency gate's false pass."""
    return pass_probability(pairs, count / pairs, 0.5) if pairs else 0.0


def registration_lines(reg: Mapping[str, Any]) -> list[str]:
    """The audit of a registration, before anything runs."""
    pairs = len(reg["cells"]) * len(reg["thresholds"])
    count, arms = int(reg["consistency_count"]), augmented(reg)
    p = chance_pass(pairs, count)
    any_arm = 1 - (1 - p) ** len(arms)
    tested = f"- Arms tested against the baseline: {len(arms)} ({', '.join(arms)})"
    if len(arms) > 1:
        tested += (
            f"; by chance at least one passes the count gate with probability {any_arm:.4f} "
            "if the arms were independent (they share the baseline: a rough figure)"
        )
    return [
        f"## How much this verdict can be trusted — {reg['name']} (before any run)",
        "",
        f"- P2 consistency gate: at least {count} of {pairs} pairs with r > 1. If the auxiliary "
        "term did nothing and each pair's r fell above or below 1 with probability 1/2 "
        f"(independently), the count would pass by chance with probability {p:.4f} "
        f"(exact binomial); the median gate (r >= {reg['steering_bar']:g}) must pass too.",
        tested + ".",
        f"- Early pairs: an arm that crosses before step {trust.EARLY_STEPS} is compared before "
        "its auxiliary term has acted (ratio near 1 by construction); how many of the "
        f"{pairs} pairs are early is known only after the sweep (registered thresholds "
        f"{', '.join(f'{e:g}' for e in reg['thresholds'])} of the initial KL).",
        f"- Window: every ratio is also recomputed from medians of rho over +-{trust.WINDOW} "
        "steps around each crossing (reported, not a gate).",
    ]


def audit(registration: Mapping[str, Any], sweep_dir: Path | None = None) -> str:
    """The registration's audit, or (with ``sweep_dir``) that sweep's trust section too."""
    lines = registration_lines(registration)
    if sweep_dir is not None:
        from prereg.exp9.verdict import compute_verdict
        from prereg.exp9.verdict_md import trust_lines

        v = compute_verdict(Path(sweep_dir))
        if "refused" in v:
            return f"{sweep_dir}: {v['refused']}"
        lines += ["", *trust_lines(v)]
    return "\n".join(lines).rstrip("\n")
