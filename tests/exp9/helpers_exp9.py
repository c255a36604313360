"""Shared helpers for the exp9 numerics tests (importing it switches on float64 via the package).

Package functions are called through jitted wrappers: one compile per shape is several times
cheaper than op-by-op dispatch, which keeps the suite quick on a shared 2-core machine.
"""

from __future__ import annotations

import jax
import numpy as np

import prereg.exp9  # noqa: F401  (enables jax x64 before any array is built)
from prereg.exp9 import kernel, model, predictor

kl_and_grad = jax.jit(jax.value_and_grad(model.kl), static_argnums=(2, 3))
log_joint = jax.jit(model.log_joint, static_argnums=(1, 2))
gibbs_kernel = jax.jit(kernel.gibbs_kernel, static_argnums=(1, 2))
objective_grad = jax.jit(
    jax.value_and_grad(predictor.objective, has_aux=True), static_argnums=(2, 3, 4, 5)
)


def random_theta(n: int, m: int, seed: int, scale: float = 0.5) -> np.ndarray:
    """A generic parameter vector (larger than the init scale, so the kernel is non-trivial)."""
    return np.random.default_rng(seed).normal(0.0, scale, size=n * m + n + m)
