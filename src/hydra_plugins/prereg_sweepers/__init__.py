"""Hydra sweepers that ship with prereg (``hydra/sweeper=prereg_random``)."""
