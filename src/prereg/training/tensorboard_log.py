"""``logger=tensorboard``: stream a run's per-step figures to TensorBoard event files.

The runners hand over the rows they have just written to ``metrics.csv`` (and exp9's
diagnostics, PPO's periodic evals); this module writes them to ``<run_dir>/tensorboard/`` as
scalars tagged ``<prefix>/<column>`` at the row's step, and flushes after each call so
``tensorboard --logdir outputs/`` shows a run live.  ``logger=none`` (the default) writes
nothing.  Logging never changes a result, so it is not part of a run's directory name or its
registration hash.  :func:`for_run` picks a run's logger (this one, ``logger=wandb``'s
:class:`~prereg.training.wandb_log.WandbLog` or none; see :mod:`prereg.training.loggers`); it
lives here because the runners call it by this name.

Resume: the writer opens lazily at the first row this process logs and uses that row's step
as ``purge_step``.  A resumed run starts right after its checkpoint, so every point a killed
earlier process logged from that step on is dropped by TensorBoard (the Python reader purges
at the ``SessionLog.START`` written with the purge step; the fast data server drops the points
of a time series whose step goes back), and each step is shown once, with its final value.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from prereg.training.loggers import RunLogger, numeric_columns, scalars

SUBDIR = "tensorboard"  # event files go to <run_dir>/tensorboard/
FLUSH_SECS = 1  # tensorboardX's writer thread writes what is still queued within this


class TensorBoardLog(RunLogger):
    """Scalars of one run directory's rows; every method is a no-op when not ``enabled``.

    Use as a context manager (or call :meth:`close`) so the event file is closed at the end
    of a run and when it fails.
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True) -> None:
        self.logdir = Path(run_dir) / SUBDIR
        self.enabled = enabled
        self._writer: Any = None

    def _file_writer(self, first_step: int) -> Any:
        if self._writer is None:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(
                str(self.logdir),
                purge_step=first_step,
                flush_secs=FLUSH_SECS,
                max_queue=1000,
                # names sort in start order even within one second (the reader's file order),
                # and a resumed run never reuses (and truncates) an earlier file
                filename_suffix=f".{time.time_ns()}",
            )
        return self._writer.file_writer

    def log_values(self, values: Mapping[str, Any], step: int, prefix: str) -> None:
        """Log the numeric entries of ``values`` at ``step`` as ``<prefix>/<key>``, then flush."""
        if not self.enabled:
            return
        numbers = scalars(values)
        if numbers:
            self._write_rows([int(step)], {k: [v] for k, v in numbers.items()}, prefix)
            self.flush()

    def log_frame(self, frame: pd.DataFrame, step_column: str, prefix: str = "metrics") -> None:
        """Log every numeric column of every row at the row's ``step_column``, then flush."""
        columns = numeric_columns(frame, step_column)
        if not self.enabled or not columns:
            return
        steps = frame[step_column].astype(int).tolist()
        self._write_rows(steps, {c: frame[c].to_numpy(dtype=float) for c in columns}, prefix)
        self.flush()

    def _write_rows(self, steps: list[int], columns: Mapping[str, Any], prefix: str) -> None:
        """One event per step holding all of its scalars (far cheaper than one per value)."""
        from tensorboardX.proto.summary_pb2 import Summary

        writer = self._file_writer(min(steps))
        for i, step in enumerate(steps):
            values = [
                Summary.Value(tag=f"{prefix}/{name}", simple_value=float(col[i]))
                for name, col in columns.items()
            ]
            writer.add_summary(Summary(value=values), step)

    def flush(self) -> None:
        """Write the event file's buffer to disk (the writer thread follows within a second)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self, failed: bool = False) -> None:
        """Write everything still queued and close the event file (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def for_run(cfg: DictConfig, run_dir: str | Path) -> RunLogger:
    """The run's logger as ``cfg.logger.name`` selects it (``none``: one that logs nothing)."""
    name = str(OmegaConf.select(cfg, "logger.name", default="none"))
    if name == "wandb":
        from prereg.training.wandb_log import WandbLog

        return WandbLog.for_run(cfg, run_dir)
    return TensorBoardLog(run_dir, enabled=name == "tensorboard")
