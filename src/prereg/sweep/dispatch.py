"""Dispatch a composed config to its experiment's runner (called by ``run.py``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from prereg.core.atomic import cannot_write
from prereg.core.errors import ConfigError
from prereg.core.experiments import get_experiment
from prereg.core.exploration import label as exploratory_label
from prereg.core.lease import RunHeldElsewhere, lease
from prereg.core.rundir import RunDir, RunHalted, RunSkipped, one_line
from prereg.sweep import outcome
from prereg.sweep.outcome import FAIL_FAST_ENV, WAIT_ENV
from prereg.sweep.validate import validate

log = logging.getLogger("prereg")

# config groups that change no result: a run may be resumed under another choice of them
NON_RESULT_GROUPS = ("logger",)


def resolve_runner(name: str):
    """The study's run function, imported now (``run.py`` starts fast; exp9 never imports PPO)."""
    return get_experiment(name, "runner").runner()


def run_task(cfg: DictConfig) -> dict[str, Any]:
    """Run one job; bad input found inside a job still ends as one line (exit status 2)."""
    try:
        return _run_task(cfg)
    except ConfigError as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("job refused: %s", exc)
            return {"status": "refused", "reason": str(exc)}
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _run_task(cfg: DictConfig) -> dict[str, Any]:
    """Run one Hydra job: validate, run, and in a multirun keep going after a failure.

    A failed job has already written ``run.json`` (failed + reason); in a multirun the
    error is logged and the sweep goes on so the verdict still sees every other job.  A
    single run prints one ``error:`` line and exits with status 1; otherwise it ends by
    printing its closing line (:func:`closing_line`) on stdout.
    """
    validate(cfg)
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    logging.getLogger("jax").setLevel(logging.WARNING)
    choices = {
        k: v for k, v in hc.runtime.choices.items() if v is not None and not k.startswith("hydra")
    }
    if multirun and outcome.flag_set(FAIL_FAST_ENV) and (first := outcome.first_failure()):
        log.warning("job %s: not run (--fail-fast: job %s did not complete)", run_dir, first)
        return {"status": "not run", "reason": f"--fail-fast: job {first} did not complete"}
    try:
        with lease(run_dir, wait=outcome.flag_set(WAIT_ENV)):
            return _run_owned(cfg, run_dir, multirun, choices, list(hc.overrides.task))
    except RunHeldElsewhere as exc:
        if multirun:  # the sweep goes on; its closing line and verdict list the run
            log.warning(
                "job %s: running elsewhere (%s); not run here", run_dir, exc.owner.describe()
            )
            return {"status": "running elsewhere", "reason": str(exc)}
        print(f"error: {exc}; not started (--wait waits for it)", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:  # a full or read-only disk stops the sweep with one line
        unwritable = cannot_write(exc, run_dir)
        if unwritable is None:
            raise
        raise unwritable from exc


def _run_owned(
    cfg: DictConfig, run_dir: Path, multirun: bool, choices: dict[str, Any], overrides: list[str]
) -> dict[str, Any]:
    """The job, once this process owns ``run_dir`` (see :func:`_run_task`)."""
    _claim_run_dir(run_dir, choices, overrides)
    try:
        summary = resolve_runner(cfg.runner)(cfg, run_dir)
    except (RunHalted, RunSkipped) as exc:
        status = "halted" if isinstance(exc, RunHalted) else "skipped"
        if status == "halted":
            outcome.note_failure(run_dir.name)
        if multirun:
            log.warning("%s: %s", run_dir.name, one_line(exc))
        else:
            print(f"run {run_dir}: {status} — {one_line(exc)}", flush=True)
            if status == "halted":  # a run that did not complete never exits 0
                raise SystemExit(1) from None
        return {"status": status, "reason": str(exc)}
    except Exception as exc:
        if not multirun:  # one line, not Hydra's traceback (that is in logs/error.txt)
            print(
                f"error: run failed: {one_line(exc)} (run.json: failed; traceback in "
                f"{run_dir / 'logs' / 'error.txt'})",
                file=sys.stderr,
            )
            raise SystemExit(1) from None
        outcome.note_failure(run_dir.name)
        log.error("job %s failed: %s (see its run.json and logs/error.txt)", run_dir, one_line(exc))
        return {"status": "failed", "reason": one_line(exc)}
    if not multirun:
        print(closing_line(cfg.runner, run_dir, summary), flush=True)
    return summary


def closing_line(experiment: str, run_dir: Path, summary: Any) -> str:
    """``run <dir>: <status> — <headline>``: where a single run is, and how it scored.

    The status is ``run.json``'s; the headline is the study's :attr:`Experiment.headline` of
    the run's summary (none, or one that cannot read this summary: directory and status only).
    """
    status = (RunDir(run_dir).read() or {}).get("status") or "completed"
    line = f"run {run_dir}: {status}"
    make = get_experiment(experiment, "runner").headline_function()
    if make is None or not isinstance(summary, dict):
        return line
    try:
        headline = make(summary)
    except Exception as exc:  # noqa: BLE001 - a closing line never fails a finished run
        log.debug("no headline for %s: %s", run_dir, one_line(exc))
        return line
    return f"{line} — {headline}" if headline else line


def _claim_run_dir(run_dir: Path, choices: dict[str, Any], overrides: list[str]) -> None:
    """Record this job in ``run_dir/run.json``; refuse a directory holding another job."""
    rd = RunDir(run_dir)
    previous = ((rd.read() or {}).get("job") or {}).get("choices") or {}
    previous = {k: v for k, v in previous.items() if v is not None}
    differ = sorted(
        k
        for k in (set(previous) | set(choices)) - set(NON_RESULT_GROUPS)
        if previous.get(k) != choices.get(k)
    )
    if previous and differ:
        raise ConfigError(
            "hydra.run.dir",
            f"{run_dir} holds another job ({', '.join(f'{k}={previous.get(k)}' for k in differ)});"
            " choose a new output directory",
        )
    sweeper = HydraConfig.get().runtime.choices.get("hydra/sweeper")  # optuna: exploratory
    rd.update(job={"choices": choices, "overrides": overrides}, **exploratory_label(sweeper))
