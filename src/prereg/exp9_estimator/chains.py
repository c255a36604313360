"""Finite Gibbs chains in JAX: K independent random-scan heat-bath chains per theta, float64.

Each step picks a site k uniformly among the n+m spins and sets the state to x^k (site k flipped)
with probability sigmoid(log pi(x^k) - log pi(x)), else keeps x: exactly the transition of
exp9's kernel P (:mod:`prereg.exp9.kernel`).  Chains start from the uniform distribution over
the N joint states.  Each chain's running sum of s (integers, exact) is kept and read at the
requested times only.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from prereg.exp9 import model, states


def gibbs_step(
    x: jnp.ndarray, log_pi: jnp.ndarray, flips: jnp.ndarray, key: jax.Array
) -> jnp.ndarray:
    """One heat-bath step of every chain: x [..., C] state indices, log_pi [..., N] (batched)."""
    k_site, k_acc = jax.random.split(key)
    site = jax.random.randint(k_site, x.shape, 0, flips.shape[1])
    y = flips[x, site]
    lp_x = jnp.take_along_axis(log_pi, x, axis=-1)
    lp_y = jnp.take_along_axis(log_pi, y, axis=-1)
    accept = jax.random.uniform(k_acc, x.shape, dtype=log_pi.dtype) < jax.nn.sigmoid(lp_y - lp_x)
    return jnp.where(accept, y, x)


@jax.jit
def _advance(
    x: jnp.ndarray,
    sums: jnp.ndarray,
    key: jax.Array,
    log_pi: jnp.ndarray,
    flips: jnp.ndarray,
    stats: jnp.ndarray,
    num_steps: jnp.ndarray,
) -> tuple[jnp.ndarray, jnp.ndarray, jax.Array]:
    """num_steps steps (a traced count: one compile for every segment length), adding s of each
    state reached to sums [batch, C, K] (integers: s is +-1, so the sums are exact)."""

    def body(_, carry):
        x, sums, key = carry
        key, sub = jax.random.split(key)
        x = gibbs_step(x, log_pi, flips, sub)
        return x, sums + stats[x], key

    return jax.lax.fori_loop(0, num_steps, body, (x, sums, key))


def cumulative_sums(
    thetas: np.ndarray, n: int, m: int, chains: int, times: Sequence[int], key: jax.Array
) -> dict[int, np.ndarray]:
    """{t: sum of s(x_u) over u = 1..t} for each requested t >= 0, as [batch, chains, K] arrays.

    ``thetas`` [batch, K] share one cell (n, m); every chain starts uniformly at random."""
    thetas = jnp.asarray(thetas, dtype=jnp.float64)
    log_pi = jax.vmap(lambda th: model.log_joint(th, n, m))(thetas)
    s = jnp.asarray(states.sufficient_stats(n, m), dtype=jnp.int32)
    flips = jnp.asarray(states.flip_index(n, m))
    batch, num = log_pi.shape
    key, start = jax.random.split(key)
    x = jax.random.randint(start, (batch, chains), 0, num)
    sums = jnp.zeros((batch, chains, s.shape[1]), dtype=jnp.int32)
    out: dict[int, np.ndarray] = {}
    done = 0
    for t in sorted(set(int(t) for t in times)):
        if t > done:
            x, sums, key = _advance(x, sums, key, log_pi, flips, s, jnp.asarray(t - done))
            done = t
        out[t] = np.asarray(sums, dtype=np.float64)
    return out


def chain_errors(
    thetas: np.ndarray,
    n: int,
    m: int,
    chains: int,
    burn_ins: Sequence[int],
    lengths: Sequence[int],
    model_means: np.ndarray,
    key: jax.Array,
) -> dict[tuple[int, int], np.ndarray]:
    """{(B, T): [batch, chains] squared errors ||avg - E_pi s||^2 of each chain's average over
    x_{B+1..B+T}} (one trajectory per chain serves every (B, T))."""
    times = {b for b in burn_ins} | {b + t for b in burn_ins for t in lengths}
    sums = cumulative_sums(thetas, n, m, chains, sorted(times), key)
    out = {}
    for b in burn_ins:
        for t in lengths:
            avg = (sums[b + t] - sums[b]) / t
            err = avg - np.asarray(model_means)[:, None, :]
            out[(int(b), int(t))] = np.sum(err * err, axis=-1)
    return out
