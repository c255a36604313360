"""Sweep plumbing for Hydra: schemas, preflight, validation, dispatch, callbacks, launchers."""
