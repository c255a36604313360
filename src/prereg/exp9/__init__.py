"""exp9: an exactly enumerable RBM whose trainability predictor rho is used as an auxiliary loss.

Every module here works in float64: the resolvent and its eigen reference lose all meaning in
float32 (errors scale like eps / spectral gap).  Call :func:`enable_x64` before building any
array (the runner does; importing the package changes nothing).
"""

from __future__ import annotations


def enable_x64() -> None:
    """Switch JAX to float64 for this process (idempotent)."""
    import jax

    jax.config.update("jax_enable_x64", True)
