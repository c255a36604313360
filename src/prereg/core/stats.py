"""How sure a figure is: intervals and exact operating characteristics of registered gates.

Pure functions (numpy/scipy, no I/O) shared by the verdicts, ``compare`` and ``audit``
(DESIGN section 10).  Binomial questions are answered exactly by summing the binomial (or the
joint binomial of two independent evals), never by simulation.  Rates compare to their gates
after rounding to :data:`DECIMALS` decimals, as the ladder does, so a gap equal to its gate in
decimal (0.4 - 0.3 <= 0.1) counts as equal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DECIMALS = 12


def _st():
    """``scipy.stats``, imported on first use: it takes 1-2 s to import, and a verdict that
    computes no interval (exp9's) should not wait for it."""
    from scipy import stats

    return stats


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (NaNs when n == 0)."""
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in [0, n]; got k={k}, n={n}")
    z = float(_st().norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends, no 1e-18 rounding residue
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def min_successes(n: int, min_rate: float) -> int:
    """The fewest successes k out of n with k/n >= ``min_rate`` (after the ladder's rounding)."""
    k = max(0, math.ceil(min_rate * n) - 1)
    while k <= n and round(k / n, DECIMALS) < min_rate:
        k += 1
    return k


def pass_probability(n: int, min_rate: float, p: float) -> float:
    """P(X/n >= min_rate) for X ~ Binomial(n, p): a policy of true rate p passing a rate gate."""
    return float(_st().binom.sf(min_successes(n, min_rate) - 1, n, p))


def wilson_pass_probability(n: int, min_rate: float, p: float, confidence: float = 0.95) -> float:
    """P(Wilson lower bound of X/n >= min_rate) for X ~ Binomial(n, p) (exact sum)."""
    ks = [k for k in range(n + 1) if wilson_interval(k, n, confidence)[0] >= min_rate]
    return float(_st().binom.pmf(ks, n, p).sum()) if ks else 0.0


def _joint(n1: int, n2: int, p: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes (X, Y) and their probabilities for independent Binomial(n1, p), Binomial(n2, p)."""
    x = np.arange(n1 + 1)[:, None]
    y = np.arange(n2 + 1)[None, :]
    prob = _st().binom.pmf(x, n1, p) * _st().binom.pmf(y, n2, p)
    return x, y, prob


def gap_fail_probability(n1: int, n2: int, p: float, max_gap: float) -> float:
    """P(|X/n1 - Y/n2| > max_gap) for an identical policy (both evals at true rate p), exact.

    With n1 = n2 = 32 and max_gap 0.10 this is the chance that the v1 Stage 3 fails a policy
    that did not change: 0.382 at p = 0.5, 0.339 at 0.7, 0.141 at 0.9, 0.013 at 0.97.
    """
    x, y, prob = _joint(n1, n2, p)
    gap = np.round(np.abs(x / n1 - y / n2), DECIMALS)
    return float(prob[gap > max_gap].sum())


@dataclass(frozen=True)
class TwoProportion:
    """A two-sided pooled z-test of p1 == p2 (score test; p_value 1 when both rates are 0 or 1)."""

    diff: float
    z: float
    p_value: float


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> TwoProportion:
    """Pooled two-proportion z-test of equal success rates (two-sided)."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"n1 and n2 must be >= 1; got {n1}, {n2}")
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return TwoProportion(p1 - p2, 0.0, 1.0)
    z = (p1 - p2) / se
    return TwoProportion(p1 - p2, z, float(2 * _st().norm.sf(abs(z))))


def two_proportion_fail_probability(n1: int, n2: int, p: float, alpha: float) -> float:
    """P(the two-proportion test rejects at ``alpha``) for an identical policy at true rate p."""
    x, y, prob = _joint(n1, n2, p)
    xs, ys = np.broadcast_arrays(x, y)
    pooled = (xs + ys) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (xs / n1 - ys / n2) / np.where(se > 0, se, 1.0), 0.0)
    p_value = 2 * _st().norm.sf(np.abs(z))
    return float(prob[p_value < alpha].sum())


@dataclass(frozen=True)
class SlopeFit:
    """An OLS slope with its standard error and one-sided upper bound."""

    slope: float
    se: float
    upper: float
    dof: int
    n: int


def slope_upper_bound(
    x: Sequence[float],
    y: Sequence[float],
    groups: Sequence[object] | None = None,
    confidence: float = 0.95,
) -> SlopeFit:
    """Slope of the OLS regression of y on x, and its one-sided upper ``confidence`` bound.

    With ``groups`` (e.g. training seeds) each group gets its own intercept and the slope is
    shared (the within estimator), so seeds at different levels pool into one trend.  The
    bound uses Student's t with n - groups - 1 degrees of freedom; NaNs when that is < 1 or x
    does not vary.
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    g = (
        np.zeros(len(xa), dtype=int)
        if groups is None
        else np.unique(np.asarray(groups), return_inverse=True)[1]
    )
    n_groups = int(g.max()) + 1 if len(g) else 0
    xc, yc = xa.copy(), ya.copy()
    for j in range(n_groups):
        m = g == j
        xc[m] -= xa[m].mean()
        yc[m] -= ya[m].mean()
    sxx = float(np.sum(xc * xc))
    dof = len(xa) - n_groups - 1
    if sxx == 0 or dof < 1:
        return SlopeFit(math.nan, math.nan, math.nan, max(dof, 0), len(xa))
    slope = float(np.sum(xc * yc) / sxx)
    resid = yc - slope * xc
    se = math.sqrt(float(np.sum(resid * resid)) / dof / sxx)
    upper = slope + float(_st().t.ppf(confidence, dof)) * se
    return SlopeFit(slope, se, upper, dof, len(xa))


def window_deltas(values: Sequence[float], window: int, last: int) -> np.ndarray:
    """``v[end] - v[end - window + 1]`` for every window ending in the final ``last`` entries.

    This is the v1 log_std change (log_std[-1] - log_std[-window]) evaluated at each of the
    latest ``last`` possible end points, oldest first; empty when there are fewer than
    ``window`` values.
    """
    v = np.asarray(values, dtype=float)
    ends = range(max(window - 1, len(v) - last), len(v))
    return np.array([v[e] - v[e - window + 1] for e in ends], dtype=float)


def pass_fraction(figures: Sequence[float], max_value: float) -> float:
    """Fraction of ``figures`` that satisfy ``figure <= max_value`` (rounded; NaN if empty)."""
    f = np.round(np.asarray(figures, dtype=float), DECIMALS)
    return float(np.mean(f <= max_value)) if len(f) else math.nan


def bootstrap_mean_ci(
    values: Sequence[float], confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile-BCa bootstrap interval of the mean (scipy), seeded; NaNs below 2 values.

    With all values equal the interval is the value itself (no spread to resample).
    """
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if len(v) < 2:
        return (math.nan, math.nan)
    if np.all(v == v[0]):
        return (float(v[0]), float(v[0]))
    res = _st().bootstrap(
        (v,),
        np.mean,
        confidence_level=confidence,
        n_resamples=2000,
        method="percentile" if len(v) < 4 else "BCa",
        random_state=np.random.default_rng(seed),
    )
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))
