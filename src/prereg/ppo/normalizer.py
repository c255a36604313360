"""Running observation mean/variance (pure; lives inside the train state).

The update is the parallel form of Welford's algorithm (Chan et al.), the same one
Gymnasium's ``NormalizeObservation`` uses: a batch of observations is merged into
(count, mean, var) in one step.  The trainer updates it with every batch of
observations the policy sees during a rollout, *before* normalising that batch, and
freezes it during the PPO epochs and at evaluation time.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

OBS_CLIP = 10.0
_VAR_EPS = 1e-8


class NormalizerState(NamedTuple):
    count: jnp.ndarray  # f32 scalar; starts at a tiny epsilon so the first merge is exact-ish
    mean: jnp.ndarray  # f32[obs_dim]
    var: jnp.ndarray  # f32[obs_dim] (population variance)


def init_normalizer(obs_dim: int, epsilon: float = 1e-4) -> NormalizerState:
    return NormalizerState(
        count=jnp.asarray(epsilon, jnp.float32),
        mean=jnp.zeros((obs_dim,), jnp.float32),
        var=jnp.ones((obs_dim,), jnp.float32),
    )


def update_normalizer(state: NormalizerState, batch) -> NormalizerState:
    """Merge a batch (..., obs_dim) of raw observations into the running moments."""
    x = jnp.reshape(jnp.asarray(batch, jnp.float32), (-1, state.mean.shape[-1]))
    b_count = jnp.asarray(x.shape[0], jnp.float32)
    b_mean = jnp.mean(x, axis=0)
    b_var = jnp.var(x, axis=0)
    delta = b_mean - state.mean
    tot = state.count + b_count
    new_mean = state.mean + delta * (b_count / tot)
    m2 = state.var * state.count + b_var * b_count + delta * delta * (state.count * b_count / tot)
    return NormalizerState(count=tot, mean=new_mean, var=m2 / tot)


def normalize(state: NormalizerState, obs, clip: float = OBS_CLIP):
    """(obs - mean) / sqrt(var + 1e-8), clipped to [-clip, clip]."""
    z = (jnp.asarray(obs, jnp.float32) - state.mean) / jnp.sqrt(state.var + _VAR_EPS)
    return jnp.clip(z, -clip, clip)
