"""Sweep plumbing: configs, validation, run directories, checkpoints, callbacks, launchers."""

from prereg.sweep.resolvers import register_resolvers

register_resolvers()
