"""prereg: Hydra-configured sweeps for pre-registered machine-learning experiments."""

from __future__ import annotations

from prereg.ppo import env as _env  # noqa: F401  (registers the gymnasium id prereg/MesaDock-v0)

__version__ = "0.1.0"
