"""The schema of ``registration=ppo_pathb_v2``: the multi-seed Path-B ladder (DESIGN section 10).

v2 keeps v1's variant, tier, budget, eval seeds and candidates and changes the gates' kind, so
its constants differ in kind from v1's (``num_seeds``; a Wilson bound, a regression slope, an
explained-variance floor, a two-proportion test).  It is a subclass of
:class:`~prereg.ppo.config.PPORegistration`, so it fits the PPO studies' ``registration``
field while Hydra composes; its YAML selects it with
``defaults: [/registration_schema/ppo_pathb_v2@_here_, _self_]``.  v1's schema, hash and
files are untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prereg.core.checks import _number, at_least
from prereg.core.errors import ConfigError
from prereg.ppo.config import PPORegistration, Stage1Spec, Stage2Spec, Stage3Spec

NAME = "ppo_pathb_v2"


@dataclass
class Stage1SpecV2(Stage1Spec):
    """Stage 1 on the pooled episodes (``n_seeds`` per training seed), by its Wilson bound."""

    confidence: float = 0.95


@dataclass
class Stage2SpecV2(Stage2Spec):
    """Stage 2 by a pooled log_std slope bound and an explained-variance floor.

    v1's end-point delta and value-loss constants stay (Hydra types a stage by a subclass of
    v1's): they are v1's gates, reported beside v2's for comparison, not v2 gates.
    """

    window: int = 100
    max_log_std_slope: float = 5.0e-4
    confidence: float = 0.95
    min_explained_variance: float = 0.5


@dataclass
class Stage3SpecV2(Stage3Spec):
    """Stage 3 as a two-proportion test at ``alpha`` (v1's ``max_abs_gap``: reported only)."""

    alpha: float = 0.05


@dataclass
class PPORegistrationV2(PPORegistration):
    """ppo_pathb_v2's constants: v1's set-up with ``num_seeds`` training seeds per candidate."""

    num_seeds: int = 5
    stage1: Stage1SpecV2 = field(default_factory=Stage1SpecV2)  # type: ignore[assignment]
    stage2: Stage2SpecV2 = field(default_factory=Stage2SpecV2)  # type: ignore[assignment]
    stage3: Stage3SpecV2 = field(default_factory=Stage3SpecV2)  # type: ignore[assignment]


def is_pooled(registration: Mapping[str, Any]) -> bool:
    """Whether a (plain) registration is a multi-seed one graded by the v2 gates."""
    return "num_seeds" in registration


def schema_of(registration: Mapping[str, Any]) -> type:
    """The dataclass a plain PPO registration is typed against."""
    return PPORegistrationV2 if is_pooled(registration) else PPORegistration


def _open_unit(key: str, value: object) -> float:
    """A probability strictly between 0 and 1 (a confidence level, a test's alpha)."""
    x = _number(key, value)
    if not 0 < x < 1:
        raise ConfigError(key, f"must lie in (0, 1), got {value!r}")
    return x


def validate_v2(reg: Any, ppo_num_seeds: int | None = None) -> None:
    """v2's own constants (ranges) and, for a ladder job, that ``ppo.num_seeds`` trains the
    registered number of seeds (else the run could not be graded after training)."""
    n = at_least("registration.num_seeds", reg.num_seeds, 1)
    at_least("registration.stage2.window", reg.stage2.window, 3)  # a slope with residual dof
    _open_unit("registration.stage1.confidence", reg.stage1.confidence)
    _open_unit("registration.stage2.confidence", reg.stage2.confidence)
    _open_unit("registration.stage3.alpha", reg.stage3.alpha)
    _number("registration.stage2.max_log_std_slope", reg.stage2.max_log_std_slope)
    ev = _number("registration.stage2.min_explained_variance", reg.stage2.min_explained_variance)
    if ev > 1:
        raise ConfigError("registration.stage2.min_explained_variance", f"must be <= 1, got {ev}")
    if ppo_num_seeds is not None and ppo_num_seeds != n:
        raise ConfigError(
            "ppo.num_seeds",
            f"{reg.name} grades {n} training seeds per candidate, got ppo.num_seeds="
            f"{ppo_num_seeds}; change registration.num_seeds instead",
        )
