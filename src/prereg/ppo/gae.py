"""Generalised advantage estimation as a reverse ``lax.scan``.

Convention (time-major arrays, shape (T, ...) with any trailing batch shape):

* step t: the policy saw ``obs_t`` (value ``values[t] = V(obs_t)``), acted, and got
  ``rewards[t]``;
* ``dones[t]`` = 1 if the episode ended AT step t, for any reason (true termination
  or time-limit truncation).  The lambda-chain is cut there: A_t never looks at step
  t+1, which belongs to the next episode;
* ``truncated[t]`` = 1 if that ending was a truncation and NOT a true termination
  (a step that is both counts as a termination).  It must imply ``dones[t]``;
* ``truncated_values[t]`` = V(final observation of the truncated episode), i.e. the
  value of the state the episode was cut in (not of the reset state that follows);
* ``last_value`` = V(obs_T), the observation after the last step of the rollout.

The one-step target of step t is::

    next_v_t = values[t+1]               if not dones[t]   (values[T] := last_value)
             = truncated_values[t]       if truncated[t]   (bootstrap the cut-off future)
             = 0                         if terminated     (no future after success)
    delta_t  = rewards[t] + gamma * next_v_t - values[t]
    A_t      = delta_t + gamma * lam * (1 - dones[t]) * A_{t+1}
    returns  = A + values

Without ``truncated`` every done is treated as a true termination (the classic form).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def compute_gae(
    rewards,
    values,
    dones,
    last_value,
    gamma: float,
    lam: float,
    truncated=None,
    truncated_values=None,
):
    """Return ``(advantages, returns)``, both shaped like ``rewards``; see module doc."""
    rewards = jnp.asarray(rewards, jnp.float32)
    values = jnp.asarray(values, jnp.float32)
    dones = jnp.asarray(dones, jnp.float32)
    last_value = jnp.asarray(last_value, jnp.float32)
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    next_values = next_values * (1.0 - dones)
    if truncated is not None:
        if truncated_values is None:
            raise ValueError("compute_gae: truncated given without truncated_values")
        trunc = jnp.asarray(truncated, jnp.float32)
        next_values = next_values + trunc * jnp.asarray(truncated_values, jnp.float32)
    deltas = rewards + gamma * next_values - values
    decay = gamma * lam * (1.0 - dones)

    def step(carry, xs):
        delta, k = xs
        adv = delta + k * carry
        return adv, adv

    _, advantages = jax.lax.scan(step, jnp.zeros_like(last_value), (deltas, decay), reverse=True)
    return advantages, advantages + values
