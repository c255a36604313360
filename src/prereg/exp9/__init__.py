"""exp9: an exactly enumerable RBM whose trainability predictor rho is used as an auxiliary loss.

Every module here works in float64: the resolvent and its eigen reference lose all meaning in
float32 (errors scale like eps / spectral gap), so x64 is switched on when the package is imported,
before any array is built.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)
