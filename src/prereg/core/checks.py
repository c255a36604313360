"""Checks of config values that any study's validator uses; each raises :class:`ConfigError`.

Types are checked by Hydra while it composes (structured configs); these check what types
cannot express: ranges, names from a registered set, a registration merged into its schema.
"""

from __future__ import annotations

import math
from typing import cast, overload

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from prereg.core.errors import ConfigError, simplify_message


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ConfigError(key, f"must be finite, got {value!r}")
    return float(value)


def positive(key: str, value: object) -> float:
    """A finite number > 0."""
    x = _number(key, value)
    if x <= 0:
        raise ConfigError(key, f"must be > 0, got {value!r}")
    return x


def non_negative(key: str, value: object) -> float:
    """A finite number >= 0."""
    x = _number(key, value)
    if x < 0:
        raise ConfigError(key, f"must be >= 0, got {value!r}")
    return x


def unit_interval(key: str, value: object, open_low: bool = False) -> float:
    """A number in [0, 1] (or (0, 1] with ``open_low``)."""
    x = _number(key, value)
    if x > 1 or x < 0 or (open_low and x == 0):
        raise ConfigError(key, f"must lie in {'(0, 1]' if open_low else '[0, 1]'}, got {value!r}")
    return x


@overload
def at_least(key: str, value: object, low: int) -> int: ...
@overload
def at_least(key: str, value: object, low: int, null: str) -> int | None: ...
def at_least(key: str, value: object, low: int, null: str | None = None) -> int | None:
    """An integer >= ``low``; with ``null`` (what null means, for the error line) also null."""
    if value is None and null is not None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        allowed = f"null ({null}) or an integer" if null is not None else "an integer"
        raise ConfigError(key, f"must be {allowed} >= {low}, got {value!r}")
    return value


def one_of(key: str, value: object, allowed: tuple[str, ...] | list[str]) -> str:
    """A name from ``allowed``."""
    if value not in allowed:
        raise ConfigError(key, f"unknown value {value!r}", allowed, near=value)
    return str(value)


def task_overrides(cfg: DictConfig) -> list[str]:
    """The job's command-line overrides (composed config, or the running Hydra job)."""
    if "hydra" in cfg:
        return list(cfg.hydra.overrides.task)
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def typed_keys(cfg: DictConfig) -> set[str]:
    """The keys the command line set (``+a.b=1`` -> ``a.b``), to name those in errors."""
    return {o.split("=", 1)[0].lstrip("+~") for o in task_overrides(cfg)}


def typed_registration(cfg: DictConfig, schema: type) -> DictConfig:
    """Merge ``cfg.registration`` into its dataclass schema: unknown keys and types fail."""
    if cfg.get("registration") is None:
        raise ConfigError("registration", "no registration selected")
    try:
        return cast(DictConfig, OmegaConf.merge(OmegaConf.structured(schema), cfg.registration))
    except OmegaConfBaseException as exc:
        key = f"registration.{exc.full_key}" if getattr(exc, "full_key", None) else "registration"
        if "not in" in str(exc.msg) and "Key" in str(exc.msg):
            allowed = sorted(OmegaConf.structured(schema).keys())
            raise ConfigError(key, "unknown key", allowed) from None
        raise ConfigError(key, simplify_message(str(exc.msg))) from None
