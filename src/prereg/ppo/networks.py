"""Actor and critic MLPs and the state-independent Gaussian policy head.

Parameters are one plain dict (a pytree)::

    {"actor": {"hidden_0": {...}, ..., "out": {...}},    # obs -> action mean
     "critic": {"hidden_0": {...}, ..., "out": {...}},   # obs -> V(obs)
     "log_std": f32[action_dim]}                         # state-independent

Hidden layers are tanh, initialised as in CleanRL's continuous PPO: orthogonal with
gain sqrt(2) and zero bias; the actor's output layer gain 0.01 (initial mean ~ 0), the
critic's gain 1.0.  The apply functions infer the layer sizes from the parameters, so
a policy can be run without knowing its tier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

TIERS: dict[str, tuple[int, ...]] = {
    "small": (64, 64),
    "medium": (128, 128),
    "large": (256, 256, 256),
}

HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)  # Gaussian entropy per dim at std 1
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class MLP(nn.Module):
    """tanh MLP with named layers ``hidden_0 .. hidden_{k-1}`` and ``out``."""

    hidden: Sequence[int]
    out_dim: int
    out_gain: float = 1.0

    @nn.compact
    def __call__(self, x):
        for i, width in enumerate(self.hidden):
            x = nn.Dense(
                width,
                kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)),
                bias_init=nn.initializers.zeros,
                name=f"hidden_{i}",
            )(x)
            x = jnp.tanh(x)
        return nn.Dense(
            self.out_dim,
            kernel_init=nn.initializers.orthogonal(self.out_gain),
            bias_init=nn.initializers.zeros,
            name="out",
        )(x)


def tier_sizes(tier: str) -> tuple[int, ...]:
    try:
        return TIERS[tier]
    except KeyError:
        raise ValueError(f"tier must be one of {sorted(TIERS)}, got {tier!r}") from None


def init_params(
    rng: jax.Array,
    obs_dim: int,
    action_dim: int,
    tier: str = "small",
    log_std_init: float = 0.0,
) -> dict:
    """Fresh actor, critic and log_std parameters for a tier in :data:`TIERS`."""
    hidden = tier_sizes(tier)
    k_actor, k_critic = jax.random.split(rng)
    dummy = jnp.zeros((1, obs_dim), jnp.float32)
    actor = MLP(hidden, action_dim, out_gain=0.01).init(k_actor, dummy)["params"]
    critic = MLP(hidden, 1, out_gain=1.0).init(k_critic, dummy)["params"]
    return {
        "actor": actor,
        "critic": critic,
        "log_std": jnp.full((action_dim,), log_std_init, jnp.float32),
    }


def hidden_sizes(net_params) -> tuple[int, ...]:
    """Hidden widths of one MLP's parameter dict (``hidden_0``, ``hidden_1``, ...)."""
    n = sum(1 for k in net_params if k.startswith("hidden_"))
    return tuple(int(net_params[f"hidden_{i}"]["kernel"].shape[-1]) for i in range(n))


def tier_of(params) -> str | None:
    """Tier name whose sizes match ``params['actor']``, or None."""
    sizes = hidden_sizes(params["actor"])
    return next((name for name, s in TIERS.items() if s == sizes), None)


def _apply(net_params, x):
    out_dim = int(net_params["out"]["kernel"].shape[-1])
    return MLP(hidden_sizes(net_params), out_dim).apply({"params": net_params}, x)


def actor_mean(params, obs):
    """Mean action (pre-clipping, in the policy's [-1, 1]-ish units) for normalised obs."""
    return _apply(params["actor"], obs)


def critic_value(params, obs):
    """V(obs) for normalised obs; shape obs.shape[:-1]."""
    return _apply(params["critic"], obs)[..., 0]


def gaussian_log_prob(mean, log_std, action):
    """log N(action; mean, exp(log_std)^2), summed over the last (action) axis."""
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z * z - log_std - _HALF_LOG_2PI, axis=-1)


def gaussian_entropy(log_std):
    """Entropy of the diagonal Gaussian, summed over action dims.

    ``sum_d (0.5 * ln(2 pi e) + log_std_d)``: with 2 dims, log_std -0.28 gives 2.278
    and -0.04 gives 2.758 (seed 003's table).
    """
    return jnp.sum(HALF_LOG_2PI_E + log_std, axis=-1)
