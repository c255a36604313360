"""``logger=wandb``: stream a run's per-step figures to Weights & Biases.

The same numbers as ``logger=tensorboard`` (every ``metrics.csv`` column per step, exp9's
diagnostics, PPO's periodic evals), keyed ``<prefix>/<column>``, each row with its ``step``
(exp9: ``step``, PPO: ``update``; TensorBoard's step) as the x-axis of its charts
(``define_metric(..., step_metric="step")``), so rows may come in any order: a chunk's
diagnostics after its metrics rows, a resumed run's steps again.  The W&B run:

- ``id``: derived from the job directory (:func:`run_id`), with ``resume="allow"``: a resumed
  or requeued job continues the same W&B run;
- ``group``: the sweep directory (a multirun), ``job_type``: the arm or candidate (else the
  study), ``name``: the job directory's name;
- ``config``: the composed config plus ``registration_hash`` (from ``run.json``).

Files go to ``<run_dir>/wandb/``.  W&B's own settings come from its environment variables:
``WANDB_MODE=offline`` needs no account (``wandb sync <run_dir>/wandb/offline-run-*`` uploads
later), ``WANDB_PROJECT`` (default ``prereg``), ``WANDB_ENTITY``.  Each row is sent as it is
logged, so a kill loses none that the run dir keeps.  The steps a killed process logged after
its last checkpoint are logged again by the resumed one (W&B shows both points; a resume
recomputes the same values, only ``sps`` differs), unlike TensorBoard's purge.  An offline
resume writes a second ``offline-run-*`` folder under the same id; ``wandb sync`` merges them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from prereg.training.loggers import RunLogger, numeric_columns, scalars

SUBDIR = "wandb"  # wandb.init(dir=<run_dir>) writes <run_dir>/wandb/
DEFAULT_PROJECT = "prereg"


def run_id(run_dir: str | Path) -> str:
    """The W&B run id of a job directory: stable across restarts of that directory."""
    return hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def init_kwargs(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """``wandb.init``'s arguments for this run (see the module doc)."""
    import os

    run_dir = Path(run_dir)
    record = _read_json(run_dir / "run.json")
    config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False, enum_to_str=True)
    assert isinstance(config, dict)
    config["registration_hash"] = record.get("registration_hash")
    job_type = (
        OmegaConf.select(cfg, "arm.name")
        or OmegaConf.select(cfg, "candidate.name")
        or OmegaConf.select(cfg, "runner")
    )
    return {
        "project": os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
        "dir": str(run_dir),
        "id": run_id(run_dir),
        "resume": "allow",
        "name": run_dir.name,
        "group": _sweep_group(),
        "job_type": None if job_type is None else str(job_type),
        "config": config,
    }


def _sweep_group() -> str | None:
    """The sweep directory of a multirun job (None for a single run), at most 128 characters."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):  # not inside a Hydra job
        return None
    if hc.mode != RunMode.MULTIRUN:
        return None
    return str(hc.sweep.dir)[-128:]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


STEP = "step"  # the x-axis key of every chart


class WandbLog(RunLogger):
    """One run directory's figures as one W&B run, opened at the first row logged."""

    enabled = True

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self._run: Any = None
        self._prefixes: set[str] = set()

    @classmethod
    def for_run(cls, cfg: DictConfig, run_dir: str | Path) -> WandbLog:
        return cls(init_kwargs(cfg, run_dir))

    def _open(self, prefix: str) -> Any:
        if self._run is None:
            import wandb

            settings = wandb.Settings(
                console="off", silent=True, x_disable_stats=True, save_code=False
            )
            self._run = wandb.init(**self.kwargs, settings=settings)
            self._run.define_metric(STEP)
        if prefix not in self._prefixes:
            self._run.define_metric(f"{prefix}/*", step_metric=STEP)
            self._prefixes.add(prefix)
        return self._run

    def log_values(self, values: Mapping[str, Any], step: int, prefix: str) -> None:
        """Log the numeric entries of ``values`` at ``step`` as ``<prefix>/<key>``."""
        numbers = scalars(values)
        if numbers:
            row = {f"{prefix}/{k}": v for k, v in numbers.items()}
            self._open(prefix).log({**row, STEP: int(step)})

    def log_frame(self, frame: pd.DataFrame, step_column: str, prefix: str = "metrics") -> None:
        """Log every numeric column of every row at the row's ``step_column``."""
        columns = numeric_columns(frame, step_column)
        if not columns:
            return
        run = self._open(prefix)
        steps = frame[step_column].astype(int).tolist()
        for step, row in zip(steps, frame[columns].to_numpy(dtype=float), strict=True):
            run.log(
                {
                    **{f"{prefix}/{c}": float(v) for c, v in zip(columns, row, strict=True)},
                    STEP: step,
                }
            )

    def close(self, failed: bool = False) -> None:
        """Finish the W&B run (exit code 1 when the run failed); idempotent."""
        if self._run is not None:
            self._run.finish(exit_code=1 if failed else 0)
            self._run = None
