"""exp9_estimator's structured configs: its one config key and its registration (exp9_est_v1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from prereg.core.experiment import Choice, StudyConfig

NAME = "exp9_estimator"


class StartDist(Choice):
    """The chains' start distribution mu0 (only the uniform one is registered)."""

    uniform = "uniform"


@dataclass
class Practical:
    """The (B, T) a sampled-gradient learner would use: E2, E3 and E4 are judged there."""

    burn_in: int = 64
    length: int = 256


@dataclass
class Bootstrap:
    """Bootstrap over chains: ``resamples`` multinomial reweightings, drawn from ``seed``."""

    resamples: int = 1000
    seed: int = 0


@dataclass
class Checks:
    """The pre-registered E1-E4 constants (falsifiers in the registration file)."""

    e1_family_level: float = 0.95
    e2_spearman_bar: float = 0.9
    e3_factor: float = 2.0
    e3_fraction: float = 0.75
    e4_steering_bar: float | None = None  # None: exp9's own steering bar (source registration)


@dataclass
class SampledTraining:
    """E5: exp9's arms retrained with the KL gradient's model side from persistent chains."""

    chains: int = 64
    steps_per_update: int = 16
    seed: int = 0
    cells: list[str] = field(default_factory=list)  # empty: every cell of the source sweep
    predicted_earlier_at_most: int = 4  # prediction: primary crosses strictly earlier in <= this


@dataclass
class Exp9EstRegistration:
    """Every pre-registered constant of the estimator study; hashed into its run."""

    name: str = MISSING
    experiment: str = NAME
    source_registration: str = "exp9_v1"
    start: StartDist = StartDist.uniform
    chains: int = 1024
    burn_in: list[int] = field(default_factory=lambda: [0, 64])
    lengths: list[int] = field(default_factory=lambda: [16, 64, 256, 1024])
    practical: Practical = field(default_factory=Practical)
    seed: int = 0
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    checks: Checks = field(default_factory=Checks)
    e5: SampledTraining = field(default_factory=SampledTraining)
    exact_t_max: int = 4096
    curve_thetas: int = 4


@dataclass
class Exp9EstConfig(StudyConfig):
    """``experiment=exp9_estimator source_sweep=<dir>``: the whole study in one job."""

    runner: str = NAME
    registration: Exp9EstRegistration | None = None
    source_sweep: str | None = None
