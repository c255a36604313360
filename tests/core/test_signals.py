"""Signals for a job's whole life (:func:`prereg.core.signals.interrupts_handed_on`).

A launcher's job process (a submitit task) runs under another program's handlers; prereg's
take every SIGTERM/SIGINT/SIGUSR2 first, wherever it lands, and hand it on once the run's
stop is recorded.  Real signals, sent to this process.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from prereg.core.rundir import RunDir, guarded_run
from prereg.core.signals import RunInterrupted, interrupts_handed_on


@pytest.fixture(autouse=True)
def off_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(key, raising=False)


def signalled_body(signum: int):
    def body() -> dict:
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("the signal did not stop the run")

    return body


def test_a_signal_after_the_stop_began_does_not_cut_its_record_short(tmp_path: Path) -> None:
    """SLURM sends SIGTERM right after a requeue, while the stopped run is being recorded: it is
    only noted, the record names the signal that stopped the run, and the handler the stop was
    handed on to ran once."""
    calls: list[int] = []

    def requeue_and_exit(signum: int, frame: Any) -> None:
        calls.append(signum)
        os.kill(os.getpid(), signal.SIGTERM)  # what SLURM does once the job is requeued
        sys.exit(-1)

    rd = RunDir(tmp_path / "run")
    with pytest.raises(SystemExit), interrupts_handed_on({signal.SIGUSR2: requeue_and_exit}) as h:
        guarded_run(rd, "exp9", "reg", "h", signalled_body(signal.SIGUSR2))
    assert calls == [signal.SIGUSR2] and h.later == [signal.SIGTERM]
    record = rd.read() or {}
    assert (record["status"], record["reason"]) == (
        "failed",
        "RunInterrupted: interrupted by signal SIGUSR2",
    )


def test_a_signal_outside_the_run_stops_the_job_and_is_handed_on_once(tmp_path: Path) -> None:
    """Before the run starts (no guarded body yet) the signal still stops the job as
    RunInterrupted, with the handler to hand it on to; handing on twice calls it once."""
    calls: list[int] = []
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RunInterrupted) as info:
        with interrupts_handed_on({signal.SIGTERM: lambda s, f: calls.append(s)}) as handler:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except RunInterrupted as exc:
                handler.stop(exc).hand_on()
                exc.hand_on()
                raise
    assert info.value.signum == signal.SIGTERM and info.value.handed_on
    assert calls == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is previous  # restored at the block's end
