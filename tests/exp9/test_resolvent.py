"""The factored resolvent (one LU solve) against the eigen oracle and a two-state chain."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from exp9.helpers_exp9 import random_theta

from prereg.exp9 import model, predictor, reference, resolvent, states


def test_two_state_chain_closed_form():
    """P = [[1-a, a], [b, 1-b]]: sigma^2(f) = var_pi(f) (1 + l) / (1 - l), l = 1 - a - b."""
    a, b = 0.3, 0.1
    p = jnp.array([[1 - a, a], [b, 1 - b]])
    pi = jnp.array([b, a]) / (a + b)
    f = resolvent.centred_stats(pi, jnp.array([[1.0], [0.0]]))
    lam = 1 - a - b
    var = float(pi[0] * pi[1])
    sigma = resolvent.noise_covariance(p, pi, f)
    assert sigma.shape == (1, 1)
    assert abs(float(sigma[0, 0]) - var * (1 + lam) / (1 - lam)) < 1e-15


@pytest.mark.parametrize(
    "n,m,seed,scale",
    [
        (3, 2, 1, 1.0),
        (4, 2, 2, 0.5),
        (4, 2, 3, 1.2),
        (5, 3, 5, 0.6),
    ],
)
def test_sigma_and_rho_match_eigen_oracle(n, m, seed, scale):
    theta = random_theta(n, m, seed, scale=scale)
    log_q = model.make_teacher(n, 1.0, 50 + seed)
    ref = reference.reference_rho(theta, log_q, n, m)
    out = predictor.predictor_jit(jnp.asarray(theta), jnp.asarray(log_q), n, m)
    sig = np.asarray(out["Sigma"])
    tol = max(1e-12, 1e-14 / ref["gap"])
    assert np.max(np.abs(sig - ref["Sigma"])) <= tol * np.max(np.abs(ref["Sigma"]))
    for key in ("kl", "signal", "noise", "rho", "noise_proj", "rho_proj"):
        assert abs(float(out[key]) / ref[key] - 1.0) <= 1e-10, key
    np.testing.assert_allclose(np.asarray(out["grad"]), ref["grad"], rtol=0, atol=1e-13)


def test_oracle_detects_a_wrong_resolvent():
    """Guard against a vacuous comparison: dropping the 2Z term must be caught by the oracle."""
    n, m = 3, 2
    theta = random_theta(n, m, 9)
    ref = reference.reference_noise(theta, n, m)
    pi = jnp.exp(model.log_joint(jnp.asarray(theta), n, m))
    f = resolvent.centred_stats(pi, jnp.asarray(states.sufficient_stats(n, m)))
    iid = float(jnp.trace(f.T @ (pi[:, None] * f)))  # the i.i.d. variance only
    assert abs(iid / ref["noise"] - 1.0) > 1e-3
