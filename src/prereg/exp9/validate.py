"""exp9's checks of a composed config, before any compute (ranges and registered names)."""

from __future__ import annotations

from omegaconf import DictConfig

from prereg.core.checks import (
    at_least,
    one_of,
    positive,
    typed_keys,
    typed_registration,
    unit_interval,
)
from prereg.core.errors import ConfigError
from prereg.exp9.arms import ALL
from prereg.exp9.config import AuxForm, Exp9Registration

ARM_KEYS = ("lambda", "form")


def _check_arm(key: str, entry: object) -> None:
    """An arm: a lambda in [0, 1], or ``{lambda: <in [0, 1]>, form: rho|noise}``."""
    if isinstance(entry, DictConfig):
        for k in entry:
            one_of(f"{key}.{k}", k, list(ARM_KEYS))
        if "lambda" not in entry:
            raise ConfigError(f"{key}.lambda", "missing (an arm of its own form needs a lambda)")
        one_of(f"{key}.form", str(entry.get("form", "rho")), [f.value for f in AuxForm])
        key, entry = f"{key}.lambda", entry["lambda"]
    if isinstance(entry, bool) or not isinstance(entry, (int, float)):
        raise ConfigError(key, f"{entry!r} is not a number in [0, 1] (nor {{lambda, form}})")
    unit_interval(key, entry)


def validate(cfg: DictConfig) -> None:
    """exp9: registered arm and cell, positive lr, step cap >= 1, lambdas in [0, 1]..."""
    reg = typed_registration(cfg, Exp9Registration)
    if not reg.cells:
        raise ConfigError("registration.cells", "no cells registered")
    for name, cell in reg.cells.items():
        at_least(f"registration.cells.{name}.n", cell.n, 1)
        at_least(f"registration.cells.{name}.m", cell.m, 1)
        if cell.n + cell.m > 12:
            raise ConfigError(
                f"registration.cells.{name}", "n + m must be <= 12 (exact enumeration)"
            )
    for arm, entry in reg.lambdas.items():
        _check_arm(f"registration.lambdas.{arm}", entry)
    one_of("registration.baseline_arm", reg.baseline_arm, list(reg.lambdas))
    for key in ("verdict_arm", "dose_arm"):  # "all": the generalised verdict (exp9.arms)
        one_of(f"registration.{key}", reg[key], [*reg.lambdas, ALL])
    if (reg.verdict_arm == ALL) != (reg.dose_arm == ALL):  # name the one the user typed
        key = "dose_arm" if "registration.dose_arm" in typed_keys(cfg) else "verdict_arm"
        other = "verdict_arm" if key == "dose_arm" else "dose_arm"
        raise ConfigError(
            f"registration.{key}",
            f"{ALL!r} (every augmented arm) needs {other}: {ALL} too"
            if reg[key] == ALL
            else f"must be {ALL!r}: {other} is {ALL!r}",
        )
    positive("registration.lr", reg.lr)
    positive("registration.beta", reg.beta)
    positive("registration.init_scale", reg.init_scale)
    at_least("registration.step_cap", reg.step_cap, 1)
    at_least("registration.diagnostic_steps", reg.diagnostic_steps, 2)
    at_least("registration.consistency_count", reg.consistency_count, 0)
    at_least("registration.finals_window", reg.finals_window, 1)
    positive("registration.steering_bar", reg.steering_bar)
    positive("registration.runtime_cap_s", reg.runtime_cap_s)
    if not reg.thresholds:
        raise ConfigError("registration.thresholds", "at least one threshold is needed")
    for i, eps in enumerate(reg.thresholds):
        unit_interval(f"registration.thresholds[{i}]", eps, open_low=True)
    for key, value in reg.gates.items():
        if key in ("fd_directions",):
            at_least(f"registration.gates.{key}", value, 1)
        elif key == "fd_seed":
            at_least(f"registration.gates.{key}", value, 0)
        elif key == "fd_steps":
            for i, h in enumerate(value):
                positive(f"registration.gates.fd_steps[{i}]", h)
        else:
            positive(f"registration.gates.{key}", value)
    if cfg.arm is None:
        raise ConfigError("arm", "no arm selected", list(reg.lambdas))
    if cfg.arm.name not in reg.lambdas:  # an arm file of another registration
        problem = f"unknown option {cfg.arm.name!r} (registration {reg.name} does not register it)"
        raise ConfigError("arm", problem, list(reg.lambdas), near=cfg.arm.name)
    if cfg.cell is None:
        raise ConfigError("cell", "no cell selected", list(reg.cells))
    one_of("cell", cfg.cell.name, list(reg.cells))
    at_least("exp9.chunk_steps", cfg.exp9.chunk_steps, 1)
