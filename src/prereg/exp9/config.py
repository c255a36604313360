"""exp9's structured configs: its config sections and its registration (DESIGN section 5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from prereg.core.experiment import Choice, StudyConfig


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


class AuxForm(Choice):
    """The auxiliary loss: ``rho``: KL - lambda log rho;  ``noise``: KL + lambda log tr Sigma."""

    rho = "rho"
    noise = "noise"


@dataclass
class AuxSpec:
    form: AuxForm = AuxForm.rho


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
    # arm -> lambda (form aux.form), or arm -> {lambda: x, form: rho|noise}; see exp9.arms
    lambdas: dict[str, Any] = field(default_factory=dict)
    aux: AuxSpec = field(default_factory=AuxSpec)
    verdict_arm: str = "primary"  # or "all": every arm but the baseline (exp9.arms.ALL)
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


@dataclass
class Exp9Config(StudyConfig):
    """``experiment=exp9``: one (arm, cell) run of a registered exp9 sweep."""

    runner: str = "exp9"
    registration: Exp9Registration | None = None
    arm: ArmConf | None = None
    cell: CellConf | None = None
    exp9: Exp9Conf = field(default_factory=Exp9Conf)
