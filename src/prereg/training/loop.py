"""The chunked training loop every study's runner shares.

A study subclasses :class:`ChunkedStudy` with its maths (``start``/``restore`` a state,
``run_chunk``, the checkpoint ``meta``) and its own figures (``check`` and ``after_chunk``
hooks); :func:`train_in_chunks` does the rest.  It guarantees:

* **Resume.** A run restarts from the newest checkpoint of ``<run_dir>/checkpoints`` that
  verifies (:func:`prereg.training.checkpoints.latest_valid`; a damaged newer one is skipped),
  keeping the rows of ``metrics.csv`` up to that checkpoint; without one, from ``start()``.
  Chunks are cut the same way whether or not a run was interrupted, so a killed run that
  resumes ends with the same state and the same ``metrics.csv`` as an uninterrupted one.
* **metrics.csv** (columns ``study.columns``) is rewritten atomically after every chunk and
  holds every row logged so far; the same rows go to TensorBoard (prefix ``metrics``).
* **Non-finite values.** After each chunk the ``checked`` columns, the chunk's per-row arrays
  and the state's ``trees`` are checked; at the first NaN/inf the rows before it are written
  and the run fails with :class:`~prereg.training.nonfinite.NonFiniteError` naming the step
  (or update) and the quantity; no checkpoint is written, so the newest one is the last good
  state.
* **Stops.** ``check`` may end the run (exp9's HALT): the rows through ``Stop.last`` are
  written, ``after_chunk`` runs, then ``Stop.error`` is raised, again without a checkpoint.
* **Checkpoints.** Otherwise ``after_chunk`` runs and a periodic checkpoint
  ``checkpoints/step_<position>`` (with ``meta(state)``) is written; all but the newest two
  are pruned. With ``checkpoint_every`` = N (PPO's ``ppo.checkpoint_every``) only at the
  chunk ends where the position reaches a multiple of N, at the target and on a signal; the
  chunks, and so the results, stay the same, and a kill resumes from the newest checkpoint
  (its later ``metrics.csv`` rows are computed again, to the same bits).
* **Signals.** SIGTERM, SIGINT and SIGUSR2 are deferred while training
  (:func:`prereg.core.signals.deferred_interrupts`): a chunk runs as ``run_chunk`` calls of at
  most ``steps_per_call`` steps (PPO: 1 update; exp9: the whole chunk), and a signal ends the
  chunk after the call it landed in.  That partial chunk is kept like a whole one (rows,
  checkpoint at its position) but without ``after_chunk``, whose periodic work (PPO's eval)
  so happens at the same positions whether or not a run was interrupted; then
  :class:`~prereg.core.signals.RunInterrupted` is raised.  Chunks end at the positions an
  uninterrupted run's do (``origin + i * chunk_size``, the origin kept in each checkpoint's
  meta as ``chunk_origin``), so a run resumed from a partial chunk finishes that chunk first.

Order within a chunk: ``run_chunk`` call(s) -> non-finite check -> ``check`` -> metrics.csv +
TensorBoard rows -> ``after_chunk`` (whole chunks) -> checkpoint -> prune -> a pending signal.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prereg.core.atomic import atomic_write_text, csv_text
from prereg.core.signals import Deferred, deferred_interrupts
from prereg.training import checkpoints as ck
from prereg.training.nonfinite import first_nonfinite, nonfinite_error, nonfinite_leaf
from prereg.training.tensorboard_log import TensorBoardLog

log = logging.getLogger("prereg.training")


@dataclass
class Chunk:
    """What one ``run_chunk`` call produced."""

    state: Any  #: the state after the chunk
    rows: pd.DataFrame  #: the chunk's metrics rows (at least ``study.columns``)
    #: per-row arrays that are not columns (first axis aligned with ``rows``), checked for
    #: NaN/inf after the ``checked`` columns and handed to ``check`` (exp9's theta)
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Stop:
    """A study's own check ended the run: keep rows through ``last``, then raise ``error``."""

    last: int
    error: BaseException


class ChunkedStudy(abc.ABC):
    """What a study plugs into :func:`train_in_chunks`: its maths, its figures, its hooks."""

    index: str  #: metrics.csv's index column: "step" (exp9) or "update" (PPO)
    columns: Sequence[str]  #: metrics.csv's columns, in order
    checked: Sequence[str]  #: the columns checked for NaN/inf, in order
    chunk_size: int  #: steps (updates) per chunk: metrics.csv, ``after_chunk``, checkpoint
    #: the most steps one ``run_chunk`` call takes (None: the whole chunk); a signal stops the
    #: run (with a checkpoint) after the call it lands in, so PPO runs one update per call
    steps_per_call: int | None = None
    #: the index of the first row after a checkpoint at position p is p + first_index
    #: (exp9 logs step 0 at the initial theta: 0; PPO logs update 1 after one update: 1)
    first_index: int = 0
    #: None: a periodic checkpoint after every chunk; N: only where the position reaches a
    #: multiple of N (and at the target, and on a signal)
    checkpoint_every: int | None = None
    log: logging.Logger = log  #: where "resuming ..." is logged

    @abc.abstractmethod
    def start(self) -> Any:
        """A fresh state (no checkpoint to resume from)."""

    @abc.abstractmethod
    def restore(self, flat: dict[str, np.ndarray], meta: dict[str, Any]) -> Any:
        """The state of a checkpoint (``flat`` arrays and its ``meta``)."""

    @abc.abstractmethod
    def position(self, state: Any) -> int:
        """Steps (updates) done in ``state``."""

    @abc.abstractmethod
    def target(self) -> int:
        """The position to train to (asked once, after ``start``/``restore``)."""

    @abc.abstractmethod
    def run_chunk(self, state: Any, k: int) -> Chunk:
        """Advance ``state`` by ``k`` steps (updates)."""

    @abc.abstractmethod
    def meta(self, state: Any) -> dict[str, Any]:
        """The periodic checkpoint's JSON-able meta."""

    def trees(self, state: Any) -> Mapping[str, Any]:
        """``{prefix: pytree}`` checked for NaN/inf after a chunk, named ``<prefix><path>``."""
        return {"": state}

    def check(self, chunk: Chunk) -> Stop | None:
        """The study's own checks of a finite chunk, before its rows are written."""
        return None

    def after_chunk(self, state: Any, rows: pd.DataFrame) -> None:
        """After the chunk's (kept) ``rows`` are written; before its checkpoint."""
        return None


def train_in_chunks(
    study: ChunkedStudy, run_dir: Path, tb: TensorBoardLog
) -> tuple[Any, pd.DataFrame]:
    """Resume or start, then train to ``study.target()``; (final state, all metrics rows).

    See the module docstring for what it guarantees.
    """
    run_dir = Path(run_dir)
    ckpt_dir, metrics_path = run_dir / "checkpoints", run_dir / "metrics.csv"
    index = study.index
    frames: list[pd.DataFrame] = []
    resumed = ck.latest_valid(ckpt_dir)
    if resumed is not None:
        flat, meta, path = resumed
        state = study.restore(flat, meta)
        done = study.position(state)
        origin = int(meta.get(ORIGIN_KEY, done))  # checkpoints without it: at a chunk's end
        if metrics_path.exists():
            old = pd.read_csv(metrics_path)
            frames = [old[old[index] < done + study.first_index]]
        study.log.info("resuming %s from %s (%s %d)", run_dir, path.name, index, done)
    else:
        state = study.start()
        origin = study.position(state)

    csv = MetricsText(list(study.columns))

    def write(rows: pd.DataFrame) -> None:
        frames.append(rows)
        atomic_write_text(metrics_path, csv.add(frames))
        tb.log_frame(rows[list(study.columns)], index)  # logger=tensorboard: this chunk's rows

    target = study.target()
    with deferred_interrupts() as signalled:
        while (position := study.position(state)) < target:
            end = min(chunk_end(position, origin, study.chunk_size), target)
            chunk = _run_to(study, state, end, signalled)
            state, rows = chunk.state, chunk.rows
            bad = _first_nonfinite(study, chunk)
            if bad is not None:  # fail at that step; the newest checkpoint is the last good one
                write(rows[rows[index] < bad[0]])
                raise nonfinite_error(bad[0], bad[1], ckpt_dir)
            stop = study.check(chunk)
            write(rows if stop is None else rows[rows[index] <= stop.last])
            if study.position(state) == end:  # a whole chunk (not one cut short by a signal)
                study.after_chunk(state, frames[-1])
            if stop is not None:
                raise stop.error
            reached = study.position(state)
            if _checkpoint_due(study.checkpoint_every, position, reached, target, signalled):
                meta = {**study.meta(state), ORIGIN_KEY: origin}
                ck.save_checkpoint(ckpt_dir / ck.periodic_name(reached), state, meta)
                ck.prune_periodic(ckpt_dir)
            signalled.raise_pending()  # SIGTERM & co. during the chunk: stop here, checkpointed
    return state, pd.concat(frames, ignore_index=True)


class MetricsText:
    """``metrics.csv``'s text, each row formatted once.

    The file is rewritten whole (atomically) after every chunk, so a reader never sees half a
    file; formatting every row again each time cost more than the writes (exp9: 5,000 rows
    formatted per 2,000-step run). The text equals the CSV of all the frames concatenated: a
    chunk whose column types differ from the rows before it (pandas would change a column's
    type when concatenating) has all the rows formatted again."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.text = ""
        self.dtypes: pd.Series | None = None

    def add(self, frames: list[pd.DataFrame]) -> str:
        """The CSV text of ``frames`` (all rows so far), ``frames[:-1]`` being what it had."""
        new = frames[-1][self.columns]
        if self.dtypes is not None and new.dtypes.equals(self.dtypes):
            self.text += csv_text(new, header=False)
        else:
            whole = pd.concat(frames, ignore_index=True)[self.columns]
            self.text, self.dtypes = csv_text(whole), whole.dtypes
        return self.text


ORIGIN_KEY = "chunk_origin"  #: checkpoint meta: the position chunks are counted from


def chunk_end(position: int, origin: int, size: int) -> int:
    """Where the chunk holding ``position`` ends: the next ``origin + i * size`` after it."""
    return origin + ((position - origin) // size + 1) * size


def _checkpoint_due(
    every: int | None, before: int, reached: int, target: int, signalled: Deferred
) -> bool:
    """Whether the chunk from ``before`` to ``reached`` ends with a periodic checkpoint."""
    if every is None or reached >= target or signalled.signum is not None:
        return True
    return reached // every > before // every


def _run_to(study: ChunkedStudy, state: Any, end: int, signalled: Deferred) -> Chunk:
    """``run_chunk`` calls of at most ``steps_per_call`` steps up to ``end``, or up to the
    first call a signal landed in; one :class:`Chunk` of them all."""
    per_call = study.steps_per_call or study.chunk_size
    parts: list[Chunk] = []
    while (position := study.position(state)) < end and not (
        parts and signalled.signum is not None
    ):
        parts.append(study.run_chunk(state, min(per_call, end - position)))
        state = parts[-1].state
    if len(parts) == 1:
        return parts[0]
    return Chunk(
        state,
        pd.concat([p.rows for p in parts], ignore_index=True),
        {k: np.concatenate([p.arrays[k] for p in parts]) for k in parts[0].arrays},
    )


def _first_nonfinite(study: ChunkedStudy, chunk: Chunk) -> tuple[int, str] | None:
    """(index, quantity) of the first NaN/inf in the chunk's rows, else in the state it ended
    with (checked once per chunk, at its position)."""
    rows = chunk.rows
    quantities = {**{c: rows[c] for c in study.checked}, **chunk.arrays}
    bad = first_nonfinite(rows[study.index].to_numpy(), quantities)
    if bad is None:
        for prefix, tree in study.trees(chunk.state).items():
            if (leaf := nonfinite_leaf(tree, prefix)) is not None:
                return study.position(chunk.state), leaf
    return bad
