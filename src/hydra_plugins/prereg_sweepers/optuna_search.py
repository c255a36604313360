"""``hydra/sweeper=optuna``: explore hyper-parameters with Optuna before freezing a registration.

prereg's own sweeper on Optuna's ask/tell API (``hydra-optuna-sweeper`` pins ``optuna<3``).
Each swept key becomes an Optuna distribution: ``interval(a, b)`` a float range
(``tag(log, interval(a, b))`` log-scaled), ``choice(...)``/``a,b,c``/``range(...)``/``glob(...)``
a categorical one; keys that are not swept are passed through.  ``n_trials`` trials run in
batches of ``n_jobs`` (one launch each, so a SLURM launcher runs a batch as one array); every
trial is a normal prereg job directory, and its value is the ``objective`` figure of its
``summary.json`` (a dotted key, e.g. ``evaluation.success_rate``), ``direction`` maximised or
minimised.  A trial whose job did not complete, or whose figure is missing or not finite, is told
to Optuna as failed.

The study lives in ``<sweep dir>/optuna.db`` (SQLite): re-running the same command resumes it
(finished trials count towards ``n_trials``; their jobs are not redone); ``<sweep dir>/optuna.json``
lists every trial (params, value, state, job dir) and the best.  Runs made this way are
labelled exploratory in their ``run.json`` and no verdict counts them as registered evidence; a
registration is frozen afterwards from what the study found (README: "Explore, then register").

    prereg run -m hydra/sweeper=optuna hydra.sweeper.n_trials=20 experiment=ppo tier=small \\
        'ppo.lr=tag(log, interval(1e-5, 1e-3))' 'ppo.clip_range=choice(0.1, 0.2, 0.3)'

(No ``from __future__ import annotations``: see :mod:`.random_search`.)
"""

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobStatus

from hydra_plugins.prereg_sweepers.base import LaunchingSweeper

log = logging.getLogger(__name__)

STUDY_DB = "optuna.db"  # in the sweep dir


@dataclass
class OptunaConf:
    _target_: str = "hydra_plugins.prereg_sweepers.optuna_search.OptunaSweeper"
    n_trials: int = 10
    n_jobs: int = 1  # trials launched together (asked before any of them is told)
    seed: int = 0  # the TPE sampler's seed
    objective: str = "evaluation.success_rate"  # dotted key of each trial's summary.json
    direction: str = "maximize"
    study_name: str = "prereg"


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=OptunaConf, provider="prereg"
)


def distributions(overrides: Sequence[Any]) -> dict[str, Any]:
    """The Optuna distribution of each swept override, by key."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    out: dict[str, Any] = {}
    for o in overrides:
        if not o.is_sweep_override():
            continue
        if o.is_discrete_sweep():
            out[o.get_key_element()] = CategoricalDistribution(list(o.sweep_string_iterator()))
        else:  # IntervalSweep: Hydra's intervals are float ranges
            value = o.value()
            log_scale = "log" in (value.tags or set())
            out[o.get_key_element()] = FloatDistribution(
                float(value.start), float(value.end), log=log_scale
            )
    return out


def job_overrides(overrides: Sequence[Any], params: dict[str, Any]) -> list[str]:
    """One trial's command line: its drawn values, the other overrides as typed."""
    job = []
    for o in overrides:
        key = o.get_key_element()
        if o.is_sweep_override():
            value = params[key]
            job.append(f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}")
        else:
            job.append(o.input_line)
    return job


def figure(summary: Any, dotted: str) -> float | None:
    """``summary[a][b]`` for ``"a.b"`` as a finite float, else None."""
    value = summary
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def job_dir(ret: Any) -> Path | None:
    """A launched job's directory (None if Hydra did not say)."""
    return None if ret.hydra_cfg is None else Path(ret.hydra_cfg.hydra.runtime.output_dir)


def job_summary(ret: Any) -> dict[str, Any] | None:
    """A launched job's ``summary.json`` (None unless its ``run.json`` says completed)."""
    path = job_dir(ret)
    if ret.status != JobStatus.COMPLETED or path is None:
        return None
    try:
        if json.loads((path / "run.json").read_text()).get("status") != "completed":
            return None
        return json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def study_record(study: Any, objective: str) -> dict[str, Any]:
    """``optuna.json``: every trial (params, value, state, job dir) and the best one."""
    from optuna.trial import TrialState

    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.params,
            "job_dir": t.user_attrs.get("job_dir"),
        }
        for t in study.trials
    ]
    complete = [t for t in trials if t["state"] == TrialState.COMPLETE.name]
    best = None if not complete else trials[study.best_trial.number]
    direction = study.direction.name.lower()
    return {"objective": objective, "direction": direction, "best": best, "trials": trials}


class OptunaSweeper(LaunchingSweeper):
    """Ask Optuna for trials, launch them as prereg jobs, tell it their figures."""

    def __init__(
        self,
        n_trials: int,
        n_jobs: int,
        seed: int,
        objective: str,
        direction: str,
        study_name: str,
    ) -> None:
        super().__init__()  # the values are checked by prereg's preflight (sweep.validate)
        self.n_trials, self.n_jobs, self.seed = n_trials, n_jobs, seed
        self.objective, self.direction, self.study_name = objective, direction, study_name

    def study(self) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(
            storage=f"sqlite:///{self.sweep_dir / STUDY_DB}",
            study_name=self.study_name,
            direction=self.direction,
            sampler=optuna.samplers.TPESampler(seed=self.seed),
            load_if_exists=True,
        )

    def sweep(self, arguments: list[str]) -> Any:
        from optuna.trial import TrialState

        overrides = self.prepare(arguments)
        space = distributions(overrides)
        study = self.study()
        done = [t for t in study.trials if t.state.is_finished()]
        for t in study.trials:  # asked by a process that was killed before telling
            if not t.state.is_finished():
                study.tell(t.number, state=TrialState.FAIL)
        log.info(
            "optuna: %d of %d trials done; objective %s (%s)",
            len(done), self.n_trials, self.objective, self.direction,
        )  # fmt: skip
        returns = []
        while (remaining := self.n_trials - len(done)) > 0:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, remaining))]
            jobs = [job_overrides(overrides, t.params) for t in trials]
            self.validate_batch_is_legal(jobs)
            batch = self.launcher.launch(jobs, initial_job_idx=len(study.trials) - len(jobs))
            for trial, ret in zip(trials, batch, strict=True):
                trial.set_user_attr("job_dir", str(job_dir(ret)))
                value = figure(job_summary(ret), self.objective)
                if value is None:
                    study.tell(trial, state=TrialState.FAIL)
                    log.warning("optuna: trial %d has no %s", trial.number, self.objective)
                else:
                    study.tell(trial, value)
            done += trials
            returns.append(batch)
        from prereg.core.atomic import atomic_write_json

        record = study_record(study, self.objective)
        atomic_write_json(self.sweep_dir / "optuna.json", record)
        if record["best"] is not None:
            best = record["best"]
            log.info(
                "optuna: best %s = %g at %s (%s); all trials in %s",
                self.objective, best["value"], best["params"], best["job_dir"],
                self.sweep_dir / "optuna.json",
            )  # fmt: skip
        return returns
