"""Hydra sweepers that ship with prereg: ``hydra/sweeper=prereg_random`` (a seeded random
search) and ``hydra/sweeper=optuna`` (Optuna's TPE, ask/tell); both label their runs exploratory."""
