"""The JAX settings of every prereg process that computes, set before its first computation.

* The persistent compilation cache, with atomic entries (:mod:`prereg.training.jaxcache`).
* CPU asynchronous dispatch off (``jax_cpu_enable_async_dispatch``).  With it on, JAX's CPU
  client can hang for good: every XLA thread idle, the caller waiting in
  ``xla::Semaphore::ScopedAcquire`` for computations that never finish (jax-ml/jax#25861, open;
  seen here in a ``ladder.mode=vmapped`` job at tier large, 4 % CPU for 11 minutes, deaf to
  SIGTERM).  prereg reads each chunk's results on the host right after the call, so there is
  no overlap to lose.  The flag is read when JAX creates its CPU client (the first
  computation of the process); set later it changes nothing, and it is left as it is.
"""

from __future__ import annotations

from pathlib import Path

from prereg.training.jaxcache import enable_compilation_cache


def configure_jax() -> Path:
    """Turn the compilation cache on and CPU async dispatch off; the cache's directory."""
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return enable_compilation_cache()
