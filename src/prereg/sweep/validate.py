"""Range and consistency checks of a composed config, before any compute.

Hydra and the structured schema catch unknown keys and wrong types while composing;
this module checks what types cannot express (ranges, registered names, files that
must exist) and raises :class:`ConfigError` naming the key and the allowed values.
"""

from __future__ import annotations

import functools
import importlib.util
import re

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from prereg.core.checks import at_least, one_of, positive, typed_keys
from prereg.core.errors import ConfigError, simplify_message
from prereg.core.experiments import experiments, get_experiment
from prereg.training.loggers import check_available


def schema_of(cfg: DictConfig) -> type:
    """The structured schema of the config's study (``runner``)."""
    return get_experiment(str(cfg.get("runner")), "runner").config


@functools.cache
def _schema_config(schema: type, registration: type | None) -> DictConfig:
    """The study's schema as a config (with its registration's subclass schema), built once
    per process (0.05-0.1 s each); callers only merge it or read it."""
    base = OmegaConf.structured(schema)
    if registration is not None:
        base = OmegaConf.merge(base, {"registration": OmegaConf.structured(registration)})
    return base


def known_keys(cfg: DictConfig) -> None:
    """Refuse keys the schema does not know, including ones added with ``+key=value``."""
    plain = {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"}
    schema = schema_of(cfg)

    reg = None
    if isinstance(cfg.get("registration"), DictConfig):  # a subclass schema (ppo_pathb_v2)
        reg = OmegaConf.get_type(cfg, "registration")

    def structured() -> DictConfig:
        return _schema_config(schema, reg if reg is not dict else None)

    try:
        OmegaConf.merge(structured(), plain)
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "command line")
        parent, _, _ = key.rpartition(".")
        base = structured()
        node = OmegaConf.select(base, parent) if parent else base
        allowed = sorted(node.keys()) if isinstance(node, DictConfig) else None
        if "not in" in str(exc.msg):
            if not parent:  # a section this study does not have: name the key as typed
                typed = sorted(k for k in typed_keys(cfg) if k.startswith(key + "."))
                if typed:
                    problem = f"unknown key (this study has no {key} section)"
                    raise ConfigError(typed[0], problem) from None
            leaf = key.rpartition(".")[2]
            raise ConfigError(key, "unknown key", allowed, near=leaf) from None
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
    "workers": 1,  # hydra/launcher=pool
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


#: Counts of the sampling sweepers (hydra/sweeper=optuna, prereg_random) and their least value.
SWEEPER_COUNTS = {"n_trials": 1, "n_jobs": 1}


def validate_sweeper(cfg: DictConfig) -> None:
    """``hydra.sweeper``'s budget and Optuna's direction (composed with the hydra node)."""
    sweeper = OmegaConf.select(cfg, "hydra.sweeper")
    if not isinstance(sweeper, DictConfig):
        return
    for key, low in SWEEPER_COUNTS.items():
        if sweeper.get(key) is not None:
            at_least(f"hydra.sweeper.{key}", sweeper[key], low)
    if sweeper.get("direction") is not None:
        one_of("hydra.sweeper.direction", sweeper.direction, ["maximize", "minimize"])
    if "optuna" in str(sweeper.get("_target_")) and importlib.util.find_spec("optuna") is None:
        raise ConfigError("hydra/sweeper", "optuna is not installed: pip install -e '.[optuna]'")


def validate(cfg: DictConfig) -> None:
    """Check a composed config for its runner; raises :class:`ConfigError` on the first problem."""
    one_of("runner", cfg.get("runner"), sorted(experiments()))
    known_keys(cfg)
    resolvable(cfg)
    validate_launcher(cfg)
    validate_sweeper(cfg)
    check_available(OmegaConf.select(cfg, "logger.name", default="none"))  # logger=wandb
    validator = get_experiment(str(cfg.runner), "runner").validator()
    if validator is not None:
        validator(cfg)
