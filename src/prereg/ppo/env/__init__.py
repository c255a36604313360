"""MesaDock-v0 environment; importing this package registers ``prereg/MesaDock-v0`` with Gymnasium.

Registration uses a string entry point, so it does not import jax; the env module
(:mod:`prereg.ppo.env.mesadock`) is imported lazily on first attribute access or on
``gymnasium.make``.
"""

from __future__ import annotations

from typing import Any

import gymnasium

ENV_ID = "prereg/MesaDock-v0"
ENTRY_POINT = "prereg.ppo.env.mesadock:MesaDockEnv"
MAX_EPISODE_STEPS = 200

_LAZY = (
    "DEFAULT_PARAMS",
    "MesaDockEnv",
    "MesaDockFuncEnv",
    "MesaDockParams",
    "OBS_FIELDS",
    "STATE_FIELDS",
)

__all__ = ["ENTRY_POINT", "ENV_ID", "MAX_EPISODE_STEPS", "register", *_LAZY]


def register() -> None:
    """Register ``prereg/MesaDock-v0`` once (safe to call repeatedly)."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point=ENTRY_POINT, max_episode_steps=MAX_EPISODE_STEPS)


register()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from prereg.ppo.env import mesadock

        return getattr(mesadock, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
