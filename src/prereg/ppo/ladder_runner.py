"""``experiment=ppo_ladder``: train one Path-B candidate like a ``ppo`` run, then grade it.

The job trains exactly as :func:`prereg.ppo.runner.run` does (same run-dir life, resume and
files), then evaluates ``checkpoints/final`` at the registered stage-3 seeds
(``logs/evaluation_seed_20000.json`` beside stage 1's ``evaluation_seed_10000.json``) and
records its grade in ``summary.json``.  The verdict regrades from those files.

``ladder.mode=sequential`` is the seed's one-candidate-at-a-time protocol: a job whose
earlier-ordered candidate in the same sweep has already passed all three stages is recorded
as ``skipped`` without training.  Two parts make that work on every launcher:

* :func:`registered_order` (the study's ``sweep_order``, applied before Hydra starts) puts a
  ``candidate=`` sweep of a ladder multirun into registered order (``glob(*)`` would be
  alphabetical), so the in-process basic launcher runs lr1e4, vc0_25, ec0_001, clip0_1 in
  turn and a SLURM array's task ids follow the same order;
* each job decides only from FINISHED siblings on disk: it skips only when an earlier
  candidate's completed run grades as passing.  It never waits, so jobs running at once
  (a SLURM array with ``array_parallelism`` > 1) simply all train, as in ``parallel`` mode,
  and a killed or pending sibling can never block it.  Extra runs never change the verdict,
  which adopts the first passing candidate in registered order either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from prereg.core.atomic import atomic_write_json
from prereg.core.checks import typed_registration
from prereg.core.registration import registration_hash, to_plain
from prereg.core.rundir import RunDir, RunSkipped
from prereg.core.rundirs import find_runs
from prereg.ppo import runner as ppo_runner
from prereg.ppo.candidates import CONTROL, candidate_name, registered_names
from prereg.ppo.config import PPORegistration
from prereg.ppo.ladder import Grade
from prereg.ppo.ladder_verdict import LADDER, candidate_of, experiment_of, grade_files, grade_run

log = logging.getLogger("prereg.ppo")
_SETTING_EXCLUDED = ("candidate", "ladder.mode", "logger")  # logging changes no result


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train and grade one candidate in ``run_dir`` (or skip it, in sequential mode), or the
    control with ``ladder.control=true`` (every candidate at once: ``ladder_vmapped``)."""
    if cfg.ladder.control:  # the control job: the registered set-up at the default hparams
        cfg = OmegaConf.merge(cfg, {"candidate": {"name": CONTROL}})  # type: ignore[assignment]
    return ppo_runner.run_ppo(cfg, run_dir, LADDER, train_and_grade)


def _setting(overrides: Sequence[str]) -> list[str]:
    """A job's overrides without the candidate and mode: what siblings must share."""
    return sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in _SETTING_EXCLUDED)


def earlier_pass(
    sweep_dir: Path, run_dir: Path, name: str, registration: dict[str, Any]
) -> tuple[str, Path] | None:
    """An earlier-ordered candidate whose finished run in ``sweep_dir`` passed all three stages.

    Only siblings of the same registration hash and the same other overrides count.
    """
    reg_hash = registration_hash(registration)
    order = registered_names(registration)
    mine = RunDir(run_dir).read() or {}
    setting = _setting((mine.get("job") or {}).get("overrides") or [])
    for sib in find_runs([sweep_dir]):
        other = candidate_of(sib)
        if (
            sib.path == run_dir.resolve()
            or other not in order
            or order.index(other) >= order.index(name)
            or experiment_of(sib) != LADDER
            or sib.registration_hash != reg_hash
            or _setting(sib.overrides) != setting
        ):
            continue
        g = grade_run(sib, registration)
        if isinstance(g, Grade) and g.passed:
            return other, sib.path
    return None


def _sweep_dir() -> Path | None:
    """The sweep directory of a running multirun job (None for a single run)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(HydraConfig.get().sweep.dir)


def train_and_grade(cfg: DictConfig, rd: RunDir) -> dict[str, Any]:
    """The ladder job's body: skip check, :func:`prereg.ppo.runner.train`, stage-3 eval, grade."""
    reg = to_plain(typed_registration(cfg, PPORegistration))
    name = str(candidate_name(cfg))
    sweep_dir = _sweep_dir()
    if cfg.ladder.mode == "sequential" and sweep_dir is not None and name != CONTROL:
        passed = earlier_pass(sweep_dir, rd.path, name, reg)
        if passed is not None:
            raise RunSkipped(
                f"earlier candidate {passed[0]} passed all three stages in this sweep "
                "(sequential ladder)"
            )
    return grade_and_record(cfg, rd, ppo_runner.train(cfg, rd))


def grade_and_record(cfg: DictConfig, rd: RunDir, summary: dict[str, Any]) -> dict[str, Any]:
    """A trained candidate's stage-3 eval and grade, added to its ``summary.json``."""
    reg = to_plain(typed_registration(cfg, PPORegistration))
    name = str(candidate_name(cfg))
    s3 = reg["stage3"]
    stage3_eval, _ = ppo_runner.eval_checkpoint(
        rd.path / "checkpoints" / "final", rd.path, int(s3["seed_start"]), int(s3["n_seeds"])
    )
    g = grade_files(rd.path, reg)
    summary.update(
        experiment=LADDER,
        ladder_mode=str(cfg.ladder.mode),
        stage3_evaluation=stage3_eval,
        grade=g.to_dict() if isinstance(g, Grade) else {"not_graded": g},
    )
    atomic_write_json(rd.path / "summary.json", summary)
    log.info("%s: candidate %s %s", rd.path.name, name, _grade_text(g))
    return summary


def _grade_text(g: Grade | str) -> str:
    if not isinstance(g, Grade):
        return f"not graded ({g})"
    return "passes all three stages" if g.passed else f"fails Stage {g.failed_stage}"


def registered_order(cfg: DictConfig, key: str, values: Sequence[str]) -> list[str] | None:
    """A ladder sweep's ``candidate=`` values in registered order (None for other keys).

    ``glob(*)`` would be alphabetical; in registered order the in-process basic launcher runs
    lr1e4, vc0_25, ec0_001, clip0_1 in turn and a SLURM array's task ids follow the same order.
    """
    if key != "candidate":
        return None
    order = registered_names(cfg.registration)
    return sorted(values, key=lambda v: order.index(v) if v in order else len(order))
