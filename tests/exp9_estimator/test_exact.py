"""The exact finite-chain MSE (exp9_estimator.exact) against independent references.

1. A brute-force dense computation from exp9's own kernel matrix P (matrix powers, O(T^2)).
2. A long empirical run on the smallest cell: chains simulated in numpy straight from the rows
   of exp9's dense P (inverse-CDF sampling; neither the JAX sampler nor the sparse recursion),
   compared within 4.5 of the run's own standard errors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prereg.exp9 import kernel, model, states
from prereg.exp9_estimator import exact, stats

N_, M_ = 4, 2  # the smallest registered cell (N = 64 states)


def _setup(scale: float = 0.5, seed: int = 3):
    theta = np.random.default_rng(seed).normal(0.0, scale, size=states.num_params(N_, M_))
    p = np.asarray(kernel.gibbs_kernel(jnp.asarray(theta), N_, M_))
    s = states.sufficient_stats(N_, M_)
    pi = np.exp(np.asarray(model.log_joint(jnp.asarray(theta), N_, M_)))
    return theta, p, s - pi @ s


@pytest.mark.parametrize(("burn_in", "length"), [(0, 1), (0, 6), (5, 9)])
def test_mse_curve_equals_the_dense_matrix_power_oracle(burn_in: int, length: int):
    theta, p, f = _setup()
    mse, bias2 = exact.mse_curve(jnp.asarray(theta), N_, M_, burn_in, length)
    for t in (1, length):
        dense = exact.mse_dense(p, f, np.full(p.shape[0], 1 / p.shape[0]), burn_in, t)
        assert float(mse[t - 1]) == pytest.approx(dense, rel=1e-12)
    mu = np.full(p.shape[0], 1 / p.shape[0]) @ np.linalg.matrix_power(p, burn_in)
    bias = sum(mu @ np.linalg.matrix_power(p, u) @ f for u in range(1, length + 1)) / length
    assert float(bias2[-1]) == pytest.approx(float(bias @ bias), rel=1e-10)


def test_exact_mse_matches_a_long_independent_chain_run():
    """20000 numpy chains drawn from P's rows: the mean squared error of their averages."""
    theta, p, f = _setup()
    burn_in, length, count = 4, 32, 20000
    rng = np.random.default_rng(0)
    cdf = np.cumsum(p, axis=1)
    x = rng.integers(0, p.shape[0], size=count)
    total = np.zeros((count, f.shape[1]))
    for u in range(1, burn_in + length + 1):
        x = np.minimum((cdf[x] < rng.random(count)[:, None]).sum(axis=1), p.shape[0] - 1)
        if u > burn_in:
            total += f[x]
    err2 = np.sum((total / length) ** 2, axis=1)
    se = err2.std(ddof=1) / np.sqrt(count)
    mse, _ = exact.mse_curve(jnp.asarray(theta), N_, M_, burn_in, length)
    assert abs(err2.mean() - float(mse[-1])) <= 4.5 * se, (err2.mean(), float(mse[-1]), se)
    # the check can fail: the average over x_B..x_{B+T-1} (one step early) is outside
    early, _ = exact.mse_curve(jnp.asarray(theta), N_, M_, 0, length)
    assert abs(err2.mean() - float(early[-1])) > 4.5 * se


def test_expectations_give_exp9s_gradient():
    theta, _, _ = _setup()
    log_q = model.make_teacher(N_, 1.0, 1000)
    got = jax.jit(exact.expectations, static_argnums=(2, 3))(jnp.asarray(theta), log_q, N_, M_)
    want = jax.jit(jax.grad(model.kl), static_argnums=(2, 3))(jnp.asarray(theta), log_q, N_, M_)
    np.testing.assert_allclose(np.asarray(got["g"]), np.asarray(want), atol=1e-14)


def test_t_within_factor_and_bootstrap():
    noise = 2.0
    mse = noise / np.arange(1, 101) * np.r_[np.full(9, 5.0), np.ones(91)]  # settles at T = 10
    assert stats.t_within_factor(mse, noise, 2.0) == 10
    assert stats.t_within_factor(mse * 3, noise, 2.0) is None
    assert stats.t_within_factor(mse[9:] * 0 + noise / np.arange(1, 92), noise, 2.0) == 1
    w = stats.bootstrap_weights(50, 200, 0)
    assert w.shape == (200, 50) and np.allclose(w.sum(axis=1), 1.0)
    err = np.random.default_rng(0).exponential(size=(50, 2))
    est = stats.snr_estimates(err, 1.0, w)
    assert np.all(est["snr_lo"] < est["snr_emp"]) and np.all(est["snr_emp"] < est["snr_hi"])
