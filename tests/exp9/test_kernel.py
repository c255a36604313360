"""The exact heat-bath Gibbs kernel: stochastic, reversible, pi-stationary, and the right moves."""

from __future__ import annotations

import itertools
import math

import jax.numpy as jnp
import numpy as np
import pytest
from exp9.helpers_exp9 import gibbs_kernel, log_joint, random_theta


@pytest.mark.parametrize("n,m,seed", [(3, 1, 0), (4, 2, 1), (5, 3, 2)])
def test_reversible_stochastic_stationary(n, m, seed):
    theta = jnp.asarray(random_theta(n, m, seed, scale=0.8))
    p = np.asarray(gibbs_kernel(theta, n, m))
    pi = np.exp(np.asarray(log_joint(theta, n, m)))
    flow = pi[:, None] * p
    assert np.max(np.abs(flow - flow.T)) <= 1e-15
    assert np.max(np.abs(p.sum(axis=1) - 1.0)) <= 1e-14
    assert p.min() >= 0.0
    np.testing.assert_allclose(pi @ p, pi, rtol=0, atol=1e-15)
    # at most n+m off-diagonal moves per row (single-site dynamics)
    assert np.all((p > 0).sum(axis=1) <= n + m + 1)


def test_kernel_matches_loop_definition():
    """Each P(x, y) from the definition: pick a site w.p. 1/(n+m), redraw it from pi(. | rest)."""
    n, m = 2, 2
    theta = random_theta(n, m, 5, scale=0.9)
    p = np.asarray(gibbs_kernel(jnp.asarray(theta), n, m))
    zs = list(itertools.product((-1, 1), repeat=n + m))

    def neg_energy(z):
        v, h = z[:n], z[n:]
        e = sum(theta[i * m + j] * v[i] * h[j] for i in range(n) for j in range(m))
        return (
            e
            + sum(theta[n * m + i] * v[i] for i in range(n))
            + sum(theta[n * m + n + j] * h[j] for j in range(m))
        )

    for ix, x in enumerate(zs):
        for iy, y in enumerate(zs):
            expected = 0.0
            for k in range(n + m):
                if any(x[i] != y[i] for i in range(n + m) if i != k):
                    continue
                up = tuple(x[:k]) + (1,) + tuple(x[k + 1 :])
                down = tuple(x[:k]) + (-1,) + tuple(x[k + 1 :])
                wu, wd = math.exp(neg_energy(up)), math.exp(neg_energy(down))
                expected += (wu if y[k] == 1 else wd) / (wu + wd) / (n + m)
            assert abs(p[ix, iy] - expected) < 1e-15
