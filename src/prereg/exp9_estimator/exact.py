"""Exact finite-chain error of a Gibbs-chain estimate of E_pi[s], from the kernel P itself.

The chain starts from mu0, takes B burn-in steps, and averages the sufficient statistics s over
the next T states x_{B+1}, ..., x_{B+T} (one random-scan heat-bath site update per step, the
kernel of :mod:`prereg.exp9.kernel`).  With f~ = s - E_pi[s] and m_u = mu0 P^u, the error of the
average has mean (bias) b(T) = (1/T) sum_u m_u f~ and mean squared norm

    MSE(T) = (1/T^2) sum_{t,u in (B, B+T]} E[f~(x_t) . f~(x_u)].

One forward pass gives MSE(T) for every T up to T_max: with R_u(y) = sum_{B < t < u} E[f~(x_t)
1{x_u = y}] (an N x K array, R_{u+1} = (R_u + m_u f~) P), the double sum grows at step u by
m_u . |f~|^2 + 2 sum_y R_u(y) . f~(y).  P is applied through its sparsity (each state has n+m
neighbours), O(N (n+m) K) per step.  The gradient's data side is exact (enumerated), so the
error of the sampled gradient g^ = avg - E_data[s] is the error of the average: MSE = E||g^-g||^2.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from prereg.exp9 import model, states


def neighbours(n: int, m: int) -> np.ndarray:
    """[N, n+m]: the state with site k flipped (k < n visible), as in the exp9 kernel."""
    return states.flip_index(n, m)


def flip_probs(log_pi: jnp.ndarray, n: int, m: int) -> jnp.ndarray:
    """[N, n+m]: P(x, x^k) = sigmoid(log pi(x^k) - log pi(x)) / (n+m), exp9's heat-bath kernel."""
    flips = neighbours(n, m)
    return jax.nn.sigmoid(log_pi[flips] - log_pi[:, None]) / (n + m)


def apply_right(vals: jnp.ndarray, log_pi: jnp.ndarray, n: int, m: int) -> jnp.ndarray:
    """vals P for row vector(s) vals [N] or [N, K] (forward in time): (vals P)(y) =
    vals(y) P(y, y) + sum_k vals(y^k) P(y^k, y), using P(y^k, y) = P(x, x^k) at x = y^k."""
    flips = neighbours(n, m)
    off = flip_probs(log_pi, n, m)  # off[x, k] = P(x, x^k)
    stay = 1.0 - off.sum(axis=1)
    incoming = off[flips, np.arange(n + m)[None, :]]  # [y, k] = P(y^k, y)
    if vals.ndim == 1:
        return stay * vals + jnp.sum(incoming * vals[flips], axis=1)
    return stay[:, None] * vals + jnp.einsum("yk,ykj->yj", incoming, vals[flips])


def expectations(theta: jnp.ndarray, log_q: jnp.ndarray, n: int, m: int) -> dict[str, jnp.ndarray]:
    """log pi, E_pi[s] (model side), E_data[s] = sum_v q(v) E[s | v] (data side) and the exact
    gradient g = model - data of KL(q || p_theta)."""
    s = jnp.asarray(states.sufficient_stats(n, m))
    log_pi = model.log_joint(theta, n, m)
    joint = log_pi.reshape(2**n, 2**m)
    log_h_given_v = joint - logsumexp(joint, axis=1, keepdims=True)
    data_w = jnp.exp(jnp.asarray(log_q)[:, None] + log_h_given_v).reshape(-1)
    model_side = jnp.exp(log_pi) @ s
    data_side = data_w @ s
    return {"log_pi": log_pi, "model": model_side, "data": data_side, "g": model_side - data_side}


def model_means(thetas: np.ndarray, n: int, m: int) -> np.ndarray:
    """E_pi[s] [batch, K] for thetas [batch, K] of one cell (the chains' target)."""
    s = jnp.asarray(states.sufficient_stats(n, m))
    log_pi = jax.vmap(lambda th: model.log_joint(th, n, m))(jnp.asarray(thetas))
    return np.asarray(jnp.exp(log_pi) @ s)


def mse_curve(
    theta: jnp.ndarray, n: int, m: int, burn_in: int, t_max: int
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(MSE(T), ||bias(T)||^2) for T = 1..t_max of the average over x_{B+1..B+T}, uniform mu0."""
    s = jnp.asarray(states.sufficient_stats(n, m))
    log_pi = model.log_joint(theta, n, m)
    num = s.shape[0]
    f = s - jnp.exp(log_pi) @ s  # f~ [N, K]
    f2 = jnp.sum(f * f, axis=1)
    step = partial(apply_right, log_pi=log_pi, n=n, m=m)

    mu = jnp.full((num,), 1.0 / num, dtype=theta.dtype)
    mu = jax.lax.fori_loop(0, burn_in + 1, lambda _, v: step(v), mu)  # m_{B+1}

    def body(carry, _):
        mu, r, total, bias = carry
        total = total + mu @ f2 + 2.0 * jnp.sum(r * f)
        bias = bias + mu @ f
        r = step(r + mu[:, None] * f)
        return (step(mu), r, total, bias), (total, bias @ bias)

    init = (mu, jnp.zeros_like(f), jnp.zeros((), f.dtype), jnp.zeros(f.shape[1], f.dtype))
    _, (total, bias2) = jax.lax.scan(body, init, None, length=t_max)
    t = jnp.arange(1, t_max + 1, dtype=f.dtype)
    return total / t**2, bias2 / t**2


@partial(jax.jit, static_argnums=(1, 2, 3, 4))
def mse_curves(
    thetas: jnp.ndarray, n: int, m: int, burn_in: int, t_max: int
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """:func:`mse_curve` for a batch of thetas [batch, K] of one cell: ([batch, t_max] each)."""
    return jax.vmap(lambda th: mse_curve(th, n, m, burn_in, t_max))(thetas)


def mse_dense(p: np.ndarray, f: np.ndarray, mu0: np.ndarray, burn_in: int, length: int) -> float:
    """The same MSE by brute force from a dense P (numpy; O(T^2) matrix powers): a test oracle."""
    mus = [mu0 @ np.linalg.matrix_power(p, burn_in + t) for t in range(1, length + 1)]
    total = 0.0
    for i, mt in enumerate(mus):
        pf = f.copy()
        for j in range(i, length):
            weight = 1.0 if j == i else 2.0
            total += weight * float(mt @ np.sum(f * pf, axis=1))
            pf = p @ pf
    return total / length**2
