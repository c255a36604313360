"""Exact transition matrix of random-scan single-site heat-bath Gibbs on the joint (v,h) state.

One step picks a site k uniformly among the n+m spins and redraws it from pi(. | rest). With x^k
the state x with spin k flipped, P(x, x^k) = sigmoid(log pi(x^k) - log pi(x)) / (n+m) and the
diagonal takes the rest. pi_x P(x, x^k) = pi_x pi_x^k / ((n+m)(pi_x + pi_x^k)) is symmetric, so
P is reversible with respect to pi; each site update is a pi-orthogonal projection, so P is
positive semi-definite in the pi inner product (eigenvalues in [0, 1]).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prereg.exp9 import model, states


def gibbs_kernel_from_log_pi(log_pi: jnp.ndarray, n: int, m: int) -> jnp.ndarray:
    """Dense P [N, N] for the normalised (or unnormalised) log target log_pi [N]; one scatter."""
    flips = states.flip_index(n, m)
    num = log_pi.shape[0]
    off = jax.nn.sigmoid(log_pi[flips] - log_pi[:, None]) / (n + m)  # [N, n+m]
    rows = np.repeat(np.arange(num), n + m)
    p = jnp.zeros((num, num), dtype=log_pi.dtype).at[rows, flips.ravel()].set(off.ravel())
    diag = 1.0 - jnp.sum(off, axis=1)
    return p + jnp.diag(diag)


def gibbs_kernel(theta: jnp.ndarray, n: int, m: int) -> jnp.ndarray:
    """Dense heat-bath Gibbs transition matrix P [N, N] of pi_theta; jit- and grad-friendly."""
    return gibbs_kernel_from_log_pi(model.log_joint(theta, n, m), n, m)
