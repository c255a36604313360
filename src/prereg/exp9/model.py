"""The RBM, its exact distributions, the teacher, and the training loss KL(q || p_theta).

theta is one flat float64 vector (vec(W) row-major, a, b) so that -E(v,h) = theta . s(v,h) with
s from `states.sufficient_stats`; every distribution is computed by full enumeration.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from prereg.exp9 import states


def unpack(theta: jnp.ndarray, n: int, m: int) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Split flat theta into (W [n, m], a [n], b [m]); W[i, j] = theta[i*m + j] couples v_i h_j."""
    nm = n * m
    return theta[:nm].reshape(n, m), theta[nm : nm + n], theta[nm + n : nm + n + m]


def pack(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Inverse of `unpack` (numpy): the flat theta for given W, a, b."""
    return np.concatenate([np.ravel(w), np.ravel(a), np.ravel(b)]).astype(np.float64)


def log_joint(theta: jnp.ndarray, n: int, m: int) -> jnp.ndarray:
    """Normalised log pi_theta(v,h) over all N joint states, [N], in `states.joint_states` order."""
    s = jnp.asarray(states.sufficient_stats(n, m))
    neg_energy = s @ theta
    return neg_energy - logsumexp(neg_energy)


def log_marginal_v(theta: jnp.ndarray, n: int, m: int) -> jnp.ndarray:
    """Normalised log p_theta(v) = log sum_h pi_theta(v,h), [2^n], `visible_states` order."""
    return logsumexp(log_joint(theta, n, m).reshape(2**n, 2**m), axis=1)


def teacher_params(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw the teacher couplings (J [n, n], c [n]) from numpy `default_rng(seed)`.

    Draw order (part of the registration): first G = rng.normal(0, 1/sqrt(n), size=(n, n)), whose
    strict upper triangle (row-major) gives J_ij = J_ji for i < j (diagonal zero, lower part of G
    unused); then c = rng.normal(0, 0.1, size=n).
    """
    rng = np.random.default_rng(seed)
    g = rng.normal(0.0, 1.0 / np.sqrt(n), size=(n, n))
    upper = np.triu(g, k=1)
    j = upper + upper.T
    c = rng.normal(0.0, 0.1, size=n)
    return j, c


def make_teacher(n: int, beta: float, seed: int) -> np.ndarray:
    """Normalised log q(v) [2^n], q(v) ~ exp(beta (v^T J v / 2 + c.v)), J, c from teacher_params."""
    j, c = teacher_params(n, seed)
    v = states.visible_states(n)
    e = beta * (0.5 * np.einsum("si,ij,sj->s", v, j, v) + v @ c)
    mx = e.max()
    return e - (mx + np.log(np.exp(e - mx).sum()))


def init_theta(n: int, m: int, seed: int, scale: float = 0.1) -> np.ndarray:
    """Initial theta ~ N(0, scale^2) i.i.d., one `default_rng(seed).normal` draw of length K in
    theta order (vec(W) row-major, a, b)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, scale, size=states.num_params(n, m))


def kl(theta: jnp.ndarray, log_q: jnp.ndarray, n: int, m: int) -> jnp.ndarray:
    """KL(q || p_theta) = sum_v q(v) (log q(v) - log p_theta(v)); the training loss."""
    log_q = jnp.asarray(log_q)
    return jnp.sum(jnp.exp(log_q) * (log_q - log_marginal_v(theta, n, m)))
