"""Nothing lost on preemption, and no start-up gap (issue 14, parts 3 and 4).

- A PPO run signalled in the middle of a chunk finishes the update it is in, checkpoints it
  (not only the previous periodic checkpoint), exits as for any signal, and resumes to exactly
  an uninterrupted run.
- A run SLURM requeues (``scontrol requeue``, preemption, submitit's SIGUSR2) is ``requeued``
  in ``run.json``, not ``failed``; submitit's own SIGUSR2 handler still runs (its requeue).
- The kill loop: SIGTERM, SIGINT and SIGUSR2 at random moments of the first 1.5 s of
  ``run.py`` always give one line and status 128 + signal, once ``run.py``'s first lines ran.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, run_cli

from prereg.core.rundir import RunDir, guarded_run
from prereg.core.signals import RunInterrupted, interrupts_as_exceptions
from prereg.training.checkpoints import load_checkpoint

# 40 updates of ~20-50 ms in chunks of 20: the signal lands inside the second chunk
PPO = [
    "experiment=ppo", "tier=small", "ppo.num_envs=16", "ppo.num_steps=32",
    "ppo.num_minibatches=4", "ppo.update_epochs=8", "ppo.chunk_updates=20",
    "ppo.eval_every=40", "ppo.eval_seeds=4", "eval.n_seeds=4", "ppo.updates=40",
]  # fmt: skip
TINY = ["arm=primary", "cell=n4m2", "registration.step_cap=30"]
STEP_DIR = re.compile(r"^step_(\d+)$")


def interrupted_line(sig: signal.Signals) -> str:
    return f"error: interrupted by signal {sig.name}; run the same command again to resume"


def periodic(run_dir: Path) -> list[int]:
    d = run_dir / "checkpoints"
    names = (m.group(1) for p in d.iterdir() if (m := STEP_DIR.match(p.name))) if d.is_dir() else ()
    return sorted(int(n) for n in names)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------ part 3: mid-chunk
@pytest.mark.slow
def test_a_ppo_run_signalled_mid_chunk_checkpoints_that_update_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    ref, victim = tmp_path / "reference", tmp_path / "victim"
    done = run_cli(*PPO, f"hydra.run.dir={ref}", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    err = tmp_path / "victim.err"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "run.py"), *PPO, f"hydra.run.dir={victim}"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        )
        deadline = time.monotonic() + 300
        while 20 not in periodic(victim) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # the first chunk (compile, updates 1-20) is checkpointed
        time.sleep(0.1)  # a few updates into the second chunk
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=300)
    record = read_json(victim / "run.json") or {}
    steps = periodic(victim)
    print(f"\nSIGTERM 0.1 s after step_20: exit {rc}, checkpoints {steps}, {record.get('status')}")
    assert rc == 128 + signal.SIGTERM, err.read_text()[-3000:]
    assert [ln for ln in err.read_text().splitlines() if ln.strip()] == [
        interrupted_line(signal.SIGTERM)
    ]
    assert record["status"] == "failed"
    assert record["reason"] == "RunInterrupted: interrupted by signal SIGTERM"
    interrupted = steps[-1]
    assert 20 < interrupted < 40, steps  # the interrupted update, not the periodic 20 (or 40)
    _, meta = load_checkpoint(victim / "checkpoints" / f"step_{interrupted:08d}")
    assert meta["update"] == interrupted and meta["chunk_origin"] == 0
    rows = pd.read_csv(victim / "metrics.csv")
    assert rows["update"].tolist() == list(range(1, interrupted + 1))

    again = run_cli(*PPO, f"hydra.run.dir={victim}", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"(update {interrupted})" in again.stdout + again.stderr
    ours = pd.read_csv(victim / "metrics.csv").drop(columns="sps")
    theirs = pd.read_csv(ref / "metrics.csv").drop(columns="sps")
    pd.testing.assert_frame_equal(theirs, ours, check_exact=True)
    for name in ("final", "best"):
        fa, _ = load_checkpoint(victim / "checkpoints" / name)
        fb, _ = load_checkpoint(ref / "checkpoints" / name)
        assert fa.keys() == fb.keys()
        for key in fa:
            np.testing.assert_array_equal(fa[key], fb[key], err_msg=f"{name}: {key}")
    mine, reference = (read_json(d / "summary.json") for d in (victim, ref))
    for summary in (mine, reference):
        summary.pop("mean_sps")
    assert json.dumps(mine, sort_keys=True).replace(str(victim), "<run>") == json.dumps(
        reference, sort_keys=True
    ).replace(str(ref), "<run>")


# ------------------------------------------------------------------ part 3: requeued
@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SLURM job 77 (array 76_3) whose ``scontrol show job`` prints ``restarts.txt``'s count:
    SLURM counts a requeue there while the process still runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    count = tmp_path / "restarts.txt"
    count.write_text("0")
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "JobId=$4 JobState=COMPLETING Restarts=$(cat {count})"\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for key, value in {"JOB_ID": "77", "ARRAY_JOB_ID": "76", "ARRAY_TASK_ID": "3"}.items():
        monkeypatch.setenv(f"SLURM_{key}", value)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    return count


def interrupted_body(signum: int):
    def body() -> dict:
        raise RunInterrupted(signum)  # as the training loop raises it after its checkpoint

    return body


def test_a_run_stopped_while_slurm_requeues_it_is_requeued_not_failed(
    tmp_path: Path, fake_slurm: Path
) -> None:
    rd = RunDir(tmp_path / "run")
    fake_slurm.write_text("1")  # scontrol requeue / preemption: the restart is counted
    with pytest.raises(RunInterrupted):
        guarded_run(rd, "exp9", "reg", "h", interrupted_body(signal.SIGTERM))
    record = rd.read()
    assert record["status"] == "requeued", record
    assert record["reason"] == (
        "RunInterrupted: interrupted by signal SIGTERM; SLURM requeued job 76_3 (restart 1); "
        "it resumes from its newest checkpoint"
    )
    fake_slurm.write_text("0")  # scancel: no restart counted
    with pytest.raises(RunInterrupted):
        guarded_run(RunDir(tmp_path / "cancelled"), "exp9", "reg", "h", interrupted_body(15))
    assert (RunDir(tmp_path / "cancelled").read() or {})["status"] == "failed"


def test_submitits_sigusr2_handler_runs_after_the_checkpoint_and_the_run_is_requeued(
    tmp_path: Path, fake_slurm: Path
) -> None:
    """submitit installs a SIGUSR2 handler that checkpoints the job, runs ``scontrol requeue``
    and calls ``sys.exit(-1)``; the run's own handler replaces it while the run body executes
    and hands the signal on once the run has checkpointed and stopped."""
    calls: list[int] = []

    def submitit_like(signum: int, frame: object) -> None:
        calls.append(signum)
        fake_slurm.write_text("1")  # scontrol requeue
        sys.exit(-1)

    previous = signal.signal(signal.SIGUSR2, submitit_like)
    try:
        rd = RunDir(tmp_path / "run")
        with pytest.raises(SystemExit) as info:
            guarded_run(rd, "ppo", "reg", "h", interrupted_body(signal.SIGUSR2))
        assert info.value.code == -1 and calls == [signal.SIGUSR2]
        assert signal.getsignal(signal.SIGUSR2) is submitit_like  # restored after the run
    finally:
        signal.signal(signal.SIGUSR2, previous)
    record = rd.read()
    assert record["status"] == "requeued" and "SIGUSR2; SLURM requeued job 76_3" in record["reason"]


def test_status_counts_requeued_runs_apart_and_lists_them(tmp_path: Path) -> None:
    from prereg.reports.status import render_status, sweep_status

    slurm = {"array_job_id": "5", "array_task_id": "0"}
    for name, status in (("arm=a", "requeued"), ("arm=b", "completed"), ("arm=c", "failed")):
        (tmp_path / name).mkdir()
        record = {"status": status, "reason": None if status == "completed" else "x"}
        (tmp_path / name / "run.json").write_text(json.dumps({**record, "slurm": slurm}))
        (tmp_path / name / "summary.json").write_text("{}")
    data = sweep_status(tmp_path)
    assert (data["counts"]["requeued"], data["counts"]["failed"]) == (1, 1)
    text = render_status(data)
    assert "1 completed, 1 failed, 0 halted, 0 skipped, 1 requeued" in text
    assert "requeued (SLURM starts them again" in text.split("\n", 4)[-1]
    assert "  arm=a  slurm 5_0" in text


def test_a_signal_outside_any_run_body_is_not_handed_on_to_prereg_itself() -> None:
    with pytest.raises(RunInterrupted) as info, interrupts_as_exceptions():
        raise RunInterrupted(signal.SIGTERM)
    assert info.value.replaced is None  # pytest's SIGTERM disposition is the default


# ------------------------------------------------------------------ part 4: start-up
def _started_prereg(stderr: str) -> bool:
    """Whether run.py's first lines ran: ``-X importtime`` logs ``signal``'s import at the top
    level (``| signal``: by the script itself, not nested in ``site``), the first thing they do."""
    return re.search(r"^import time:.*\| signal$", stderr, re.MULTILINE) is not None


def _user_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("import time:")]


@pytest.mark.slow
def test_a_signal_in_start_up_is_one_line_and_its_status_every_time(tmp_path: Path) -> None:
    """30 tries of a tiny job, each signalled 0-1.5 s after it starts (imports, Hydra, checks,
    the first steps): one line and status 128 + signal every time once ``run.py``'s first line
    ran.  Before it (Python's own start-up, ``site``) the signal has Python's effect: SIGTERM
    and SIGUSR2 end the process by the signal (the shell reports 128 + signal, nothing is
    printed), SIGINT is Python's own KeyboardInterrupt; tallied."""
    rng = random.Random(14)
    seen: Counter = Counter()
    for i in range(30):
        sig = rng.choice([signal.SIGTERM, signal.SIGINT, signal.SIGUSR2])
        delay = rng.uniform(0.0, 1.5)
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", str(REPO / "run.py"), *TINY]
            + [f"hydra.run.dir={tmp_path / str(i)}"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        )
        time.sleep(delay)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
        lines, rc = _user_lines(stderr), proc.returncode
        if not _started_prereg(stderr):
            seen[f"{sig.name} before run.py's first line: exit {rc}"] += 1
            if sig != signal.SIGINT:
                assert rc == -sig and not lines, (sig, delay, rc, lines[-5:])
        elif rc == 0:
            seen["too late (the job had completed)"] += 1
        else:
            seen[f"{sig.name}: one line, exit {rc}"] += 1
            assert rc == 128 + sig and lines == [interrupted_line(sig)], (sig, delay, rc, lines)
    print("\nstart-up kill loop:", dict(sorted(seen.items())))


def test_a_signal_whose_exception_a_library_replaced_stops_the_precheck_not_bad_input(
    monkeypatch, capsys
) -> None:
    """A signal landing in OmegaConf while it composes: its cleanup fails as the interrupt
    unwinds (``'NoneType' object has no attribute '_invalidate_flags_cache'``, seen in the kill
    loop), so the error the precheck sees has the interrupt behind it; it must stop as that
    signal, never print the error as bad input with status 2."""
    from prereg.core.registration import CONF_DIR
    from prereg.sweep import app, precheck

    app.setup()

    def composing(*_args, **_kwargs):
        try:
            raise RunInterrupted(signal.SIGINT)
        finally:  # the library's cleanup fails on the way out
            raise AttributeError("'NoneType' object has no attribute '_invalidate_flags_cache'")

    monkeypatch.setattr(precheck, "_compose_and_validate", composing)
    with pytest.raises(RunInterrupted) as info:
        precheck.check(["arm=primary", "cell=n4m2"], CONF_DIR)
    assert info.value.signum == signal.SIGINT
    assert capsys.readouterr().err == ""  # no "error: ..." line of bad input
