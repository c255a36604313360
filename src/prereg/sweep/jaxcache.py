"""The persistent JAX compilation cache, under the user's cache directory."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$PREREG_JAX_CACHE``, else ``$XDG_CACHE_HOME/prereg/jax``, else ``~/.cache/prereg/jax``."""
    if os.environ.get("PREREG_JAX_CACHE"):
        return Path(os.environ["PREREG_JAX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prereg" / "jax"


def enable_compilation_cache() -> Path:
    """Turn on JAX's persistent cache (entries are written atomically by JAX itself)."""
    import jax

    path = cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
