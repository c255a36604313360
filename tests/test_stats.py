"""prereg.core.stats against exact scipy values and the registered ladder's measured figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from prereg.core import stats


@pytest.mark.parametrize(
    ("p", "expected"), [(0.5, 0.382), (0.7, 0.339), (0.9, 0.141), (0.97, 0.013)]
)
def test_stage3_false_fail_probability_with_32_episodes(p: float, expected: float) -> None:
    assert round(stats.gap_fail_probability(32, 32, p, 0.10), 3) == expected


def test_gap_fail_probability_is_the_joint_binomial_sum() -> None:
    p = 0.6
    want = sum(
        st.binom.pmf(x, 32, p) * st.binom.pmf(y, 32, p)
        for x in range(33)
        for y in range(33)
        if abs(x - y) >= 4  # |x - y| / 32 > 0.10
    )
    assert stats.gap_fail_probability(32, 32, p, 0.10) == pytest.approx(want, rel=1e-12)


def test_stage1_pass_probability_is_binomial_tail_at_13_of_32() -> None:
    assert stats.min_successes(32, 0.40) == 13  # ceil(0.4 * 32)
    assert stats.min_successes(10, 0.40) == 4  # 4/10 == 0.4 exactly passes
    for p in (0.3, 0.4, 0.5, 0.6):
        assert stats.pass_probability(32, 0.40, p) == pytest.approx(st.binom.sf(12, 32, p))


def test_wilson_interval_matches_the_closed_form() -> None:
    lo, hi = stats.wilson_interval(13, 32)
    z = st.norm.ppf(0.975)
    p, n = 13 / 32, 32
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (lo, hi) == pytest.approx((c - h, c + h))
    for n in (32, 96, 160):  # exact ends, no rounding residue
        assert stats.wilson_interval(n, n)[1] == 1.0 and stats.wilson_interval(0, n)[0] == 0.0
    assert all(math.isnan(v) for v in stats.wilson_interval(0, 0))
    assert stats.wilson_pass_probability(32, 0.4, 0.9) == pytest.approx(
        st.binom.pmf(
            [k for k in range(33) if stats.wilson_interval(k, 32)[0] >= 0.4], 32, 0.9
        ).sum()
    )


def test_two_proportion_test_and_its_false_fail_rate() -> None:
    t = stats.two_proportion_test(150, 160, 140, 160)
    pooled = 290 / 320
    z = (150 / 160 - 140 / 160) / math.sqrt(pooled * (1 - pooled) * (2 / 160))
    assert t.z == pytest.approx(z) and t.p_value == pytest.approx(2 * st.norm.sf(z))
    assert stats.two_proportion_test(160, 160, 160, 160).p_value == 1.0
    # an identical policy is rejected about alpha of the time (exact sum), far below v1's 0.34
    assert 0.03 < stats.two_proportion_fail_probability(160, 160, 0.7, 0.05) < 0.06


def test_slope_upper_bound_pools_groups_with_own_intercepts() -> None:
    rng = np.random.default_rng(0)
    x = np.tile(np.arange(50.0), 3)
    g = np.repeat([0, 1, 2], 50)
    y = 0.002 * x + g * 5.0 + rng.normal(0, 0.01, 150)
    fit = stats.slope_upper_bound(x, y, g)
    res = st.linregress(x[g == 0], y[g == 0])
    assert fit.slope == pytest.approx(0.002, abs=2e-4) and fit.upper > fit.slope
    assert fit.dof == 150 - 3 - 1
    one = stats.slope_upper_bound(x[g == 0], y[g == 0])
    assert one.slope == pytest.approx(res.slope) and one.se == pytest.approx(res.stderr)
    assert math.isnan(stats.slope_upper_bound([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]).slope)


def test_window_deltas_and_pass_fraction() -> None:
    v = np.r_[np.zeros(100), np.arange(300.0) % 2]  # last 300 values alternate 0, 1
    d = stats.window_deltas(v, 50, 300)
    assert len(d) == 300 and d[-1] == v[-1] - v[-50]
    assert stats.pass_fraction(d, 0.0) == pytest.approx(np.mean(d <= 0))
    assert len(stats.window_deltas(np.arange(10.0), 50, 300)) == 0
    assert math.isnan(stats.pass_fraction([], 0.0))


def test_bootstrap_mean_ci_brackets_the_mean() -> None:
    lo, hi = stats.bootstrap_mean_ci([0.1, 0.4, 0.35, 0.2, 0.5])
    assert lo < 0.31 < hi
    assert stats.bootstrap_mean_ci([0.3, 0.3]) == (0.3, 0.3)
    assert all(math.isnan(v) for v in stats.bootstrap_mean_ci([0.3]))


def test_eval_summary_has_count_and_wilson_interval() -> None:
    from prereg.ppo.evaluate import summarize_episodes

    n = 32
    episodes = {
        "seed": np.arange(n),
        "success": np.arange(n) < 13,
        "terminal_alignment": np.ones(n),
        "steps": np.full(n, 10),
        "return": np.zeros(n),
    }
    s = summarize_episodes(episodes, 10000)
    assert s["n_success"] == 13 and s["success_rate"] == 13 / 32
    assert s["success_ci95"] == list(stats.wilson_interval(13, 32))
    assert isinstance(s["n_success"], int) and isinstance(s["success_ci95"], list)
