"""exp9_estimator's checks of a composed config, before any compute (the source sweep too)."""

from __future__ import annotations

from omegaconf import DictConfig

from prereg.core.checks import at_least, non_negative, positive, typed_registration, unit_interval
from prereg.core.errors import ConfigError
from prereg.exp9_estimator.config import Exp9EstRegistration
from prereg.exp9_estimator.source import KEY, check_source


def _ints(key: str, values: list[int], low: int) -> list[int]:
    if not values:
        raise ConfigError(key, "at least one value is needed")
    for i, v in enumerate(values):
        at_least(f"{key}[{i}]", v, low)
    if len(set(values)) != len(values):
        raise ConfigError(key, f"values must differ, got {list(values)}")
    return list(values)


def validate(cfg: DictConfig) -> None:
    """Registered constants in range, then the source sweep: present, complete, registered."""
    reg = typed_registration(cfg, Exp9EstRegistration)
    at_least("registration.chains", reg.chains, 2)
    burn_ins = _ints("registration.burn_in", reg.burn_in, 0)
    lengths = _ints("registration.lengths", reg.lengths, 1)
    if reg.practical.burn_in not in burn_ins:
        raise ConfigError("registration.practical.burn_in", "not a registered burn_in", burn_ins)
    if reg.practical.length not in lengths:
        raise ConfigError("registration.practical.length", "not a registered length", lengths)
    at_least("registration.exact_t_max", reg.exact_t_max, 1)
    at_least("registration.seed", reg.seed, 0)
    at_least("registration.bootstrap.resamples", reg.bootstrap.resamples, 10)
    at_least("registration.bootstrap.seed", reg.bootstrap.seed, 0)
    at_least("registration.curve_thetas", reg.curve_thetas, 1)
    level = unit_interval("registration.checks.e1_family_level", reg.checks.e1_family_level)
    if not 0 < level < 1:
        raise ConfigError("registration.checks.e1_family_level", f"must lie in (0, 1), got {level}")
    unit_interval("registration.checks.e2_spearman_bar", reg.checks.e2_spearman_bar)
    if positive("registration.checks.e3_factor", reg.checks.e3_factor) < 1:
        raise ConfigError("registration.checks.e3_factor", "must be >= 1")
    unit_interval("registration.checks.e3_fraction", reg.checks.e3_fraction)
    if reg.checks.e4_steering_bar is not None:
        positive("registration.checks.e4_steering_bar", reg.checks.e4_steering_bar)
    at_least("registration.e5.chains", reg.e5.chains, 1)
    at_least("registration.e5.steps_per_update", reg.e5.steps_per_update, 1)
    at_least("registration.e5.seed", reg.e5.seed, 0)
    non_negative("registration.e5.predicted_earlier_at_most", reg.e5.predicted_earlier_at_most)
    src = check_source(cfg.get(KEY), reg.source_registration)
    for i, cell in enumerate(reg.e5.cells):
        if cell not in src.cells:
            raise ConfigError(f"registration.e5.cells[{i}]", f"unknown cell {cell!r}", src.cells)
