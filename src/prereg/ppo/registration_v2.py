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
