"""Pure functions over an exp9 run's metrics table: crossings, finals, fidelity gates.

Shared by the runner (to fill ``summary.json``) and the verdict (which recomputes
everything from ``metrics.csv``), so both always agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

METRIC_COLUMNS = [
    "step",
    "kl",
    "rho",
    "signal",
    "noise",
    "rho_proj",
    "noise_proj",
    "loss",
    "grad_norm",
]


def diagnostic_steps(step_cap: int, count: int) -> list[int]:
    """``count`` steps evenly spaced over 0..step_cap-1, first and last included (deduplicated)."""
    return sorted({int(round(x)) for x in np.linspace(0, step_cap - 1, count)})


def first_nonfinite(frame: pd.DataFrame) -> tuple[int, str] | None:
    """(step, column) of the first non-finite logged value, or None when all are finite."""
    from prereg.training.nonfinite import first_nonfinite as first

    return first(frame["step"].to_numpy(), {c: frame[c] for c in METRIC_COLUMNS})


def crossing(frame: pd.DataFrame, kl_threshold: float) -> dict[str, Any] | None:
    """The first logged step whose KL <= threshold, with rho/signal/noise there; None if never."""
    hit = frame.index[frame["kl"].to_numpy() <= kl_threshold]
    if len(hit) == 0:
        return None
    row = frame.loc[hit[0]]
    return {k: float(row[k]) for k in ("step", "kl", "rho", "signal", "noise")}


def crossings(frame: pd.DataFrame, thresholds: Sequence[float]) -> dict[str, Any]:
    """Crossings of each threshold eps * (the run's initial KL), keyed by ``str(eps)``."""
    kl0 = float(frame["kl"].iloc[0])
    return {str(eps): crossing(frame, eps * kl0) for eps in thresholds}


def finals(frame: pd.DataFrame, window: int) -> dict[str, float]:
    """Last-step figures and medians over the last ``window`` steps (Adam oscillates at the end)."""
    last = frame.iloc[-1]
    tail = frame.iloc[-window:]
    out = {f"last_{k}": float(last[k]) for k in ("step", "kl", "rho", "signal", "noise")}
    out.update({f"median_{k}": float(tail[k].median()) for k in ("kl", "rho", "signal", "noise")})
    return out


def fidelity_gate(gap: float, gates: Mapping[str, float]) -> float | None:
    """The registered LU-vs-eigen tolerance at this gap, or None where the gate does not apply."""
    if not math.isfinite(gap) or gap < gates["fidelity_min_gap"]:
        return None
    return max(gates["fidelity_abs"], gates["fidelity_gap_scale"] / gap)


def relative_error(a: float, b: float) -> float:
    """|a - b| / max(|a|, |b|) (0 when both are 0)."""
    den = max(abs(a), abs(b))
    return 0.0 if den == 0 else abs(a - b) / den
