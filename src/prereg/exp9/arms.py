"""exp9's arms as a registration defines them: each arm's auxiliary weight lambda and form.

``registration.lambdas`` maps an arm name to its lambda (the form is ``registration.aux.form``,
as in exp9_v1) or to ``{lambda: ..., form: ...}`` for an arm of its own form (exp9_v2's
noise-only arm).  ``verdict_arm: all`` registers the generalised verdict: every arm but the
baseline is tested against the baseline (exp9_v2); a named verdict arm is exp9_v1's verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

#: ``verdict_arm`` / ``dose_arm`` value: every arm but the baseline (the generalised verdict).
ALL = "all"


class ArmSpec(NamedTuple):
    """One arm's auxiliary term: weight ``lam`` and form (``rho`` or ``noise``)."""

    lam: float
    form: str


def _form(value: Any) -> str:
    return str(getattr(value, "value", value))  # an AuxForm Enum or its text


def arm_spec(reg: Mapping[str, Any], arm: str) -> ArmSpec:
    """The registered (lambda, form) of ``arm``."""
    entry = reg["lambdas"][arm]
    if isinstance(entry, Mapping):
        return ArmSpec(float(entry["lambda"]), _form(entry.get("form", reg["aux"]["form"])))
    return ArmSpec(float(entry), _form(reg["aux"]["form"]))


def arms(reg: Mapping[str, Any]) -> list[str]:
    """The registered arms, in registration order."""
    return list(reg["lambdas"])


def generalised(reg: Mapping[str, Any]) -> bool:
    """Whether the registration tests every augmented arm against the baseline."""
    return reg.get("verdict_arm") == ALL


def augmented(reg: Mapping[str, Any]) -> list[str]:
    """The arms tested against the baseline: all but the baseline (generalised), else the
    verdict arm."""
    if generalised(reg):
        return [a for a in arms(reg) if a != reg["baseline_arm"]]
    return [reg["verdict_arm"]]


def label(reg: Mapping[str, Any], arm: str) -> str:
    """``rho0_1 (λ = 0.1)``, ``noise0_1 (λ = 0.1, noise)``: the arm with its registered term."""
    if arm not in reg.get("lambdas", {}):
        return arm
    spec = arm_spec(reg, arm)
    form = "" if spec.form == "rho" else f", {spec.form}"
    return f"{arm} (λ = {spec.lam:g}{form})"


def registered_arms(cfg: Any, values: list[str]) -> list[str] | None:
    """The swept arms the registration registers, in its order (a glob's other values are
    dropped before the precheck; the jobs then run baseline first); None when that changes
    nothing."""
    reg = cfg.get("registration")
    if reg is None or reg.get("lambdas") is None:
        return None
    kept = [a for a in reg["lambdas"] if a in values]
    return None if kept == list(values) else kept


def largest_cells_first(cfg: Any, values: list[str]) -> list[str] | None:
    """The swept cells with the largest (most states, ``2^(n+m)``) first, so that jobs running
    side by side (``hydra/launcher=pool``, ``local``, SLURM) end together instead of one large
    job running alone at the end (stable: ties as listed); None when that changes nothing."""
    cells = (cfg.get("registration") or {}).get("cells")
    if cells is None:
        return None
    size = {c: int(cells[c]["n"]) + int(cells[c]["m"]) for c in values if c in cells}
    ordered = sorted(values, key=lambda c: -size.get(c, 0))
    return None if ordered == list(values) else ordered


def sweep_order(cfg: Any, key: str, values: list[str]) -> list[str] | None:
    """exp9's ``sweep_order``: registered arms in registration order (:func:`registered_arms`),
    the largest cells first (:func:`largest_cells_first`); None for another key."""
    if key == "arm":
        return registered_arms(cfg, values)
    if key == "cell":
        return largest_cells_first(cfg, values)
    return None
