"""The bottom layer: run records, run directories, atomic I/O, signals, errors, registrations.

Nothing here imports JAX, Hydra's runtime or any study.
"""
