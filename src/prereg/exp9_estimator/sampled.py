"""E5: exp9's training with the KL gradient's model side estimated by persistent Gibbs chains.

Each Adam step advances ``chains`` persistent chains by ``chain_steps`` heat-bath steps under
the current theta and replaces E_model[s] by the average of s over those chains and steps; the
data side stays exact, and so does the auxiliary term's gradient (exp9's objective, same lambda
and form).  Everything else is exp9's: teacher, initial theta, Adam and its lr, step cap.  Each
step logs the exact KL, rho, signal and noise at the current theta and the squared error of the
sampled gradient, ||g^ - g||^2.  The chains start uniformly at random from a key shared by the
arms of a cell (a paired design).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import optax

from prereg.exp9 import model, states
from prereg.exp9 import predictor as pred
from prereg.exp9_estimator.chains import gibbs_step

COLUMNS = ("step", "kl", "rho", "signal", "noise", "sample_err2")


@partial(
    jax.jit,
    static_argnames=("n", "m", "num_steps", "chains", "chain_steps", "form", "lr", "augmented"),
)
def train(
    theta0: jnp.ndarray,
    log_q: jnp.ndarray,
    lam: jnp.ndarray,
    key: jax.Array,
    *,
    n: int,
    m: int,
    num_steps: int,
    chains: int,
    chain_steps: int,
    form: str,
    lr: float,
    augmented: bool,
) -> dict[str, jnp.ndarray]:
    """``num_steps`` Adam steps from theta0; per-step figures (``COLUMNS``), before each update."""
    s = jnp.asarray(states.sufficient_stats(n, m))
    flips = jnp.asarray(states.flip_index(n, m))
    opt = optax.adam(lr)
    key, start = jax.random.split(key)
    x0 = jax.random.randint(start, (chains,), 0, s.shape[0])

    def aux(theta: jnp.ndarray) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        metrics = pred.predictor(theta, log_q, n, m)
        return pred.aux_term(metrics, lam, form), metrics

    def body(carry, step):
        theta, opt_state, x, key = carry
        log_pi = model.log_joint(theta, n, m)
        key, sub = jax.random.split(key)

        def advance(c, k):
            x, acc = c
            x = gibbs_step(x, log_pi, flips, k)
            return (x, acc + s[x].sum(axis=0)), None

        (x, total), _ = jax.lax.scan(
            advance, (x, jnp.zeros(s.shape[1])), jax.random.split(sub, chain_steps)
        )
        if augmented:
            aux_grad, metrics = jax.grad(aux, has_aux=True)(theta)
        else:
            metrics = pred.predictor(jax.lax.stop_gradient(theta), log_q, n, m)
            aux_grad = jnp.zeros_like(theta)
        g = metrics["grad"]
        ghat = g + (total / (chains * chain_steps) - jnp.exp(log_pi) @ s)  # sampled model side
        err = ghat - g
        updates, opt_state = opt.update(ghat + aux_grad, opt_state, theta)
        out = {k: metrics[k] for k in ("kl", "rho", "signal", "noise")}
        out.update(step=step, sample_err2=err @ err)
        return (optax.apply_updates(theta, updates), opt_state, x, key), out

    theta0 = jnp.asarray(theta0, dtype=jnp.float64)
    init = (theta0, opt.init(theta0), x0, key)
    _, out = jax.lax.scan(body, init, jnp.arange(num_steps))
    return out
