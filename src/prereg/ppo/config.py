"""PPO's structured configs: run settings, tiers, eval, the Path-B ladder and its registration.

One schema for the three PPO studies (``ppo``, ``ppo_ladder``, ``ppo_eval``); each takes only
the sections it reads.  :class:`PPOConf` is also the trainer's settings (DESIGN section 6):
:class:`prereg.ppo.trainer.PPOConfig` is a frozen copy of its fields (plus the tier's name), so
every default lives here once and every trainer setting is reachable as ``ppo.<key>=...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from prereg.core.experiment import Choice, StudyConfig


class Backend(Choice):
    """``jax``: MesaDock stepped inside the jitted scan; ``gymnasium``: any Box-action env id."""

    jax = "jax"
    gymnasium = "gymnasium"


class Device(Choice):
    """``auto``: JAX's default device (a GPU when one is seen); ``cpu``; ``gpu`` (refused with
    one line when JAX sees none, rather than running on the CPU silently)."""

    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class Progress(Choice):
    """``auto``: a bar on a terminal, log lines otherwise; ``bar``; ``log``; ``off``."""

    auto = "auto"
    bar = "bar"
    log = "log"
    off = "off"


@dataclass
class PPOConf:
    """PPO hyper-parameters and run settings (DESIGN section 6); defaults are the seed's.

    The optimiser and policy details CleanRL and SB3 expose are here too, at the values every
    registered run has used: ``anneal_lr`` (lr falls linearly to 0 over ``updates``; off),
    ``adam_eps`` (1e-5, CleanRL's), ``log_std_init`` (0: std 1) and ``obs_clip`` (normalised
    observations clipped to +-10, as Gymnasium's/SB3's normalisers do).  ``num_seeds`` trains
    that many seeds in one vmapped program (1: a single run, as before); ``device`` picks where.
    """

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
    backend: Backend = Backend.jax
    init_from: str | None = None
    chunk_updates: int = 25
    # null: a checkpoint after every chunk; N: only where the update count reaches a multiple
    # of N (and at the end, and on a signal); a kill resumes from the newest checkpoint
    checkpoint_every: int | None = None
    eval_every: int = 100
    eval_seeds: int = 32
    eval_seed_start: int = 10000
    progress: Progress = Progress.auto
    anneal_lr: bool = False
    adam_eps: float = 1e-5
    log_std_init: float = 0.0
    obs_clip: float = 10.0
    num_seeds: int = 1  # > 1: seeds seed .. seed+num_seeds-1 vmapped in one jitted program
    device: Device = Device.auto
    video_every: int = 0  # > 0: a video of one eval episode at every K-th periodic eval


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


class LadderMode(Choice):
    """``sequential``: the seed's one-at-a-time protocol; ``parallel``: all at once (SLURM);
    ``vmapped``: one job trains every candidate (x seeds) in one jitted program."""

    sequential = "sequential"
    parallel = "parallel"
    vmapped = "vmapped"


@dataclass
class LadderConf:
    mode: LadderMode = LadderMode.sequential
    #: vmapped mode: also train the control (the registered set-up at the default hparams),
    #: reported in the verdict, never adopted
    control: bool = False


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


@dataclass
class PPOStudyConfig(StudyConfig):
    """``experiment=ppo``: one PPO training run (optionally a registered candidate's change)."""

    runner: str = "ppo"
    registration: PPORegistration | None = None
    ppo: PPOConf = field(default_factory=PPOConf)
    tier: TierConf | None = None
    env: EnvConf = field(default_factory=EnvConf)
    eval: EvalConf | None = None
    candidate: CandidateConf | None = None


@dataclass
class LadderStudyConfig(PPOStudyConfig):
    """``experiment=ppo_ladder``: one candidate trained and graded by the registered stages."""

    runner: str = "ppo_ladder"
    ladder: LadderConf = field(default_factory=LadderConf)


@dataclass
class EvalStudyConfig(StudyConfig):
    """``experiment=ppo_eval``: a saved checkpoint evaluated at other seeds."""

    runner: str = "ppo_eval"
    registration: PPORegistration | None = None
    ppo: PPOConf = field(default_factory=PPOConf)
    env: EnvConf = field(default_factory=EnvConf)
    eval: EvalConf | None = None
    checkpoint: str | None = None
