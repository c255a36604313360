"""P4 diagnostics: spectral gap vs an independent eigen-solve, Cheeger, power iteration, gates."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from exp9.helpers_exp9 import gibbs_kernel, log_joint, random_theta

from prereg.exp9 import diagnostics


@pytest.mark.parametrize(
    "n,m,seed,scale", [(3, 1, 0, 1.5), (4, 2, 1, 0.5), (4, 2, 2, 1.5), (5, 3, 3, 0.8)]
)
def test_gap_cheeger_and_power_estimate(n, m, seed, scale):
    theta = random_theta(n, m, seed, scale=scale)
    d = diagnostics.kernel_diagnostics(theta, n, m)
    p = np.asarray(gibbs_kernel(jnp.asarray(theta), n, m))
    ev = np.sort(np.linalg.eigvals(p).real)[::-1]  # P is similar to a symmetric matrix
    assert abs(ev[0] - 1.0) < 1e-12
    assert abs(d["gap"] - (1.0 - ev[1])) < 1e-12
    gamma, phi = d["gap"], d["conductance"]
    assert gamma / 2 <= phi <= np.sqrt(2 * gamma)
    assert abs(d["inv_gap_power"] * gamma - 1.0) < 1e-6
    assert diagnostics.check_diagnostics(d) == []


def test_sweep_cut_is_a_cut_and_not_below_the_true_conductance():
    """Brute force over all 2^N - 2 subsets for N = 16: Phi* <= Phi_sweep, gamma/2 <= Phi*."""
    n, m = 3, 1
    theta = random_theta(n, m, 4, scale=1.0)
    pi = np.exp(np.asarray(log_joint(jnp.asarray(theta), n, m)))
    p = np.asarray(gibbs_kernel(jnp.asarray(theta), n, m))
    flow = pi[:, None] * p
    num = len(pi)
    best = np.inf
    for bits in itertools.product((False, True), repeat=num - 1):  # fix state 0 outside S
        s = np.array((False, *bits))
        if s.all() or not s.any():
            continue
        best = min(best, flow[s][:, ~s].sum() / min(pi[s].sum(), pi[~s].sum()))
    d = diagnostics.kernel_diagnostics(theta, n, m)
    assert best <= d["conductance"] + 1e-15
    assert d["gap"] / 2 <= best


def test_check_diagnostics_flags_each_failure():
    good = {
        "detailed_balance": 1e-18,
        "row_sum": 1e-16,
        "symmetry": 1e-17,
        "gap": 0.05,
        "inv_gap_power": 20.0,
        "conductance": 0.1,
        "cheeger_margin": 0.075,
    }
    assert diagnostics.check_diagnostics(good) == []
    assert diagnostics.check_diagnostics({**good, "detailed_balance": 1e-14}) == [
        "detailed_balance"
    ]
    assert diagnostics.check_diagnostics({**good, "row_sum": np.nan}) == ["row_sum"]
    assert diagnostics.check_diagnostics({**good, "symmetry": 1e-13}) == ["symmetry"]
    assert diagnostics.check_diagnostics({**good, "cheeger_margin": -1e-3}) == ["cheeger"]
    assert diagnostics.check_diagnostics({**good, "cheeger_margin": -1e-12}) == []
    # below the gap gate: HALT on the gap, Cheeger not applied
    tiny = {**good, "gap": 1e-12, "inv_gap_power": 1e12, "cheeger_margin": -1.0}
    assert diagnostics.check_diagnostics(tiny) == ["gap"]
    assert diagnostics.check_diagnostics({**good, "inv_gap_power": 1e11}) == ["gap"]
    assert diagnostics.check_diagnostics(good, {"row_sum": 1e-17}) == ["row_sum"]
