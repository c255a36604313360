"""Test-session set-up: the persistent JAX compilation cache for in-process tests.

Subprocesses started through ``run.py`` enable the same cache themselves.
"""

from __future__ import annotations

from prereg.training.jaxcache import enable_compilation_cache

enable_compilation_cache()
