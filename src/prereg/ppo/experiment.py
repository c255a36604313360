"""The PPO studies, defined once: ``ppo`` (one training run), ``ppo_ladder`` (one Path-B
candidate trained and graded; the sweep's verdict adopts the first that passes) and
``ppo_eval`` (a saved checkpoint evaluated at other seeds)."""

from __future__ import annotations

from typing import Any

from prereg.core.experiment import Experiment
from prereg.core.rundirs import flatten
from prereg.ppo.config import EvalStudyConfig, LadderStudyConfig, PPORegistration, PPOStudyConfig

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


EXPERIMENTS = [
    Experiment(
        name="ppo",
        description="PPO on MesaDock-v0 (or a Gymnasium env id) at a variant and tier",
        config=PPOStudyConfig,
        registration=PPORegistration,
        run="prereg.ppo.runner:run",
        validate="prereg.ppo.validate:validate_ppo",
        figures=figures,
    ),
    Experiment(
        name="ppo_ladder",
        description="the Path-B ladder: candidates trained and graded in registered order",
        config=LadderStudyConfig,
        registration=PPORegistration,
        run="prereg.ppo.ladder_runner:run",
        validate="prereg.ppo.validate:validate_ppo_ladder",
        verdict="prereg.ppo.ladder_verdict:write_verdict",
        figures=figures,
        sweep_order="prereg.ppo.ladder_runner:registered_order",
    ),
    Experiment(
        name="ppo_eval",
        description="evaluate a saved PPO checkpoint at another seed_start",
        config=EvalStudyConfig,
        registration=PPORegistration,
        run="prereg.ppo.runner:run_eval",
        validate="prereg.ppo.validate:validate_ppo_eval",
    ),
]
