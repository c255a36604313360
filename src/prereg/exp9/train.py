"""The exp9 training loop: Adam on KL + aux term as one jitted `lax.scan` over a chunk of steps.

The jitted chunk function takes the teacher as an argument and everything structural (sizes,
lambda, form, lr, chunk length) as static arguments, so it compiles once per configuration and
chunk length; running a trajectory in chunks of any sizes is bit-identical to one chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from prereg.exp9 import model, resolvent
from prereg.exp9 import predictor as pred
from prereg.exp9.analysis import METRIC_COLUMNS
from prereg.training.jaxexport import cached_jit

METRIC_KEYS = tuple(METRIC_COLUMNS)  # one list of logged columns, shared with the verdict


class TrainState(NamedTuple):
    """Parameters, Adam state, and the index of the next step to take."""

    theta: jnp.ndarray
    opt_state: optax.OptState
    step: jnp.ndarray


def init_state(theta0: jnp.ndarray, lr: float) -> TrainState:
    """Fresh state at theta0 (Adam's state does not depend on lr, kept for symmetry)."""
    theta0 = jnp.asarray(theta0, dtype=jnp.float64)
    return TrainState(theta0, optax.adam(lr).init(theta0), jnp.asarray(0, dtype=jnp.int64))


def _loss_and_grad(
    theta: jnp.ndarray, log_q: jnp.ndarray, n: int, m: int, lam: float, form: str
) -> tuple[jnp.ndarray, jnp.ndarray, dict[str, jnp.ndarray]]:
    """(loss, d loss / d theta, metrics); lam == 0 differentiates KL only (Sigma forward only)."""
    if lam == 0:
        kl, g = jax.value_and_grad(model.kl)(theta, log_q, n, m)
        return kl, g, pred.metrics_from(kl, g, resolvent.sigma_of_theta(theta, n, m))
    (loss, metrics), grad = jax.value_and_grad(pred.objective, has_aux=True)(
        theta, log_q, n, m, lam, form
    )
    return loss, grad, metrics


@cached_jit(static_argnames=("num_steps", "n", "m", "lam", "form", "lr"))
def _run_chunk(
    state: TrainState,
    log_q: jnp.ndarray,
    *,
    num_steps: int,
    n: int,
    m: int,
    lam: float,
    form: str,
    lr: float,
) -> tuple[TrainState, dict[str, jnp.ndarray]]:
    """num_steps Adam steps from state; per-step metrics measured before each update."""
    opt = optax.adam(lr)

    def body(s: TrainState, _: None) -> tuple[TrainState, dict[str, jnp.ndarray]]:
        loss, grad, metrics = _loss_and_grad(s.theta, log_q, n, m, lam, form)
        updates, opt_state = opt.update(grad, s.opt_state, s.theta)
        out = {k: metrics[k] for k in METRIC_KEYS if k in metrics}
        out.update(step=s.step, loss=loss, grad_norm=jnp.linalg.norm(grad), theta=s.theta)
        return TrainState(optax.apply_updates(s.theta, updates), opt_state, s.step + 1), out

    return jax.lax.scan(body, state, None, length=num_steps)


def make_chunk_runner(
    log_q: jnp.ndarray, n: int, m: int, lam: float, form: str, lr: float
) -> Callable[[TrainState, int], tuple[TrainState, dict[str, jnp.ndarray]]]:
    """run_chunk(state, num_steps) -> (state, metrics): metrics holds arrays of length num_steps
    (keys METRIC_KEYS and theta [num_steps, K]); compiled once per distinct num_steps and shared
    between runners with the same (n, m, lam, form, lr)."""
    if form not in pred.FORMS:
        raise ValueError(f"aux form must be one of {pred.FORMS}, got {form!r}")
    log_q = jnp.asarray(log_q, dtype=jnp.float64)
    cfg = {"n": int(n), "m": int(m), "lam": float(lam), "form": str(form), "lr": float(lr)}

    def run_chunk(state: TrainState, num_steps: int) -> tuple[TrainState, dict[str, jnp.ndarray]]:
        return _run_chunk(state, log_q, num_steps=int(num_steps), **cfg)

    return run_chunk
