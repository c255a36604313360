"""Where a run's JAX programs execute: ``auto`` (JAX's default), ``cpu`` or ``gpu``.

``gpu`` refuses with one line when JAX sees no GPU (no CUDA build installed, no driver, or
``JAX_PLATFORMS=cpu``) instead of running on the CPU silently; install the GPU build with
``pip install -e '.[cuda12]'``.  Called at a job's start, before any compute, on the machine
that runs the job (a sweep's login node need not have a GPU).
"""

from __future__ import annotations

from prereg.core.errors import ConfigError

CHOICES = ("auto", "cpu", "gpu")


def describe(device) -> str:
    """``cpu`` or ``gpu (NVIDIA H200)``: the platform, and the device's kind for accelerators."""
    platform = str(device.platform)
    if platform == "cpu":
        return "cpu"
    return f"{platform} ({getattr(device, 'device_kind', '?')})"


def select_device(choice: str, key: str = "ppo.device") -> str:
    """Make ``choice`` JAX's default device for this process; returns :func:`describe` of it.

    Raises :class:`ConfigError` (one line naming ``key``) for an unknown choice or for ``gpu``
    when JAX sees none.
    """
    import jax

    choice = str(choice)
    if choice not in CHOICES:
        raise ConfigError(key, f"unknown option {choice!r}", CHOICES, choice)
    if choice == "auto":
        return describe(jax.devices()[0])
    if choice == "cpu":
        device = jax.devices("cpu")[0]
    else:
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:
            gpus = []
        if not gpus:
            seen = ", ".join(sorted({d.platform for d in jax.devices()}))
            raise ConfigError(
                key,
                f"gpu requested but JAX sees no GPU (devices: {seen}); install the GPU build "
                "with pip install -e '.[cuda12]', or use ppo.device=auto|cpu",
            )
        device = gpus[0]
    jax.config.update("jax_default_device", device)
    return describe(device)
