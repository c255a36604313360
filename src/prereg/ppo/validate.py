"""The PPO studies' checks of a composed config, before any compute.

Ranges of the PPO knobs, the tier, the eval seeds, the env id for the chosen backend, an
initial checkpoint, and the Path-B registration (unique candidate orders, registered knobs).
:func:`validate_ppo_knobs` is also what the trainer's :class:`~prereg.ppo.trainer.PPOConfig`
runs when it is built, so a Python caller gets the same one-line errors as the command line.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from prereg.core.checks import (
    _number,
    at_least,
    non_negative,
    one_of,
    positive,
    task_overrides,
    typed_keys,
    typed_registration,
    unit_interval,
)
from prereg.core.errors import ConfigError
from prereg.ppo.candidates import KNOBS, apply_candidate, check_candidate, registered_names
from prereg.ppo.config import PPORegistration
from prereg.ppo.registration_v2 import is_pooled, validate_v2

MESADOCK_ID = "prereg/MesaDock-v0"


#: The range of each knob a Path-B candidate may change (checked on ``ppo.<knob>`` too).
KNOB_CHECKS: dict[str, Callable[[str, object], float]] = {
    "lr": positive,
    "value_coef": non_negative,
    "entropy_coef": non_negative,
    "clip_range": positive,
}


#: SB3's bounds on a Gaussian policy's log std (its SAC clamps log_std to [-20, 2])
LOG_STD_INIT_RANGE = (-20.0, 2.0)


def validate_ppo_knobs(p: Any) -> None:
    """The PPO knobs: positive lr and clip range, mixing lambda in [0, 1], sizes that divide.

    ``p`` is the ``ppo`` section (a DictConfig) or the trainer's ``PPOConfig``: read by
    attribute only.
    """
    for knob, check in KNOB_CHECKS.items():
        check(f"ppo.{knob}", getattr(p, knob))
    positive("ppo.max_grad_norm", p.max_grad_norm)
    positive("ppo.adam_eps", p.adam_eps)
    positive("ppo.obs_clip", p.obs_clip)
    low, high = LOG_STD_INIT_RANGE
    if not low <= _number("ppo.log_std_init", p.log_std_init) <= high:
        raise ConfigError(
            "ppo.log_std_init", f"must lie in [{low:g}, {high:g}], got {p.log_std_init!r}"
        )
    if not isinstance(p.anneal_lr, bool):
        raise ConfigError("ppo.anneal_lr", f"must be true or false, got {p.anneal_lr!r}")
    unit_interval("ppo.mixed_lambda", p.mixed_lambda)
    unit_interval("ppo.gamma", p.gamma)
    unit_interval("ppo.gae_lambda", p.gae_lambda)
    for key in ("num_envs", "num_steps", "update_epochs", "num_minibatches", "chunk_updates"):
        at_least(f"ppo.{key}", getattr(p, key), 1)
    at_least("ppo.eval_every", p.eval_every, 1)
    at_least("ppo.checkpoint_every", p.checkpoint_every, 1, null="a checkpoint after every chunk")
    at_least("ppo.updates", p.updates, 1)
    at_least("ppo.eval_seeds", p.eval_seeds, 1)
    at_least("ppo.eval_seed_start", p.eval_seed_start, 0)
    at_least("ppo.seed", p.seed, 0)
    at_least("ppo.num_seeds", p.num_seeds, 1)
    at_least("ppo.video_every", getattr(p, "video_every", 0), 0)
    if p.num_seeds > 1 and p.backend != "jax":
        raise ConfigError(
            "ppo.num_seeds",
            f"{p.num_seeds} seeds in one program need ppo.backend=jax (got {p.backend}); "
            "run the gymnasium backend's seeds as a sweep (ppo.seed=0,1,...)",
        )
    if (p.num_envs * p.num_steps) % p.num_minibatches:
        raise ConfigError(
            "ppo.num_minibatches",
            f"must divide ppo.num_envs * ppo.num_steps = {p.num_envs * p.num_steps}",
        )


def validate_tier(cfg: DictConfig) -> None:
    """The selected tier's hidden layer sizes: at least one, each >= 1."""
    if not cfg.tier.hidden:
        raise ConfigError("tier.hidden", "needs at least one hidden layer size")
    for i, h in enumerate(cfg.tier.hidden):
        at_least(f"tier.hidden[{i}]", h, 1)


def validate_ppo_hparams(cfg: DictConfig) -> None:
    """A PPO run's knobs, tier, eval seeds, env and initial checkpoint."""
    p = cfg.ppo
    validate_ppo_knobs(p)
    if cfg.tier is None:
        raise ConfigError("tier", "no tier selected", ["small", "medium", "large"])
    validate_tier(cfg)
    validate_eval(cfg)
    validate_env(cfg)
    if p.init_from is not None:
        checkpoint_path("ppo.init_from", p.init_from)
        same_seed_count("ppo.init_from", p.init_from, int(p.num_seeds))
        if p.anneal_lr:
            # the schedule counts the optimiser's steps, which a segment carries on from
            raise ConfigError(
                "ppo.anneal_lr",
                "anneals over one run's ppo.updates from a fresh optimiser; "
                "it cannot continue a segment (ppo.init_from)",
            )


def validate_eval(cfg: DictConfig) -> None:
    """Eval seeds: seed_start >= 0 and n_seeds >= 1."""
    if cfg.eval is None:
        raise ConfigError("eval", "no eval selected", ["seed_10000", "seed_20000"])
    at_least("eval.seed_start", cfg.eval.seed_start, 0)
    at_least("eval.n_seeds", cfg.eval.n_seeds, 1)


def validate_env(cfg: DictConfig) -> None:
    """The jitted backend needs MesaDock; the gymnasium backend any registered Box-action env."""
    env_id = cfg.env.id
    if cfg.ppo.backend == "jax":
        if env_id != MESADOCK_ID:
            raise ConfigError(
                "env.id",
                f"{env_id!r} has no JAX functional form; use ppo.backend=gymnasium for it",
                [MESADOCK_ID],
            )
        return
    try:
        validate_env_id(env_id)
    except ValueError as exc:
        message = str(exc).removeprefix("env.id: ").removeprefix("env.id=")
        raise ConfigError("env.id", message) from None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def validate_env_id(env_id: str) -> tuple[Any, Any]:
    """Check ``env_id`` is registered with Box observation and action spaces.

    Accepts ``"module:Env-v0"`` (the module is imported first, as ``gymnasium.make``
    does); ids in the ``prereg/`` namespace import :mod:`prereg.ppo.env`.  Returns
    ``(observation_space, action_space)``; raises ``ValueError`` with a one-line
    message naming ``env.id`` otherwise.
    """
    import gymnasium
    from gymnasium import spaces

    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env.id must be a non-empty string, got {env_id!r}")
    name = env_id
    if ":" in env_id:
        module, name = env_id.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(
                f"env.id={env_id!r}: cannot import {module!r} ({_one_line(e)})"
            ) from None
    if name.startswith("prereg/"):
        importlib.import_module("prereg.ppo.env")
    try:
        gymnasium.spec(name)
    except gymnasium.error.Error as e:
        raise ValueError(
            f"env.id={env_id!r} is not a registered Gymnasium environment ({_one_line(e)})"
        ) from None
    env = gymnasium.make(name)
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    if not isinstance(act_space, spaces.Box):
        raise ValueError(
            f"env.id={env_id!r} has action space {act_space}; PPO here needs a continuous Box"
        )
    if not isinstance(obs_space, spaces.Box):
        raise ValueError(
            f"env.id={env_id!r} has observation space {obs_space}; PPO here needs a Box"
        )
    return obs_space, act_space


def checkpoint_path(key: str, value: object) -> None:
    """A path that exists and holds a prereg PPO checkpoint."""
    from pathlib import Path

    from prereg.training.checkpoints import is_checkpoint

    path = Path(str(value))
    if not path.exists():
        raise ConfigError(key, f"{value} does not exist")
    if not is_checkpoint(path):
        raise ConfigError(key, f"{value} is not a prereg PPO checkpoint (or it is corrupted)")


def same_seed_count(key: str, value: object, num_seeds: int) -> None:
    """A segment continues a checkpoint of as many seeds as ``ppo.num_seeds``."""
    import json
    from pathlib import Path

    from prereg.training.checkpoints import META_FILE

    meta = json.loads((Path(str(value)) / META_FILE).read_text()).get("meta") or {}
    held = int(((meta.get("settings") or {}).get("ppo") or {}).get("num_seeds") or 1)
    if held != num_seeds:
        raise ConfigError(
            key,
            f"{value} holds {held} seed(s) but ppo.num_seeds={num_seeds}; continue it with "
            f"ppo.num_seeds={held} (one seed of a multi-seed run: checkpoints/seed_<s>/final)",
        )


def validate_ppo_registration(cfg: DictConfig) -> DictConfig:
    """The Path-B registration: thresholds are numbers, candidate orders are unique."""
    reg = typed_registration(cfg, PPORegistration)
    if is_pooled(reg):  # ppo_pathb_v2's own constants
        validate_v2(reg)
    at_least("registration.updates", reg.updates, 1)
    at_least("registration.stage2.window", reg.stage2.window, 2)
    unit_interval("registration.stage1.min_success_rate", reg.stage1.min_success_rate)
    unit_interval("registration.stage3.max_abs_gap", reg.stage3.max_abs_gap)
    positive("registration.stage2.max_value_loss", reg.stage2.max_value_loss)
    _number("registration.stage2.max_final_entropy", reg.stage2.max_final_entropy)
    _number("registration.stage2.max_log_std_delta", reg.stage2.max_log_std_delta)
    for stage in ("stage1", "stage3"):
        at_least(f"registration.{stage}.seed_start", reg[stage].seed_start, 0)
        at_least(f"registration.{stage}.n_seeds", reg[stage].n_seeds, 1)
    orders: dict[int, str] = {}
    typed = typed_keys(cfg)
    for name, cand in reg.candidates.items():
        at_least(f"registration.candidates.{name}.order", cand.order, 1)
        if cand.order in orders:
            # name the order the command line changed, not the registered one it now repeats
            other = orders[cand.order]
            if f"registration.candidates.{other}.order" in typed:
                name, other = other, name
            raise ConfigError(
                f"registration.candidates.{name}.order",
                f"order {cand.order} repeats that of {other}; orders must be unique",
            )
        orders[cand.order] = name
        if not cand.set:
            raise ConfigError(f"registration.candidates.{name}.set", "changes no hparam", KNOBS)
        for knob, value in cand.set.items():
            one_of(f"registration.candidates.{name}.set", knob, KNOBS)
            KNOB_CHECKS.get(knob, _number)(f"registration.candidates.{name}.set.{knob}", value)
    return reg


def validate_device(cfg: DictConfig) -> None:
    """``ppo.device=gpu`` needs a GPU that JAX sees, checked where the job runs: a config
    composed with its ``hydra`` node is the launching side's precheck (a SLURM login node
    need not have a GPU), so it is checked there only by the job itself."""
    if "hydra" in cfg or cfg.ppo.device == "auto":
        return
    from prereg.training.device import select_device

    select_device(str(cfg.ppo.device))


def validate_ppo(cfg: DictConfig) -> None:
    """experiment=ppo: registration, candidate (if any), hyper-parameters, tier, eval, env,
    device."""
    validate_ppo_registration(cfg)
    check_candidate(cfg)
    validate_ppo_hparams(apply_candidate(cfg))
    validate_device(cfg)


def validate_ppo_ladder(cfg: DictConfig) -> None:
    """experiment=ppo_ladder: a ppo run with a registered candidate, a mode, the stage-1 eval."""
    reg = validate_ppo_registration(cfg)
    vmapped = cfg.ladder.mode == "vmapped"
    if vmapped:
        validate_vmapped(cfg)
    elif cfg.ladder.control and cfg.candidate is not None:
        raise ConfigError(
            "ladder.control",
            f"a control job trains the default hparams, not candidate {cfg.candidate.name}; "
            "run it as its own job into the sweep dir (hydra.run.dir=<sweep dir>/control), or "
            "beside every candidate with ladder.mode=vmapped",
        )
    elif cfg.candidate is None and not cfg.ladder.control:
        raise ConfigError("candidate", "no candidate selected", registered_names(reg))
    if is_pooled(reg):  # a v2 ladder job trains the registered number of seeds
        validate_v2(reg, int(cfg.ppo.num_seeds))
    validate_ppo(cfg)
    for override in task_overrides(cfg):
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "eval" or key.startswith("eval."):
            raise ConfigError(
                key,
                "the ladder evaluates at the registered seeds; override registration.stage1 "
                "or registration.stage3 instead",
            )


def validate_vmapped(cfg: DictConfig) -> None:
    """``ladder.mode=vmapped``: one job trains every registered candidate from scratch."""
    if cfg.candidate is not None:
        raise ConfigError(
            "candidate",
            f"ladder.mode=vmapped trains every registered candidate in one job; drop "
            f"candidate={cfg.candidate.name} (or use ladder.mode=sequential|parallel)",
        )
    if cfg.ppo.backend != "jax":
        raise ConfigError(
            "ppo.backend",
            f"ladder.mode=vmapped needs the jitted trainer (got {cfg.ppo.backend})",
            ["jax"],
        )
    if cfg.ppo.init_from:
        raise ConfigError(
            "ppo.init_from", "ladder.mode=vmapped trains every candidate from scratch; drop it"
        )


def validate_ppo_eval(cfg: DictConfig) -> None:
    """experiment=ppo_eval: an existing checkpoint and valid eval seeds."""
    validate_ppo_registration(cfg)
    validate_ppo_knobs(cfg.ppo)
    validate_env(cfg)
    validate_eval(cfg)
    if cfg.checkpoint is None:
        raise ConfigError("checkpoint", "a checkpoint path is required (checkpoint=<dir>)")
    checkpoint_path("checkpoint", cfg.checkpoint)
    validate_device(cfg)
