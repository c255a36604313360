"""Hydra callback that writes and prints the experiment's verdict at the end of a multirun."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from prereg.core.atomic import cannot_write
from prereg.core.experiments import experiment_or_none
from prereg.core.rundir import one_line
from prereg.sweep import outcome

log = logging.getLogger("prereg")


def write_manifest(config: DictConfig) -> Path:
    """``<sweep dir>/sweep.json``: every job's overrides, so a status view counts pending jobs.

    The jobs are the preflight's (:mod:`prereg.sweep.preflight`), planned once before Hydra
    started; a sweeper that picks its jobs as it runs has none up front (``"jobs": null``).
    """
    from prereg.core.atomic import atomic_write_json
    from prereg.core.registration import CONF_DIR
    from prereg.sweep import preflight

    sweep_dir = Path(config.hydra.sweep.dir)
    overrides = list(config.hydra.overrides.task)
    plan = preflight.current(overrides)
    if plan is None:  # Hydra was started some other way: plan the same command line now
        hydra_overrides = list(config.hydra.overrides.hydra)
        plan = preflight.plan(["-m", *hydra_overrides, *overrides], CONF_DIR)
    manifest = {
        "runner": str(config.get("runner", "")),
        "command_overrides": overrides,
        "sweeper": plan.sweeper,
        # each job's own overrides (Hydra's hydra.overrides.task: its directory name)
        "jobs": None
        if plan.jobs is None
        else [sorted(preflight.task_overrides(job)) for job in plan.jobs],
    }
    atomic_write_json(sweep_dir / "sweep.json", manifest)
    return sweep_dir / "sweep.json"


class VerdictCallback(Callback):
    """``on_multirun_end``: compute ``verdict.json``/``verdict.md`` from the run dirs and print it.

    It reads only the run directories, so it works the same after local, submitit and
    SLURM launches, and it never raises: a verdict that cannot be computed says why.  The
    one exception is a full or read-only disk, raised as
    :class:`~prereg.core.atomic.CannotWrite` so ``run.py`` ends with one line saying so.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            write_manifest(config)
        except Exception as exc:  # noqa: BLE001 - the manifest only feeds the status view
            _raise_if_unwritable(exc, config)
            log.warning("could not write sweep.json: %s", one_line(exc))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if config.hydra.launcher.get("wait", True) is False:
            return  # submitted, not run yet: the SLURM verdict job writes the verdict
        from prereg.reports.status import sweep_status

        before = sweep_status(sweep_dir)  # what the verdict sees at most: never a false 0
        self._verdict(config, sweep_dir)
        closing_check(sweep_dir, before)

    def _verdict(self, config: DictConfig, sweep_dir: Path) -> None:
        exp = experiment_or_none(str(config.get("runner", "")))
        writer = exp.verdict_writer() if exp is not None else None
        if writer is None:
            from prereg.reports.status import render_status, sweep_status

            print(render_status(sweep_status(sweep_dir)))
            return
        try:
            text = writer(sweep_dir)
        except Exception as exc:  # noqa: BLE001 - a verdict problem must not lose the runs
            _raise_if_unwritable(exc, config)
            log.error("verdict could not be computed for %s: %s", sweep_dir, one_line(exc))
            return
        from prereg.core.verdict_files import terminal_text

        print(terminal_text(text, sweep_dir))
        print(f"\nverdict written to {sweep_dir / 'verdict.md'} and verdict.json")


def warm_verdict(runner: str) -> None:
    """Import what the verdict of ``runner``'s study will need (its writer, the status view,
    matplotlib through the shared plotting module), so that a launcher with idle time (the pool
    once no job waits) takes these imports off the end of the sweep. Never raises."""
    import importlib

    try:
        exp = experiment_or_none(runner)
        if exp is not None and exp.verdict is not None:
            exp.verdict_writer()
            importlib.import_module("prereg.core.plotting")
        importlib.import_module("prereg.reports.status")
    except Exception as exc:  # noqa: BLE001 - the verdict itself will say what is wrong
        log.debug("verdict imports not warmed: %s", one_line(exc))


def closing_check(sweep_dir: Path, data: dict[str, Any] | None = None) -> int:
    """The sweep's last line, read from its run directories, and ``run.py``'s exit status:
    0 when every job completed (or was skipped), else 1 and the line names the others.
    Only the sweep's own jobs (those its ``sweep.json`` lists) count: another command's run in
    the same directory (the ladder's control) is not this command's outcome.

    ``data``: the sweep's status taken just before its verdict was written, so that a run
    another process finishes meanwhile never turns an incomplete verdict into exit status 0.
    """
    from prereg.reports.status import incomplete_line, own_jobs, sweep_status

    data = own_jobs(data if data is not None else sweep_status(sweep_dir))
    line = incomplete_line(data)
    status = 1 if line else 0
    outcome.set_exit_status(status)
    if line:
        print(f"error: {line}", file=sys.stderr, flush=True)
    else:
        print(f"all {data['total']} jobs completed (or were skipped)", flush=True)
    return status


def _raise_if_unwritable(exc: BaseException, config: DictConfig) -> None:
    """Re-raise a full or read-only disk as ``CannotWrite`` (it stops the sweep in run.py)."""
    unwritable = cannot_write(exc, config.hydra.sweep.dir)
    if unwritable is not None:
        raise unwritable from exc
