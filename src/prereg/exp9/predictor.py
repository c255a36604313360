"""The trainability predictor rho = ||g||^2 / trace(Sigma) and the auxiliary-loss objective.

g = dKL/dtheta is the exact gradient (signal); Sigma is the Gibbs-chain noise covariance of the
sufficient statistics, whose estimates make up the stochastic gradient (noise).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from prereg.exp9 import model, resolvent

FORMS = ("rho", "noise")
LOG_GUARD = float(jnp.finfo(jnp.float64).tiny)  # log(||g||^2 + tiny): finite at g == 0 exactly


def _safe_div(num: jnp.ndarray, den: jnp.ndarray) -> jnp.ndarray:
    """num / den, and 0 where den == 0 (only for logged projections, never differentiated there)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def metrics_from(kl: jnp.ndarray, g: jnp.ndarray, sigma: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """Predictor quantities from the loss value, its gradient g and the noise covariance Sigma
    (returned too, under "Sigma", for fidelity checks)."""
    signal = g @ g
    noise = jnp.trace(sigma)
    gsg = g @ sigma @ g
    noise_proj = _safe_div(gsg, signal)  # g_hat^T Sigma g_hat
    return {
        "kl": kl,
        "grad": g,
        "signal": signal,
        "noise": noise,
        "rho": signal / noise,
        "noise_proj": noise_proj,
        "rho_proj": _safe_div(signal, noise_proj),
        "Sigma": sigma,
    }


def predictor(theta: jnp.ndarray, log_q: jnp.ndarray, n: int, m: int) -> dict[str, jnp.ndarray]:
    """kl, grad, signal, noise, rho, noise_proj, rho_proj (and Sigma) at theta; differentiable."""
    kl, g = jax.value_and_grad(model.kl)(theta, log_q, n, m)
    return metrics_from(kl, g, resolvent.sigma_of_theta(theta, n, m))


predictor_jit = jax.jit(predictor, static_argnums=(2, 3))
"""`predictor` compiled once per (n, m): for the handful of out-of-loop evaluations."""


def aux_term(metrics: dict[str, jnp.ndarray], lam: float, form: str) -> jnp.ndarray:
    """The auxiliary penalty added to KL: -lam log(rho) (form "rho") or lam log trace(Sigma)."""
    if form == "rho":
        return -lam * jnp.log(metrics["signal"] + LOG_GUARD) + lam * jnp.log(metrics["noise"])
    if form == "noise":
        return lam * jnp.log(metrics["noise"])
    raise ValueError(f"aux form must be one of {FORMS}, got {form!r}")


def objective(
    theta: jnp.ndarray, log_q: jnp.ndarray, n: int, m: int, lam: float, form: str
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """(loss, metrics): loss = KL + aux_term; lam == 0 gives loss = KL exactly, with the metrics
    computed at stop_gradient(theta) so a gradient of the loss does no second-order work."""
    if form not in FORMS:
        raise ValueError(f"aux form must be one of {FORMS}, got {form!r}")
    if lam == 0:
        metrics = predictor(jax.lax.stop_gradient(theta), log_q, n, m)
        return model.kl(theta, log_q, n, m), metrics
    metrics = predictor(theta, log_q, n, m)
    return metrics["kl"] + aux_term(metrics, lam, form), metrics
