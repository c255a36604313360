"""The enumeration, KL and its gradient against a direct loop-based enumeration written here."""

from __future__ import annotations

import itertools
import math

import jax.numpy as jnp
import numpy as np
import pytest
from exp9.helpers_exp9 import kl_and_grad, log_joint, random_theta

from prereg.exp9 import model, states


def _direct_kl_and_grad(theta, log_q, n, m):
    """KL(q||p) and the RBM gradient E_model[s] - E_{q(v) p(h|v)}[s] by explicit sums over v, h."""
    w = [[theta[i * m + j] for j in range(m)] for i in range(n)]
    a = theta[n * m : n * m + n]
    b = theta[n * m + n :]
    vs = list(itertools.product((-1, 1), repeat=n))
    hs = list(itertools.product((-1, 1), repeat=m))

    def stats(v, h):
        return [v[i] * h[j] for i in range(n) for j in range(m)] + list(v) + list(h)

    def weight(v, h):
        e = sum(a[i] * v[i] for i in range(n)) + sum(b[j] * h[j] for j in range(m))
        e += sum(v[i] * w[i][j] * h[j] for i in range(n) for j in range(m))
        return math.exp(e)

    z = sum(weight(v, h) for v in vs for h in hs)
    k = n * m + n + m
    e_model = [0.0] * k
    e_data = [0.0] * k
    kl = 0.0
    for iv, v in enumerate(vs):
        q = math.exp(log_q[iv])
        pv = sum(weight(v, h) for h in hs) / z
        kl += q * (math.log(q) - math.log(pv))
        for h in hs:
            pj = weight(v, h) / z
            s = stats(v, h)
            for c in range(k):
                e_model[c] += pj * s[c]
                e_data[c] += q * (pj / pv) * s[c]
    return kl, np.array(e_model) - np.array(e_data)


@pytest.mark.parametrize("n,m,seed", [(2, 1, 0), (3, 2, 1), (4, 2, 2), (4, 3, 3)])
def test_kl_and_gradient_match_direct_enumeration(n, m, seed):
    theta = random_theta(n, m, seed, scale=0.6)
    log_q = model.make_teacher(n, 1.0, 100 + seed)
    kl_ref, g_ref = _direct_kl_and_grad(theta, log_q, n, m)
    kl, g = kl_and_grad(jnp.asarray(theta), jnp.asarray(log_q), n, m)
    assert abs(float(kl) - kl_ref) <= 1e-13 * max(1.0, abs(kl_ref))
    np.testing.assert_allclose(np.asarray(g), g_ref, rtol=0, atol=1e-13)


def test_state_order_and_stats():
    n, m = 3, 2
    v, h = states.joint_states(n, m)
    z = np.array(list(itertools.product((-1.0, 1.0), repeat=n + m)))
    np.testing.assert_array_equal(np.hstack([v, h]), z)
    np.testing.assert_array_equal(states.visible_states(n), z[:: 2**m, :n])
    s = states.sufficient_stats(n, m)
    theta = random_theta(n, m, 7)
    w, a, b = (np.asarray(x) for x in model.unpack(jnp.asarray(theta), n, m))
    neg_e = np.einsum("si,ij,sj->s", v, w, h) + v @ a + h @ b
    np.testing.assert_allclose(s @ theta, neg_e, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(model.pack(w, a, b), theta)
    flips = states.flip_index(n, m)
    for k in range(n + m):
        diff = z[flips[:, k]] != z
        assert np.all(diff.sum(axis=1) == 1) and np.all(diff[:, k])


def test_distributions_normalised_and_marginal_consistent():
    n, m = 4, 3
    theta = jnp.asarray(random_theta(n, m, 3))
    lp = np.asarray(log_joint(theta, n, m))
    assert abs(np.exp(lp).sum() - 1.0) < 1e-14
    lpv = np.asarray(model.log_marginal_v(theta, n, m))
    np.testing.assert_allclose(np.exp(lpv), np.exp(lp).reshape(2**n, 2**m).sum(1), atol=1e-15)


def test_teacher_draw_order_and_form():
    n, beta, seed = 5, 1.0, 1003
    rng = np.random.default_rng(seed)
    g = rng.normal(0.0, 1.0 / np.sqrt(n), size=(n, n))
    c = rng.normal(0.0, 0.1, size=n)
    j, c2 = model.teacher_params(n, seed)
    np.testing.assert_array_equal(c2, c)
    assert np.all(np.diag(j) == 0) and np.array_equal(j, j.T)
    iu = np.triu_indices(n, 1)
    np.testing.assert_array_equal(j[iu], g[iu])
    log_q = model.make_teacher(n, beta, seed)
    assert abs(np.exp(log_q).sum() - 1.0) < 1e-14
    vs = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
    e = np.array([beta * (0.5 * v @ j @ v + c @ v) for v in vs])
    log_q_direct = e - np.log(np.exp(e).sum())
    np.testing.assert_allclose(log_q, log_q_direct, rtol=0, atol=1e-13)


def test_init_theta_reproducible():
    a = model.init_theta(4, 3, 2002)
    np.testing.assert_array_equal(a, np.random.default_rng(2002).normal(0, 0.1, size=19))
    assert not np.array_equal(a, model.init_theta(4, 3, 2003))
