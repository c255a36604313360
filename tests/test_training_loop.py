"""The shared chunk loop (prereg.training.loop) with a tiny numpy "study": no JAX compile.

The fake study's state is ``{"w": [2 floats], "step": int}``; one step logs the row
``(step, loss=sum(w), w0)`` of the state it starts from, then halves ``w`` and adds 1.  Faults
are injected by step: a NaN loss, a NaN in the state, a NaN per-row array, a Stop, a crash
after the rows are written (a kill before the checkpoint), or a real signal sent to this process
while a step runs (SIGTERM, SIGINT, SIGUSR2: the loop defers it to a checkpoint).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from prereg.core.signals import RunInterrupted, interrupts_as_exceptions
from prereg.training import checkpoints as ck
from prereg.training.loop import Chunk, ChunkedStudy, Stop, train_in_chunks
from prereg.training.nonfinite import NonFiniteError


class Crash(Exception):
    """Stands in for a kill."""


class FakeTB:
    """Records what the loop (and hooks) hand to TensorBoard."""

    def __init__(self) -> None:
        self.frames: list[tuple[list[int], list[str], str]] = []

    def log_frame(self, frame: pd.DataFrame, step_column: str, prefix: str = "metrics") -> None:
        self.frames.append((frame[step_column].tolist(), list(frame.columns), prefix))


class Fake(ChunkedStudy):
    index, columns, checked = "step", ["step", "loss", "w0"], ["loss"]

    def __init__(
        self, target: int = 10, chunk: int = 3, per_call: int | None = None, **faults: int
    ) -> None:
        self.chunk_size, self._target, self.faults = chunk, target, faults
        self.steps_per_call = per_call
        self.after: list[list[int]] = []
        self.chunk_calls = 0

    def start(self) -> dict[str, Any]:
        return {"w": np.zeros(2), "step": np.int64(0)}

    def restore(self, flat: dict[str, np.ndarray], meta: dict[str, Any]) -> dict[str, Any]:
        assert meta["step"] == int(flat["['step']"])
        return {"w": flat["['w']"], "step": flat["['step']"]}

    def position(self, state: dict[str, Any]) -> int:
        return int(state["step"])

    def target(self) -> int:
        return self._target

    def run_chunk(self, state: dict[str, Any], k: int) -> Chunk:
        self.chunk_calls += 1
        w, step, rows, extra = state["w"].copy(), int(state["step"]), [], []
        for _ in range(k):
            if step == self.faults.get("signal_at"):  # delivered now, handled between calls
                os.kill(os.getpid(), self.faults.get("signum", signal.SIGTERM))
            loss = np.nan if step == self.faults.get("nan_loss") else float(w.sum())
            rows.append({"step": step, "loss": loss, "w0": float(w[0])})
            extra.append(np.full(3, np.inf if step == self.faults.get("nan_extra") else 1.0))
            w, step = w / 2 + 1, step + 1
        if step == self.faults.get("nan_state"):  # only in the state the chunk ends with
            w[1] = np.nan
        return Chunk({"w": w, "step": np.int64(step)}, pd.DataFrame(rows), {"x": np.array(extra)})

    def check(self, chunk: Chunk) -> Stop | None:
        halt = self.faults.get("halt")
        if halt is not None and halt in set(chunk.rows["step"]):
            return Stop(halt, RuntimeError(f"halted at {halt}"))
        return None

    def after_chunk(self, state: dict[str, Any], rows: pd.DataFrame) -> None:
        self.after.append(rows["step"].tolist())
        if rows["step"].iloc[-1] == self.faults.get("crash_after"):
            raise Crash

    def meta(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"step": self.position(state), "note": "fake"}


def run(out: Path, study: Fake, tb: FakeTB | None = None) -> tuple[Any, pd.DataFrame]:
    return train_in_chunks(study, out, tb or FakeTB())


def ckpts(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir())


def test_a_run_writes_every_row_checkpoints_each_chunk_and_keeps_the_newest_two(
    tmp_path: Path,
) -> None:
    tb, study = FakeTB(), Fake(target=10, chunk=3)
    state, metrics = run(tmp_path, study, tb)
    assert int(state["step"]) == 10 and metrics["step"].tolist() == list(range(10))
    on_disk = pd.read_csv(tmp_path / "metrics.csv")
    assert list(on_disk.columns) == ["step", "loss", "w0"]
    pd.testing.assert_frame_equal(on_disk, metrics)
    assert study.after == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]  # the last chunk is cut short
    assert [f[0] for f in tb.frames] == study.after and {f[2] for f in tb.frames} == {"metrics"}
    assert ckpts(tmp_path) == ["step_00000009", "step_00000010"]
    flat, meta = ck.load_checkpoint(tmp_path / "checkpoints" / "step_00000010")
    assert meta == {"step": 10, "note": "fake", "chunk_origin": 0}
    assert np.array_equal(flat["['w']"], state["w"])
    # a finished run asked again trains nothing and returns the same rows
    again = Fake(target=10, chunk=3)
    _, same = run(tmp_path, again)
    assert again.chunk_calls == 0
    pd.testing.assert_frame_equal(same, metrics)


@pytest.mark.parametrize("crash_after", [2, 5, 9])
def test_a_killed_run_resumes_and_equals_an_uninterrupted_one(
    tmp_path: Path, crash_after: int, caplog: pytest.LogCaptureFixture
) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    ref_state, _ = run(whole, Fake())
    with pytest.raises(Crash):  # killed after the rows of a chunk are written, before its ckpt
        run(cut, Fake(crash_after=crash_after))
    written = pd.read_csv(cut / "metrics.csv")["step"].tolist()
    assert written == list(range(crash_after + 1))  # rows beyond the newest checkpoint
    with caplog.at_level(logging.INFO, logger="prereg.training"):
        state, _ = run(cut, Fake())
    newest = crash_after // 3 * 3  # the start of the chunk that crashed
    if newest > 0:
        assert f"from step_{newest:08d} (step {newest})" in caplog.text
    assert (cut / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()
    assert np.array_equal(state["w"], ref_state["w"])
    assert ckpts(cut) == ckpts(whole)


def test_a_damaged_newest_checkpoint_is_skipped(tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run(whole, Fake())
    with pytest.raises(Crash):
        run(cut, Fake(crash_after=8))  # checkpoints at 3 and 6 kept
    (cut / "checkpoints" / "step_00000006" / ck.STATE_FILE).write_bytes(b"garbage")
    study = Fake()
    run(cut, study)
    assert study.after[0] == [3, 4, 5]  # resumed from step 3
    assert (cut / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()


def test_resume_keeps_rows_through_the_checkpoint_when_the_first_row_is_index_1(
    tmp_path: Path,
) -> None:
    class AfterUpdate(Fake):  # PPO-like: the row of an update is logged after it
        first_index = 1

        def run_chunk(self, state: dict[str, Any], k: int) -> Chunk:
            chunk = super().run_chunk(state, k)
            chunk.rows["step"] += 1
            return chunk

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run(whole, AfterUpdate())
    with pytest.raises(Crash):
        run(cut, AfterUpdate(crash_after=6))  # rows 1..6 written, checkpoint at 3
    run(cut, AfterUpdate())
    assert pd.read_csv(cut / "metrics.csv")["step"].tolist() == list(range(1, 11))
    assert (cut / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()


@pytest.mark.parametrize(
    ("fault", "step", "quantity", "good"),
    [
        ({"nan_loss": 4}, 4, "loss", 3),
        ({"nan_extra": 7}, 7, "x", 6),  # a per-row array
        ({"nan_state": 6}, 6, "w", 3),  # the state chunk 3..5 ended with, at its position
        ({"nan_loss": 1}, 1, "loss", 0),  # before any checkpoint
    ],
)
def test_a_nonfinite_value_fails_the_run_at_its_step_keeping_the_last_good_checkpoint(
    tmp_path: Path, fault: dict[str, int], step: int, quantity: str, good: int
) -> None:
    tb, study = FakeTB(), Fake(**fault)
    with pytest.raises(NonFiniteError) as info:
        run(tmp_path, study, tb)
    kept = (
        f"last good checkpoint kept: checkpoints/step_{good:08d}" if good else "no checkpoint yet"
    )
    assert str(info.value) == f"non-finite value at step {step} in {quantity}; {kept}"
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics["step"].tolist() == list(range(step))
    assert np.isfinite(metrics.to_numpy()).all()
    assert tb.frames[-1][0] == list(range(good, step))  # the chunk's rows up to the bad step
    assert study.after == [list(range(s, s + 3)) for s in range(0, good, 3)]  # not after it
    names = ckpts(tmp_path) if (tmp_path / "checkpoints").exists() else []
    assert names == [f"step_{s:08d}" for s in range(3, good + 1, 3)][-2:]


def test_a_stop_keeps_rows_through_its_step_runs_after_chunk_and_writes_no_checkpoint(
    tmp_path: Path,
) -> None:
    study = Fake(halt=4)
    with pytest.raises(RuntimeError, match="halted at 4"):
        run(tmp_path, study)
    assert pd.read_csv(tmp_path / "metrics.csv")["step"].tolist() == list(range(5))
    assert study.after == [[0, 1, 2], [3, 4]]
    assert ckpts(tmp_path) == ["step_00000003"]


def run_signalled(out: Path, study: Fake) -> RunInterrupted:
    """``run`` under the run body's handlers (as ``guarded_run`` sets them); its interrupt."""
    with pytest.raises(RunInterrupted) as info, interrupts_as_exceptions():
        run(out, study)
    return info.value


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR2])
def test_a_signal_mid_chunk_checkpoints_the_update_it_landed_in_then_resumes_exactly(
    tmp_path: Path, signum: int
) -> None:
    """One step per call (PPO): the signal lands while step 4 runs (chunk 3..5); the run stops
    after that step with a checkpoint at 5, not at the previous periodic one (3)."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    ref_state, _ = run(whole, Fake(per_call=1))
    study = Fake(per_call=1, signal_at=4, signum=signum)
    assert run_signalled(cut, study).signum == signum
    assert ckpts(cut) == ["step_00000003", "step_00000005"]
    _, meta = ck.load_checkpoint(cut / "checkpoints" / "step_00000005")
    assert meta == {"step": 5, "note": "fake", "chunk_origin": 0}
    assert pd.read_csv(cut / "metrics.csv")["step"].tolist() == list(range(5))
    assert study.after == [[0, 1, 2]]  # not for the chunk cut short: its periodic work waits
    again = Fake(per_call=1)
    state, _ = run(cut, again)
    assert again.after[0] == [5]  # the rest of the interrupted chunk first, then 6..8, 9
    assert again.after[1:] == [[6, 7, 8], [9]]
    assert (cut / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()
    assert np.array_equal(state["w"], ref_state["w"]) and ckpts(cut) == ckpts(whole)


def test_a_signal_in_a_one_call_chunk_finishes_the_chunk_and_checkpoints_it(
    tmp_path: Path,
) -> None:
    """exp9's case: a chunk is one call; the signal stops the run at the chunk's end."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run(whole, Fake())
    study = Fake(signal_at=4)
    assert run_signalled(cut, study).signum == signal.SIGTERM
    assert ckpts(cut) == ["step_00000003", "step_00000006"]
    assert study.after == [[0, 1, 2], [3, 4, 5]]
    run(cut, Fake())
    assert (cut / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()


def test_checkpoint_every_thins_the_checkpoints_not_the_rows_and_a_kill_resumes_exactly(
    tmp_path: Path,
) -> None:
    """checkpoint_every=7, chunks of 3 to 20: checkpoints only at 9, 15 (a multiple of 7
    reached) and 20 (the target); every chunk's rows and after_chunk as before. A kill after
    the rows of 12..14 resumes from 9 (no checkpoint at 12) to the same metrics.csv; a
    signal still checkpoints where it stops the run."""

    def thinned(**faults: int) -> Fake:
        study = Fake(target=20, **faults)
        study.checkpoint_every = 7
        return study

    whole, killed, stopped = tmp_path / "whole", tmp_path / "killed", tmp_path / "stopped"
    saved: list[str] = []
    real_save = ck.save_checkpoint

    def spy(path: Path, *args: Any, **kwargs: Any) -> Path:
        saved.append(Path(path).name)
        return real_save(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ck, "save_checkpoint", spy)
        study = thinned()
        run(whole, study)
    assert saved == ["step_00000009", "step_00000015", "step_00000020"]
    assert study.after == [[s, s + 1, s + 2] for s in range(0, 18, 3)] + [[18, 19]]
    assert pd.read_csv(whole / "metrics.csv")["step"].tolist() == list(range(20))
    with pytest.raises(Crash):
        run(killed, thinned(crash_after=14))
    assert ckpts(killed) == ["step_00000009"]  # not 12: the rows of 9..14 are computed again
    run(killed, thinned())
    assert (killed / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()
    assert ckpts(killed) == ckpts(whole) == ["step_00000015", "step_00000020"]
    signalled = thinned(signal_at=4)
    signalled.steps_per_call = 1
    run_signalled(stopped, signalled)
    assert ckpts(stopped) == ["step_00000005"]


def test_a_signal_pending_when_the_run_fails_stops_it_as_interrupted(tmp_path: Path) -> None:
    """A signal in the chunk that turns non-finite: the user's stop wins (no checkpoint)."""
    info = run_signalled(tmp_path, Fake(per_call=1, signal_at=4, nan_loss=4))
    assert isinstance(info.__context__, NonFiniteError)
    assert ckpts(tmp_path) == ["step_00000003"]


def test_metrics_text_equals_the_csv_of_all_rows_at_every_chunk() -> None:
    """metrics.csv is rewritten whole after each chunk from rows formatted once; its text is
    always that of every row so far, concatenated, also when a chunk changes a column's type
    (ints, then floats or NaN: pandas turns the column into floats) or has no rows."""
    from prereg.core.atomic import csv_text
    from prereg.training.loop import MetricsText

    rng = np.random.default_rng(7)
    cols = ["step", "loss", "count", "label"]

    def chunk(start: int, n: int, count: Any) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "step": np.arange(start, start + n),
                "loss": rng.standard_normal(n) * 10.0 ** rng.integers(-20, 20, n),
                "count": count if np.ndim(count) else np.full(n, count),
                "label": [f"r{i}" for i in range(start, start + n)],
            }
        )

    frames: list[pd.DataFrame] = []
    text = MetricsText(cols)
    plan = [(0, 5, 3), (5, 4, 4), (9, 0, 1), (9, 3, np.array([1.5, np.nan, 2.0])), (12, 6, 7)]
    for start, n, count in plan:
        frames.append(chunk(start, n, count))
        expected = csv_text(pd.concat(frames, ignore_index=True)[cols])
        assert text.add(frames) == expected
    assert ",1.5,r9\n" in expected and ",,r10\n" in expected  # floats, and the NaN row
