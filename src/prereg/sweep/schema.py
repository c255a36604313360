"""Structured configs (dataclasses in Hydra's ConfigStore): the typed shape of every config.

``conf/config.yaml`` extends ``prereg_schema``, so Hydra rejects unknown keys and values
of the wrong type while composing; range checks live in :mod:`prereg.sweep.validate`.
Registrations are typed separately (``Exp9Registration``...) and checked by the runner's
validator, because each experiment has its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

RUNNERS = ("exp9", "ppo", "ppo_ladder", "ppo_eval")
LOGGERS = ("none", "tensorboard")  # the options of the logger group (conf/logger/)


# ----------------------------------------------------------------------------- exp9
@dataclass
class ArmConf:
    """exp9 arm: which registered auxiliary weight lambda the run uses."""

    name: str = MISSING


@dataclass
class CellConf:
    """exp9 cell: which registered model size, teacher and initial theta."""

    name: str = MISSING


@dataclass
class Exp9Conf:
    """exp9 execution settings that do not change the science (not registered)."""

    chunk_steps: int = 500  # steps per jitted scan chunk; a checkpoint is written after each


@dataclass
class CellSpec:
    n: int = MISSING
    m: int = MISSING
    teacher_seed: int = MISSING
    init_seed: int = MISSING


@dataclass
class AuxSpec:
    form: str = "rho"  # rho: KL - lambda log rho;  noise: KL + lambda log trace(Sigma)


@dataclass
class Exp9Gates:
    detailed_balance: float = 1e-15
    row_sum: float = 1e-14
    symmetry: float = 1e-14
    fidelity_abs: float = 1e-12
    fidelity_gap_scale: float = 1e-14
    fidelity_min_gap: float = 1e-8
    cheeger_rel_tol: float = 1e-9
    halt_gap: float = 1e-10
    fd_rel_err: float = 1e-6
    fd_min_grad_norm: float = 1e-3
    fd_steps: list[float] = field(default_factory=lambda: [1e-4, 1e-5, 1e-6])
    fd_directions: int = 8
    fd_seed: int = 0


@dataclass
class Exp9Registration:
    """Every pre-registered exp9 constant (DESIGN section 5); hashed into each run."""

    name: str = MISSING
    experiment: str = "exp9"
    beta: float = 1.0
    init_scale: float = 0.1
    cells: dict[str, CellSpec] = field(default_factory=dict)
    lambdas: dict[str, float] = field(default_factory=dict)
    aux: AuxSpec = field(default_factory=AuxSpec)
    verdict_arm: str = "primary"
    dose_arm: str = "secondary"
    baseline_arm: str = "baseline"
    lr: float = 0.02
    step_cap: int = 2000
    thresholds: list[float] = field(default_factory=lambda: [0.5, 0.1])
    steering_bar: float = 2.0
    consistency_count: int = 7
    diagnostic_steps: int = 16
    runtime_cap_s: float = 14400.0
    finals_window: int = 200
    gates: Exp9Gates = field(default_factory=Exp9Gates)


# ----------------------------------------------------------------------------- ppo
@dataclass
class PPOConf:
    """PPO hyper-parameters and run settings (DESIGN section 6); defaults are the seed's."""

    lr: float = 3e-4
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    clip_range: float = 0.2
    updates: int = 1221
    mixed_lambda: float = 0.0
    variant: str = "reward_phase3"
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_envs: int = 64
    num_steps: int = 128
    update_epochs: int = 10
    num_minibatches: int = 32
    max_grad_norm: float = 0.5
    seed: int = 0
    backend: str = "jax"
    init_from: str | None = None
    chunk_updates: int = 25
    checkpoint_every: int = 100
    eval_every: int = 100
    eval_seeds: int = 32
    eval_seed_start: int = 10000
    progress: str = "auto"


@dataclass
class TierConf:
    name: str = MISSING
    hidden: list[int] = field(default_factory=list)


@dataclass
class EnvConf:
    id: str = "prereg/MesaDock-v0"


@dataclass
class EvalConf:
    seed_start: int = 10000
    n_seeds: int = 32


@dataclass
class CandidateConf:
    name: str = MISSING


@dataclass
class LadderConf:
    mode: str = "sequential"


@dataclass
class Stage1Spec:
    seed_start: int = 10000
    n_seeds: int = 32
    min_success_rate: float = 0.40


@dataclass
class Stage2Spec:
    window: int = 50
    max_final_entropy: float = 2.28
    max_log_std_delta: float = 0.0
    max_value_loss: float = 400.0


@dataclass
class Stage3Spec:
    seed_start: int = 20000
    n_seeds: int = 32
    max_abs_gap: float = 0.10


@dataclass
class CandidateSpec:
    order: int = MISSING
    set: dict[str, float] = field(default_factory=dict)
    falsifier: str = MISSING


@dataclass
class PPORegistration:
    """Every pre-registered Path-B constant (seed 003 sections 3-5); hashed into each PPO run."""

    name: str = MISSING
    experiment: str = "ppo"
    variant: str = "mixed_0_90"
    tier: str = "large"
    updates: int = 1221
    stage1: Stage1Spec = field(default_factory=Stage1Spec)
    stage2: Stage2Spec = field(default_factory=Stage2Spec)
    stage3: Stage3Spec = field(default_factory=Stage3Spec)
    candidates: dict[str, CandidateSpec] = field(default_factory=dict)


# ----------------------------------------------------------------------------- logging
@dataclass
class LoggerConf:
    """Where per-step figures also go, one of ``LOGGERS`` (changes no result)."""

    name: str = "none"


# ----------------------------------------------------------------------------- top level
@dataclass
class PreregConfig:
    """The whole composed config; the experiment group fills ``runner`` and its sections."""

    runner: str = "exp9"
    registration: Any = None
    arm: ArmConf | None = None
    cell: CellConf | None = None
    exp9: Exp9Conf = field(default_factory=Exp9Conf)
    ppo: PPOConf = field(default_factory=PPOConf)
    tier: TierConf | None = None
    env: EnvConf = field(default_factory=EnvConf)
    eval: EvalConf | None = None
    candidate: CandidateConf | None = None
    ladder: LadderConf = field(default_factory=LadderConf)
    checkpoint: str | None = None
    logger: LoggerConf = field(default_factory=LoggerConf)


def register_schemas() -> None:
    """Store the top-level schema in Hydra's ConfigStore (idempotent).

    Group schemas are typed through ``PreregConfig`` rather than stored in their groups,
    so that ``cell=glob(*)`` expands to exactly the registered cells.
    """
    cs = ConfigStore.instance()
    cs.store(name="prereg_schema", node=PreregConfig)
