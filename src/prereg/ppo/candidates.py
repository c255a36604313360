"""Path-B candidates: a candidate option names a registered hparam change and nothing else.

``conf/candidate/<name>.yaml`` sets only ``candidate.name``; the change itself (``{lr: 1e-4}``)
lives in ONE place, ``registration.candidates.<name>.set``, and is merged onto ``cfg.ppo`` by
:func:`apply_candidate` when a PPO run starts.  A command line that also sets one of those
keys to another value is refused (:func:`check_candidate`), so a run never silently trains
something other than what its candidate name says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from prereg.core.checks import task_overrides
from prereg.core.errors import ConfigError

#: The knobs a Path-B candidate may change (seed 003 section 1: "hparam fixes only").
KNOBS = ("lr", "value_coef", "entropy_coef", "clip_range")
#: the vmapped ladder's control member (``ladder.control=true``): the registered set-up at the
#: default hparams, no registered change; reported beside the candidates, never adopted
CONTROL = "control"


def registered_names(registration: Mapping[str, Any]) -> list[str]:
    """The registration's candidate names in registered order."""
    cands = registration.get("candidates") or {}
    return sorted(cands, key=lambda name: cands[name]["order"])


def candidate_name(cfg: DictConfig) -> str | None:
    """The selected candidate's name, or None without one."""
    cand = cfg.get("candidate")
    return None if cand is None else str(cand.name)


def candidate_changes(cfg: DictConfig) -> dict[str, float]:
    """``registration.candidates.<name>.set`` of the selected candidate ({} without one)."""
    name = candidate_name(cfg)
    if name is None or name == CONTROL:
        return {}
    cands = cfg.registration.get("candidates") or {}
    if name not in cands:
        raise ConfigError(
            "candidate", f"unknown candidate {name!r}", registered_names(cfg.registration)
        )
    return {str(k): v for k, v in cands[name].set.items()}


def check_candidate(cfg: DictConfig) -> None:
    """Refuse a command line that sets a key of the candidate's registered change differently."""
    changes = candidate_changes(cfg)
    name = candidate_name(cfg)
    for override in task_overrides(cfg):
        key = override.split("=", 1)[0].lstrip("+~")
        knob = key.removeprefix("ppo.")
        if key.startswith("ppo.") and knob in changes and cfg.ppo[knob] != changes[knob]:
            raise ConfigError(
                key,
                f"candidate {name} sets it to {changes[knob]:g} "
                f"(registration.candidates.{name}.set.{knob}); drop {override} or the candidate",
            )


def apply_candidate(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` with the candidate's registered change merged onto ``cfg.ppo``."""
    changes = candidate_changes(cfg)
    if not changes:
        return cfg
    return OmegaConf.merge(cfg, {"ppo": changes})  # type: ignore[return-value]
