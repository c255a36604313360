"""``experiment=ppo_ladder``: train one Path-B candidate like a ``ppo`` run, then grade it.

The job trains exactly as :func:`prereg.ppo.runner.run` does (same run-dir life, resume and
files), then evaluates ``checkpoints/final`` at the registered stage-3 seeds
(``logs/evaluation_seed_20000.json`` beside stage 1's ``evaluation_seed_10000.json``) and
records its grade in ``summary.json``.  The verdict regrades from those files.

``ladder.mode=sequential`` is the seed's one-candidate-at-a-time protocol: a job whose
earlier-ordered candidate in the same sweep has already passed all three stages is recorded
as ``skipped`` without training.  Two parts make that work on every launcher:

* :func:`registered_sweep_order` (called by ``run.py`` before Hydra starts) rewrites a
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

from omegaconf import DictConfig

from prereg.core.atomic import atomic_write_json
from prereg.core.registration import registration_hash, to_plain
from prereg.core.rundir import RunDir, RunSkipped
from prereg.core.rundirs import find_runs
from prereg.ppo import runner as ppo_runner
from prereg.ppo.candidates import candidate_name, registered_names
from prereg.ppo.ladder import Grade
from prereg.ppo.ladder_verdict import LADDER, candidate_of, experiment_of, grade_files, grade_run
from prereg.sweep.schema import PPORegistration
from prereg.sweep.validate import typed_registration

log = logging.getLogger("prereg.ppo")
_SETTING_EXCLUDED = ("candidate", "ladder.mode", "logger")  # logging changes no result


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train and grade one candidate in ``run_dir`` (or skip it, in sequential mode)."""
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
    if cfg.ladder.mode == "sequential" and sweep_dir is not None:
        passed = earlier_pass(sweep_dir, rd.path, name, reg)
        if passed is not None:
            raise RunSkipped(
                f"earlier candidate {passed[0]} passed all three stages in this sweep "
                "(sequential ladder)"
            )
    summary = ppo_runner.train(cfg, rd)
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


def registered_sweep_order(argv: list[str], conf_dir: Path) -> list[str]:
    """``argv`` with a ladder multirun's ``candidate=`` sweep listed in registered order.

    Any other command line comes back unchanged (as does one that does not compose: the
    precheck has already reported it).
    """
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    from prereg.sweep.precheck import _loader, expand_jobs

    try:
        args = get_args_parser().parse_args(argv)
        multirun = bool(args.multirun) or "hydra.mode=MULTIRUN" in args.overrides
        if not multirun:
            return argv
        loader = _loader(conf_dir)
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(args.overrides)
        sweep = next(
            (
                o
                for o in parsed
                if o.is_sweep_override() and o.get_key_element().lstrip("+") == "candidate"
            ),
            None,
        )
        if sweep is None:
            return argv
        job = expand_jobs(loader, list(args.overrides), multirun=True)[0]
        cfg = loader.load_configuration(args.config_name or "config", job, run_mode=RunMode.RUN)
        if cfg.runner != LADDER:
            return argv
        order = registered_names(cfg.registration)
        values = sorted(
            sweep.sweep_string_iterator(),
            key=lambda v: order.index(v) if v in order else len(order),
        )
    except Exception:  # noqa: BLE001 - never block a run over its order
        return argv
    new = f"{sweep.get_key_element()}={','.join(values)}"
    print(f"ladder: candidates in registered order: {', '.join(values)}")
    return [new if a == sweep.input_line else a for a in argv]
