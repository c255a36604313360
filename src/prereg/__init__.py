"""prereg: Hydra-configured sweeps for pre-registered machine-learning experiments."""

from __future__ import annotations

import os

# One BLAS thread per process, set before numpy/scipy load their OpenBLAS.  prereg's jobs
# are single-core by design (parallelism is across jobs); OpenBLAS threads contending for
# the cores made JAX's LAPACK solves 10-20x slower on a busy 2-core machine (measured:
# 2.8 vs 51 ms per exp9 step).  Export OPENBLAS_NUM_THREADS yourself to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from prereg.ppo import env as _env  # noqa: F401  (registers the gymnasium id prereg/MesaDock-v0)

__version__ = "0.1.0"
