"""P1 gradient fidelity: autodiff directional derivatives of rho against central differences."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from prereg.exp9 import predictor as pred
from prereg.training.jaxexport import cached_jit


@cached_jit(static_argnames=("n", "m"))
def _rho(theta: jnp.ndarray, log_q: jnp.ndarray, n: int, m: int) -> jnp.ndarray:
    """rho(theta), jitted for the many finite-difference evaluations."""
    return pred.predictor(theta, log_q, n, m)["rho"]


@cached_jit(static_argnames=("n", "m"))
def _rho_and_grads(
    theta: jnp.ndarray, log_q: jnp.ndarray, n: int, m: int
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """(rho, d rho / d theta, ||dKL/dtheta||) at theta."""

    def f(t: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        out = pred.predictor(t, log_q, n, m)
        return out["rho"], jnp.linalg.norm(out["grad"])

    (rho, gnorm), drho = jax.value_and_grad(f, has_aux=True)(theta)
    return rho, drho, gnorm


def fd_check(
    theta: np.ndarray,
    log_q: np.ndarray,
    n: int,
    m: int,
    n_dirs: int,
    seed: int,
    hs: Sequence[float] = (1e-4, 1e-5, 1e-6),
) -> dict:
    """Worst (over n_dirs random unit directions u) of the best (over h in hs) relative error
    |FD_h - AD| / max(|AD|, |FD_h|) with FD_h = (rho(theta + h u) - rho(theta - h u)) / (2h) and
    AD = grad(rho) . u. Directions come from numpy `default_rng(seed)`, one normal [K] draw each.
    grad_norm is ||dKL/dtheta||: the gate applies only where it is >= 1e-3 (near a stationary
    point FD of rho is dominated by rounding).

    The perturbations and differences are numpy/Python float64 arithmetic (elementwise, so the
    same numbers as JAX's): JAX would compile each of those small ops anew in every process and
    cell, which cost more than the check itself."""
    theta = np.asarray(theta, dtype=np.float64)
    log_q = jnp.asarray(log_q, dtype=jnp.float64)
    rho, drho, gnorm = _rho_and_grads(theta, log_q, n, m)
    rng = np.random.default_rng(seed)
    per_direction = []
    for _ in range(n_dirs):
        u = rng.standard_normal(theta.shape[0])
        u = u / np.linalg.norm(u)
        ad = float(drho @ jnp.asarray(u))
        best = None
        for h in hs:
            up, down = _rho(theta + h * u, log_q, n, m), _rho(theta - h * u, log_q, n, m)
            fd = (float(up) - float(down)) / (2 * h)
            den = max(abs(ad), abs(fd), np.finfo(np.float64).tiny)
            rel = abs(fd - ad) / den
            if best is None or rel < best["rel_err"]:
                best = {"ad": ad, "fd": fd, "h": float(h), "rel_err": rel}
        per_direction.append(best)
    return {
        "worst_rel_err": max(d["rel_err"] for d in per_direction),
        "per_direction": per_direction,
        "grad_norm": float(gnorm),
        "rho": float(rho),
        "rho_grad_norm": float(jnp.linalg.norm(drho)),
    }
