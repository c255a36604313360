"""Asymptotic covariance of Gibbs-chain averages via the fundamental matrix (factored resolvent).

For a chain reversible w.r.t. pi and centred observables F (pi^T F = 0) the CLT covariance of
(1/T) sum_t f(x_t) times T is Sigma = F^T D (2 Z F - F), with D = diag(pi) and
Z = (I - P + 1 pi^T)^-1 (so Z F = sum_{t>=0} P^t F on centred columns).
"""

from __future__ import annotations

import jax.numpy as jnp

from prereg.exp9 import kernel, model, states


def centred_stats(pi: jnp.ndarray, s: jnp.ndarray) -> jnp.ndarray:
    """F = S - 1 (pi^T S): the sufficient statistics centred under pi, [N, K]."""
    return s - (pi @ s)[None, :]


def noise_covariance(p: jnp.ndarray, pi: jnp.ndarray, f: jnp.ndarray) -> jnp.ndarray:
    """Sigma [K, K] = sym(F^T D (2 Z F - F)) from ONE LU solve of (I - P + 1 pi^T) against all K
    columns of F; `jnp.linalg.solve` is used (not lu_factor) so the backward pass reuses the LU."""
    num = p.shape[0]
    a = jnp.eye(num, dtype=p.dtype) - p + jnp.outer(jnp.ones(num, dtype=p.dtype), pi)
    zf = jnp.linalg.solve(a, f)
    sigma = f.T @ (pi[:, None] * (2.0 * zf - f))
    return 0.5 * (sigma + sigma.T)


def sigma_of_theta(theta: jnp.ndarray, n: int, m: int) -> jnp.ndarray:
    """Sigma(theta) of the sufficient statistics under Gibbs on pi_theta (differentiable)."""
    log_pi = model.log_joint(theta, n, m)
    pi = jnp.exp(log_pi)
    p = kernel.gibbs_kernel_from_log_pi(log_pi, n, m)
    f = centred_stats(pi, jnp.asarray(states.sufficient_stats(n, m)))
    return noise_covariance(p, pi, f)
