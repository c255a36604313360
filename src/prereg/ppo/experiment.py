"""The PPO studies, defined once: ``ppo`` (one training run), ``ppo_ladder`` (one Path-B
candidate trained and graded; the sweep's verdict adopts the first that passes) and
``ppo_eval`` (a saved checkpoint evaluated at other seeds)."""

from __future__ import annotations

from typing import Any

from prereg.core.experiment import Experiment
from prereg.core.rundirs import flatten
from prereg.ppo.config import EvalStudyConfig, LadderStudyConfig, PPORegistration, PPOStudyConfig
from prereg.ppo.registration_v2 import NAME as V2_NAME
from prereg.ppo.registration_v2 import PPORegistrationV2

#: ppo_pathb_v2's schema, selected by its YAML (any PPO study may compose it)
V2_SCHEMAS = ((V2_NAME, PPORegistrationV2),)
#: how much a Path-B verdict can be trusted (``python -m prereg audit``)
AUDIT = "prereg.ppo.ladder_audit:audit"

#: PPO and ladder runs: the figures a reader compares (hparams are already config columns).
PPO_FIGURES = (
    "updates", "env_steps", "final.success_rate", "final.entropy", "final.log_std",
    "final.value_loss", "evaluation.success_rate", "evaluation.mean_return",
    "stage3_evaluation.success_rate", "grade.passed", "grade.failed_stage", "mean_sps",
)  # fmt: skip


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """PPO / ladder: training end figures, evaluation(s) and the ladder grade where present."""
    flat = flatten(summary)
    return {k: flat[k] for k in PPO_FIGURES if k in flat}


def _figure(x: Any, fmt: str) -> str:
    """A figure as ``fmt``; ``null`` (NaN in JSON) and a missing one as ``nan``."""
    return "nan" if x is None else format(float(x), fmt)


def evaluation_headline(evaluation: dict[str, Any]) -> str:
    """``eval success <k>/<n> = <rate> at seed_start <s>, mean return <r>``."""
    n, rate = int(evaluation["n_seeds"]), evaluation.get("success_rate")
    k = "?" if rate is None else str(round(float(rate) * n))
    return (
        f"eval success {k}/{n} = {_figure(rate, '.3f')} at seed_start "
        f"{evaluation['seed_start']}, mean return {_figure(evaluation.get('mean_return'), '.4g')}"
    )


def headline(summary: dict[str, Any]) -> str:
    """A PPO run: its final deterministic eval; a ladder run adds its Path-B grade; a vmapped
    ladder job (every candidate in one program) its verdict."""
    if summary.get("ladder_mode") == "vmapped" and "verdict" in summary:
        return (
            f"{len(summary['candidates'])} candidates in one program "
            f"({summary['members']} members); {summary['verdict']}"
        )
    line = evaluation_headline(summary["evaluation"])
    grade = summary.get("grade")
    if isinstance(grade, dict) and "passed" in grade:
        line += "; Path-B stages: " + (
            "all passed" if grade["passed"] else f"failed stage {grade.get('failed_stage')}"
        )
    elif isinstance(grade, dict) and "not_graded" in grade:
        line += f"; not graded ({grade['not_graded']})"
    return line


def eval_headline(summary: dict[str, Any]) -> str:
    """Eval-only: the eval, then the file it is in (written, or already there)."""
    return f"{evaluation_headline(summary['evaluation'])}; {summary['evaluation_note']}"


EXPERIMENTS = [
    Experiment(
        name="ppo",
        description="PPO on MesaDock-v0 (or a Gymnasium env id) at a variant and tier",
        config=PPOStudyConfig,
        registration=PPORegistration,
        registration_schemas=V2_SCHEMAS,
        run="prereg.ppo.runner:run",
        validate="prereg.ppo.validate:validate_ppo",
        figures=figures,
        headline=headline,
        audit=AUDIT,
    ),
    Experiment(
        name="ppo_ladder",
        description="the Path-B ladder: candidates trained and graded in registered order",
        config=LadderStudyConfig,
        registration=PPORegistration,
        registration_schemas=V2_SCHEMAS,
        run="prereg.ppo.ladder_vmapped:run",  # one candidate, or every one (vmapped)
        validate="prereg.ppo.validate:validate_ppo_ladder",
        verdict="prereg.ppo.ladder_verdict:write_verdict",
        figures=figures,
        sweep_order="prereg.ppo.ladder_runner:registered_order",
        headline=headline,
        audit=AUDIT,
    ),
    Experiment(
        name="ppo_eval",
        description="evaluate a saved PPO checkpoint at another seed_start",
        config=EvalStudyConfig,
        registration=PPORegistration,
        registration_schemas=V2_SCHEMAS,
        run="prereg.ppo.runner:run_eval",
        validate="prereg.ppo.validate:validate_ppo_eval",
        headline=eval_headline,
    ),
]
