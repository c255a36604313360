"""Range and consistency checks of a composed config, before any compute.

Hydra and the structured schema catch unknown keys and wrong types while composing;
this module checks what types cannot express (ranges, registered names, files that
must exist) and raises :class:`ConfigError` naming the key and the allowed values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from prereg.core.errors import ConfigError, simplify_message
from prereg.ppo.candidates import (
    KNOBS,
    apply_candidate,
    check_candidate,
    registered_names,
    task_overrides,
)
from prereg.sweep.schema import (
    LOGGERS,
    RUNNERS,
    Exp9Registration,
    PPORegistration,
    PreregConfig,
)

AUX_FORMS = ("rho", "noise")
LADDER_MODES = ("sequential", "parallel")


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


def at_least(key: str, value: object, low: int) -> int:
    """An integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ConfigError(key, f"must be an integer >= {low}, got {value!r}")
    return value


def one_of(key: str, value: object, allowed: tuple[str, ...] | list[str]) -> str:
    """A name from ``allowed``."""
    if value not in allowed:
        raise ConfigError(key, f"unknown value {value!r}", allowed)
    return str(value)


def typed_keys(cfg: DictConfig) -> set[str]:
    """The keys the command line set (``+a.b=1`` -> ``a.b``), to name those in errors."""
    return {o.split("=", 1)[0].lstrip("+~") for o in task_overrides(cfg)}


def typed_registration(cfg: DictConfig, schema: type) -> DictConfig:
    """Merge ``cfg.registration`` into its dataclass schema: unknown keys and types fail."""
    if cfg.get("registration") is None:
        raise ConfigError("registration", "no registration selected", ["exp9_v1", "ppo_pathb_v1"])
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), cfg.registration)
    except OmegaConfBaseException as exc:
        key = f"registration.{exc.full_key}" if getattr(exc, "full_key", None) else "registration"
        if "not in" in str(exc.msg) and "Key" in str(exc.msg):
            allowed = sorted(OmegaConf.structured(schema).keys())
            raise ConfigError(key, "unknown key", allowed) from None
        raise ConfigError(key, simplify_message(exc.msg)) from None


def validate_exp9(cfg: DictConfig) -> None:
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
    for arm, lam in reg.lambdas.items():
        unit_interval(f"registration.lambdas.{arm}", lam)
    for key in ("verdict_arm", "dose_arm", "baseline_arm"):
        one_of(f"registration.{key}", reg[key], list(reg.lambdas))
    one_of("registration.aux.form", reg.aux.form, AUX_FORMS)
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
    one_of("arm", cfg.arm.name, list(reg.lambdas))
    if cfg.cell is None:
        raise ConfigError("cell", "no cell selected", list(reg.cells))
    one_of("cell", cfg.cell.name, list(reg.cells))


PPO_BACKENDS = ("jax", "gymnasium")
MESADOCK_ID = "prereg/MesaDock-v0"


#: The range of each knob a Path-B candidate may change (checked on ``ppo.<knob>`` too).
KNOB_CHECKS: dict[str, Callable[[str, object], float]] = {
    "lr": positive,
    "value_coef": non_negative,
    "entropy_coef": non_negative,
    "clip_range": positive,
}


def validate_ppo_knobs(p: DictConfig) -> None:
    """The PPO knobs: positive lr and clip range, mixing lambda in [0, 1], sizes that divide."""
    for knob, check in KNOB_CHECKS.items():
        check(f"ppo.{knob}", p[knob])
    positive("ppo.max_grad_norm", p.max_grad_norm)
    unit_interval("ppo.mixed_lambda", p.mixed_lambda)
    unit_interval("ppo.gamma", p.gamma)
    unit_interval("ppo.gae_lambda", p.gae_lambda)
    for key in ("num_envs", "num_steps", "update_epochs", "num_minibatches", "chunk_updates"):
        at_least(f"ppo.{key}", p[key], 1)
    for key in ("checkpoint_every", "eval_every"):
        at_least(f"ppo.{key}", p[key], 1)
    at_least("ppo.updates", p.updates, 1)
    at_least("ppo.eval_seeds", p.eval_seeds, 1)
    at_least("ppo.eval_seed_start", p.eval_seed_start, 0)
    at_least("ppo.seed", p.seed, 0)
    if (p.num_envs * p.num_steps) % p.num_minibatches:
        raise ConfigError(
            "ppo.num_minibatches",
            f"must divide ppo.num_envs * ppo.num_steps = {p.num_envs * p.num_steps}",
        )
    one_of("ppo.progress", p.progress, ("auto", "bar", "log", "off"))
    one_of("ppo.backend", p.backend, PPO_BACKENDS)


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
    from prereg.ppo.gym_backend import validate_env_id

    try:
        validate_env_id(env_id)
    except ValueError as exc:
        message = str(exc).removeprefix("env.id: ").removeprefix("env.id=")
        raise ConfigError("env.id", message) from None


def checkpoint_path(key: str, value: object) -> None:
    """A path that exists and holds a prereg PPO checkpoint."""
    from pathlib import Path

    from prereg.training.checkpoints import is_checkpoint

    path = Path(str(value))
    if not path.exists():
        raise ConfigError(key, f"{value} does not exist")
    if not is_checkpoint(path):
        raise ConfigError(key, f"{value} is not a prereg PPO checkpoint (or it is corrupted)")


def validate_ppo_registration(cfg: DictConfig) -> DictConfig:
    """The Path-B registration: thresholds are numbers, candidate orders are unique."""
    reg = typed_registration(cfg, PPORegistration)
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


def validate_ppo(cfg: DictConfig) -> None:
    """experiment=ppo: registration, candidate (if any), hyper-parameters, tier, eval, env."""
    validate_ppo_registration(cfg)
    check_candidate(cfg)
    validate_ppo_hparams(apply_candidate(cfg))


def validate_ppo_ladder(cfg: DictConfig) -> None:
    """experiment=ppo_ladder: a ppo run with a registered candidate, a mode, the stage-1 eval."""
    reg = validate_ppo_registration(cfg)
    if cfg.candidate is None:
        raise ConfigError("candidate", "no candidate selected", registered_names(reg))
    validate_ppo(cfg)
    one_of("ladder.mode", cfg.ladder.mode, LADDER_MODES)
    for override in task_overrides(cfg):
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "eval" or key.startswith("eval."):
            raise ConfigError(
                key,
                "the ladder evaluates at the registered seeds; override registration.stage1 "
                "or registration.stage3 instead",
            )


def validate_ppo_eval(cfg: DictConfig) -> None:
    """experiment=ppo_eval: an existing checkpoint and valid eval seeds."""
    validate_ppo_registration(cfg)
    validate_eval(cfg)
    if cfg.checkpoint is None:
        raise ConfigError("checkpoint", "a checkpoint path is required (checkpoint=<dir>)")
    checkpoint_path("checkpoint", cfg.checkpoint)


VALIDATORS: dict[str, Callable[[DictConfig], None]] = {
    "exp9": validate_exp9,
    "ppo": validate_ppo,
    "ppo_ladder": validate_ppo_ladder,
    "ppo_eval": validate_ppo_eval,
}


def known_keys(cfg: DictConfig) -> None:
    """Refuse keys the schema does not know, including ones added with ``+key=value``."""
    plain = {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"}
    try:
        OmegaConf.merge(OmegaConf.structured(PreregConfig), plain)
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "command line")
        parent, _, _ = key.rpartition(".")
        base = OmegaConf.structured(PreregConfig)
        node = OmegaConf.select(base, parent) if parent else base
        allowed = sorted(node.keys()) if isinstance(node, DictConfig) else None
        if "not in" in str(exc.msg):
            raise ConfigError(key, "unknown key", allowed) from None
        raise ConfigError(key, simplify_message(exc.msg)) from None


def resolvable(cfg: DictConfig) -> None:
    """Every ``${...}`` outside ``hydra`` resolves to a value of its key's type.

    A bad interpolation (``ppo.lr=${bogus}``) would otherwise fail only where the run
    first reads the key, mid-run.  ``${hydra:...}`` is left alone: it resolves only in a job.
    """
    typed = typed_keys(cfg)

    def walk(node: DictConfig | ListConfig, path: str) -> None:
        keys = list(node.keys()) if isinstance(node, DictConfig) else range(len(node))
        for k in keys:
            full = f"{path}[{k}]" if isinstance(node, ListConfig) else f"{path}{k}"
            if (not path and k == "hydra") or OmegaConf.is_missing(node, k):
                continue
            if OmegaConf.is_interpolation(node, k):
                raw = str(node._get_node(k)._value())  # noqa: SLF001
                if "${hydra:" in raw:
                    continue
                try:
                    node[k]
                except Exception as exc:  # noqa: BLE001 - any resolver error
                    msg = getattr(exc, "msg", None) or str(exc)
                    msg = re.sub(r"^While dereferencing interpolation '[^']*': ", "", str(msg))
                    msg = simplify_message(msg)
                    # ${registration.updates} of a bad registration.updates=...: name that key
                    ref = re.fullmatch(r"\$\{([\w.]+)\}", raw)
                    if ref and ref.group(1) in typed:
                        raise ConfigError(ref.group(1), f"{msg} (it sets {full})") from None
                    raise ConfigError(full, f"cannot resolve: {msg}") from None
                continue
            child = node[k]
            if isinstance(child, DictConfig | ListConfig):
                walk(child, f"{full}.")

    walk(cfg, "")


#: The launcher's counts and their least allowed value (null keeps a launcher's default).
LAUNCHER_COUNTS = {
    "array_parallelism": 1,
    "timeout_min": 1,
    "nodes": 1,
    "tasks_per_node": 1,
    "cpus_per_task": 1,
    "gpus_per_node": 0,
    "max_num_timeout": 0,
    "signal_delay_s": 0,
}


def validate_launcher(cfg: DictConfig) -> None:
    """``hydra.launcher`` sizes and limits (when composed with the hydra node, as by precheck)."""
    launcher = OmegaConf.select(cfg, "hydra.launcher")
    if not isinstance(launcher, DictConfig):
        return
    for key, low in LAUNCHER_COUNTS.items():
        if launcher.get(key) is not None:
            at_least(f"hydra.launcher.{key}", launcher[key], low)
    if launcher.get("mem_gb") is not None:
        positive("hydra.launcher.mem_gb", launcher.mem_gb)


def validate_sections(cfg: DictConfig) -> None:
    """The sections every config has, whatever the experiment.

    A bad value is refused even where this experiment does not read it: the run's saved
    config would otherwise carry it, and the user most likely meant another experiment.
    """
    at_least("exp9.chunk_steps", cfg.exp9.chunk_steps, 1)
    validate_ppo_knobs(cfg.ppo)
    validate_env(cfg)
    one_of("ladder.mode", cfg.ladder.mode, LADDER_MODES)
    if cfg.tier is not None:
        validate_tier(cfg)
    if cfg.eval is not None:
        validate_eval(cfg)
    if cfg.get("logger") is not None:
        one_of("logger.name", cfg.logger.name, LOGGERS)


def validate(cfg: DictConfig) -> None:
    """Check a composed config for its runner; raises :class:`ConfigError` on the first problem."""
    known_keys(cfg)
    resolvable(cfg)
    validate_launcher(cfg)
    one_of("runner", cfg.runner, RUNNERS)
    validator = VALIDATORS.get(cfg.runner)
    if validator is None:
        raise ConfigError(
            "experiment", f"{cfg.runner!r} is not available in this version", list(VALIDATORS)
        )
    validator(cfg)
    validate_sections(cfg)
