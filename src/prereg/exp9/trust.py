"""The exp9 side of "How much this verdict can be trusted" (reported, never a gate).

Two robustness figures for each P2 pair (an augmented arm against the baseline at a matched
KL crossing):

- **early**: the arm crossed before its auxiliary term has acted on it.  All arms of a cell
  start from the same theta (paired design) and Adam moves each coordinate by about lr per step
  whatever the gradient's size, so a small aux term only bends a path the arms share at first;
  a ratio taken there is near 1 by construction, whatever the aux term does later.
  :data:`EARLY_STEPS` = 50, measured on the registered exp9_v2 sweep (lr 0.01; its rho0_01 arm
  is exp9_v1's primary): the same-step KL of the rho0_01 and noise0_1 arms first departs from
  the baseline's by 1% between steps 12 and 35, every pair crossed before step 50 has
  0.90 <= r <= 1.15, and the pairs crossed later range from 0.98 to 14.9.  (With lambda >= 0.1
  in the rho form the KL departs within the first 6 steps: there the count over-counts.)
- **window**: the pair ratio recomputed from medians of rho over +-:data:`WINDOW` steps around
  each arm's crossing, instead of the single crossing step: Adam's step-to-step oscillation of
  rho cannot decide it, while 21 steps are short against the crossing times (tens to hundreds).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

#: A pair whose arm crossed before this step is "early" (the aux term has not acted yet).
EARLY_STEPS = 50
#: Half-width, in steps, of the window of rho medians around each crossing.
WINDOW = 10


def window_median(frame: pd.DataFrame, step: int, half: int = WINDOW) -> float | None:
    """Median of rho over the logged steps within ``half`` of ``step`` (None if none)."""
    steps = frame["step"].to_numpy()
    near = frame["rho"].to_numpy()[(steps >= step - half) & (steps <= step + half)]
    return float(statistics.median(near)) if len(near) else None


def pair_trust(
    pair: Mapping[str, Any], arm: pd.DataFrame | None, baseline: pd.DataFrame | None
) -> dict[str, Any]:
    """One P2 pair: whether it is early, and its windowed ratio (None without both crossings)."""
    t_a, t_b = pair.get("t_arm"), pair.get("t_baseline")
    early = t_a is not None and t_a < EARLY_STEPS
    ratio = None
    if t_a is not None and t_b is not None and arm is not None and baseline is not None:
        num, den = window_median(arm, t_a), window_median(baseline, t_b)
        ratio = num / den if num is not None and den else None
    return {"cell": pair["cell"], "eps": pair["eps"], "t_arm": t_a, "t_baseline": t_b,
            "ratio": pair.get("ratio"), "early": early, "window_ratio": ratio}  # fmt: skip


def arm_trust(
    rows: Sequence[dict[str, Any]], steering_bar: float, consistency_count: int
) -> dict[str, Any]:
    """An arm's trust figures from its pairs' :func:`pair_trust` rows: the early count, the
    median ratio without the early pairs, and the P2 decision the windowed ratios would give."""
    late = [r["ratio"] for r in rows if not r["early"] and r["ratio"] is not None]
    windowed = [r["window_ratio"] for r in rows if r["window_ratio"] is not None]
    median_w = statistics.median(windowed) if windowed else None
    count_w = sum(r > 1 for r in windowed)
    return {
        "n_pairs": len(rows),
        "early_pairs": sum(r["early"] for r in rows),
        "early": [f"{r['cell']}@{r['eps']}" for r in rows if r["early"]],
        "late_median_ratio": statistics.median(late) if late else None,
        "late_pairs": len(late),
        "window_median_ratio": median_w,
        "window_count_gt_1": count_w,
        "window_pairs": len(windowed),
        "window_p2_pass": (
            None
            if len(windowed) < len(rows) or not rows
            else median_w >= steering_bar and count_w >= consistency_count
        ),
        "pairs": list(rows),
    }
