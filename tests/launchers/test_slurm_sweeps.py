"""exp9 sweeps through ``hydra/launcher=slurm`` on the single-node SLURM cluster.

What a user sees: one job array and the verdict at the end; a job killed outright ends
``failed`` in ``run.json``, in ``python -m prereg status`` and in the verdict while the other
jobs count; a requeued job (``scontrol requeue``, and submitit's SIGUSR2 time-limit path)
resumes from its checkpoint in the same directory with results identical to an uninterrupted
run. Skipped (reason printed) where no cluster can be had; failed with PREREG_REQUIRE_SLURM=1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import REPO, prereg_cli, run_cli
from launchers.slurm_helpers import cancel_sweep_jobs, sacct_state, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# resources for the test cluster (2 CPUs); signal_delay_s well under timeout_min * 60
SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
    "hydra.launcher.signal_delay_s=30",
]


def job_dir(sweep: Path, arm: str, cell: str, steps: int) -> Path:
    return sweep / f"arm={arm},cell={cell},registration.step_cap={steps}"


def peek(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None


def task_id(record: dict[str, Any]) -> str:
    """``<array>_<task>``: the id scontrol/scancel take for one array task (a sweep of one job
    is submitted as a plain job: then its job id)."""
    slurm = record["slurm"]
    if "array_job_id" not in slurm:
        return str(slurm["job_id"])
    return f"{slurm['array_job_id']}_{slurm['array_task_id']}"


def start(tmp: Path, sweep: Path, *args: str) -> subprocess.Popen:
    """``python run.py -m <SLURM> <args> hydra.sweep.dir=<sweep>`` in the background."""
    return subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "-m", *SLURM, *args, f"hydra.sweep.dir={sweep}"],
        cwd=REPO,
        stdout=open(tmp / "sweep.out", "w"),  # noqa: SIM115 - closed with the process
        stderr=open(tmp / "sweep.err", "w"),  # noqa: SIM115
        stdin=subprocess.DEVNULL,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )


def finish(proc: subprocess.Popen, tmp: Path, sweep: Path, timeout: float, expect: int = 0) -> str:
    """Wait for the sweep process (exit status ``expect``: 1 when a job did not complete);
    its stdout + stderr. On failure, no job is left behind."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
    text = (tmp / "sweep.out").read_text() + (tmp / "sweep.err").read_text()
    if proc.returncode != expect:
        cancel_sweep_jobs(sweep)
    assert proc.returncode == expect, f"sweep ended with {proc.returncode}:\n{text[-3000:]}"
    return text


def act_when_ready(
    steps: list[tuple[Callable[[], Any], Callable[[Any], None]]],
    proc: subprocess.Popen,
    sweep: Path,
    timeout: float,
) -> None:
    """For each (ready, act): call ``act(ready())`` once ``ready()`` is truthy, each on its own."""
    todo = list(steps)

    def poll() -> bool:
        for step in list(todo):
            value = step[0]()
            if value:
                step[1](value)
                todo.remove(step)
        assert proc.poll() is None or not todo, "the sweep ended before every action was taken"
        return not todo

    try:
        wait_until(poll, timeout=timeout, interval=0.05, what="the jobs to reach their checkpoints")
    except BaseException:
        proc.kill()
        cancel_sweep_jobs(sweep)
        raise


def sweep_status(sweep: Path, expect: int = 0) -> tuple[dict[str, Any], str]:
    """``python -m prereg status`` as JSON and as the text view (exit status ``expect``: 1 for
    an incomplete sweep)."""
    data = prereg_cli("status", str(sweep), "--json")
    text = prereg_cli("status", str(sweep))
    assert data.returncode == expect and text.returncode == expect, data.stderr + text.stderr
    return json.loads(data.stdout), text.stdout


def verdict(sweep: Path) -> tuple[dict[str, Any], str]:
    return json.loads((sweep / "verdict.json").read_text()), (sweep / "verdict.md").read_text()


def test_exp9_sweep_runs_as_one_job_array_and_ends_with_the_verdict(
    slurm_cluster: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    proc = start(
        tmp_path,
        sweep,
        "arm=baseline,primary,secondary",
        "cell=glob(*)",
        "registration.step_cap=40",
        "exp9.chunk_steps=20",
    )
    out = finish(proc, tmp_path, sweep, timeout=300)
    assert "verdict written to" in out and "Outcome" in out

    runs = {p.name: peek(p) for p in sweep.iterdir() if (p / "run.json").is_file()}
    assert len(runs) == 12
    arrays = {r["slurm"]["array_job_id"] for r in runs.values()}
    assert len(arrays) == 1, arrays  # ONE job array
    (array,) = arrays
    assert sorted(int(r["slurm"]["array_task_id"]) for r in runs.values()) == list(range(12))
    for name, r in runs.items():
        assert r["status"] == "completed", (name, r["reason"])
        assert r["attempts"] == 1 and r["slurm"]["job_id"] and r["slurm"]["node"]
        assert "restart_count" not in r["slurm"]  # SLURM sets it only on a requeued run
        assert len(pd.read_csv(sweep / name / "metrics.csv")) == 40
    assert {sacct_state(task_id(r)) for r in runs.values()} == {"COMPLETED"}

    v, md = verdict(sweep)
    assert v["runs"]["completed"] == 12
    assert not v["runs"]["missing"] and not v["runs"]["not_completed"]
    assert md.startswith(f"# exp9 verdict — {sweep}")
    assert f"**Outcome {v['outcome']['number']}**" in md

    data, text = sweep_status(sweep)
    assert data["counts"]["completed"] == 12 and data["expected_jobs"] == 12
    assert data["slurm"]["arrays"] == {array: "0-11"}
    assert "12 completed, 0 failed" in text
    assert f"SLURM: ran under array job {array} (tasks 0-11)" in text


def test_killed_jobs_end_failed_and_the_others_still_count(
    slurm_cluster: str, tmp_path: Path
) -> None:
    """Task 0: kill -9 of its python (what the OOM killer does). Task 1, once training (its
    first checkpoint written, ~2000 steps to go): ``scancel --batch --signal=KILL``; SLURM then
    ends the job's step (SIGTERM). Task 3: ``scancel`` while still pending (it never runs).
    Task 2 completes. The stock launcher would raise at task 0 and write no verdict."""
    steps = 2000
    names = {
        f"arm={arm},cell={cell},registration.step_cap={steps}"
        for arm in ("baseline", "primary")
        for cell in ("n4m2", "n5m2")
    }
    sweep = tmp_path / "sweep"
    proc = start(
        tmp_path,
        sweep,
        "arm=baseline,primary",
        "cell=n4m2,n5m2",
        f"registration.step_cap={steps}",
        "exp9.chunk_steps=100",
    )

    def running(task: str, checkpointed: bool = False) -> Callable[[], dict[str, Any] | None]:
        def find() -> dict[str, Any] | None:
            for d in sweep.glob("arm=*"):
                r = peek(d)
                if r and r.get("status") == "running" and r["slurm"]["array_task_id"] == task:
                    if not checkpointed or any((d / "checkpoints").glob("step_*")):
                        return r
            return None

        return find

    array: list[str] = []

    def kill_python(r: dict[str, Any]) -> None:
        array.append(r["slurm"]["array_job_id"])
        # task 3 waits for a CPU (tasks 0 and 1 hold both): cancel it before it can start
        subprocess.run(["scancel", f"{array[0]}_3"], check=True, timeout=30)
        os.kill(int(r["pid"]), signal.SIGKILL)

    def kill_batch(r: dict[str, Any]) -> None:
        subprocess.run(["scancel", "--batch", "--signal=KILL", task_id(r)], check=True, timeout=30)

    act_when_ready(
        [(running("0"), kill_python), (running("1", checkpointed=True), kill_batch)],
        proc,
        sweep,
        180,
    )
    out = finish(proc, tmp_path, sweep, timeout=240, expect=1)  # exit 1 after the verdict
    a = array[0]
    assert out.strip().splitlines()[-1].startswith("error: 3 of 4 jobs did not complete: 3 failed")

    # the sweep waited for every job and named the dead ones
    died = [line for line in out.splitlines() if "died" in line or "state" in line]
    assert "3 of 4 jobs died without a result" in out, "\n".join(died) or out[-4000:]
    for t in ("0", "1", "3"):
        assert f"(job {a}_{t})" in out
    # every job's record is in the directory Hydra gave it; none elsewhere
    runs = {p.name: peek(p) for p in sweep.iterdir() if (p / "run.json").is_file()}
    assert set(runs) == names
    by_task = {r["slurm"]["array_task_id"]: (name, r) for name, r in runs.items()}
    assert by_task["0"][1]["reason"] == f"killed by SLURM: state FAILED (job {a}_0)"
    # a KILLed batch shell: SLURM ends the job step (SIGTERM), FAILED or CANCELLED
    state1 = sacct_state(f"{a}_1").split()[0]  # "CANCELLED by 0" -> CANCELLED
    assert state1 in ("FAILED", "CANCELLED")
    assert by_task["1"][1]["reason"].startswith(f"killed by SLURM: state {state1} (job {a}_1)")
    never = by_task["3"][1]  # never ran: written by the launcher, findable by status views
    assert never["reason"] == f"killed by SLURM: state CANCELLED (job {a}_3)"
    assert "attempts" not in never and never["job"]["overrides"]
    for t in ("0", "1", "3"):
        assert by_task[t][1]["status"] == "failed" and by_task[t][1]["ended_at"]
    assert sacct_state(f"{a}_0") == "FAILED"
    # a pending array task cancelled leaves no sacct record (SLURM 22.05): submitit alone would
    # wait for it forever; the launcher found it gone from squeue
    assert sacct_state(f"{a}_3") == ""
    done_name, done = by_task["2"]
    assert done["status"] == "completed"
    assert len(pd.read_csv(sweep / done_name / "metrics.csv")) == steps

    data, text = sweep_status(sweep, expect=1)
    assert data["counts"] == {
        "pending": 0,
        "running": 0,
        "completed": 1,
        "failed": 3,
        "halted": 0,
        "skipped": 0,
        "requeued": 0,
    }
    assert f"killed by SLURM: state FAILED (job {a}_0)" in text
    assert f"killed by SLURM: state CANCELLED (job {a}_3)" in text

    v, md = verdict(sweep)
    key = {t: "/".join(x.split("=")[1] for x in by_task[t][0].split(",")[:2]) for t in "0123"}
    assert v["runs"]["completed"] == 1
    assert set(v["runs"]["not_completed"]) == {key["0"], key["1"]}
    assert key["3"] in v["runs"]["missing"]  # no registration: it never started
    assert f"Not completed: {key['0']} — failed: killed by SLURM: state FAILED (job {a}_0)" in md
    assert v["outcome"]["number"] == 0  # an incomplete set gives no verdict, and says so


def test_requeued_jobs_resume_and_match_an_uninterrupted_run(
    slurm_cluster: str, tmp_path: Path
) -> None:
    """``scontrol requeue`` (preemption: SIGTERM, then SIGKILL after KillWait) on one job and
    SIGUSR2 (the time-limit signal: submitit checkpoints, requeues and exits) on the other.
    Both stopped attempts say ``requeued`` (with the requeue named) before the tasks restart,
    and ``status`` counts them apart; both resume and match an uninterrupted run."""
    # the largest cell and the registered step cap: ~4 s of training after the first
    # checkpoint, so the requeue lands mid-run even with a warm compilation cache
    steps, cell = 2000, "n5m3"
    args = ["arm=primary,secondary", f"cell={cell}", f"registration.step_cap={steps}"]
    args.append("exp9.chunk_steps=100")
    sweep = tmp_path / "sweep"
    proc = start(tmp_path, sweep, *args)
    a, b = job_dir(sweep, "primary", cell, steps), job_dir(sweep, "secondary", cell, steps)
    sent: dict[str, str] = {}

    def checkpointed(d: Path) -> Callable[[], dict[str, Any] | None]:
        return lambda: any((d / "checkpoints").glob("step_*")) and peek(d)

    def requeue(r: dict[str, Any]) -> None:
        sent["a"] = task_id(r)
        subprocess.run(["scontrol", "requeue", sent["a"]], check=True, timeout=30)

    def time_limit_signal(r: dict[str, Any]) -> None:
        sent["b"] = task_id(r)
        subprocess.run(["scancel", "--signal=USR2", sent["b"]], check=True, timeout=30)

    act_when_ready(
        [(checkpointed(a), requeue), (checkpointed(b), time_limit_signal)], proc, sweep, 180
    )
    # what each stopped attempt recorded, seen before its restart (~20 s later here)
    stopped: dict[str, dict[str, Any]] = {}

    def both_stopped() -> bool:
        for key, d in (("a", a), ("b", b)):
            r = peek(d)
            if key not in stopped and r and r.get("attempts") == 1 and r["status"] != "running":
                stopped[key] = r
        return len(stopped) == 2

    try:
        wait_until(both_stopped, timeout=120, interval=0.05, what="the stopped attempts' records")
        data, text = sweep_status(sweep, expect=1)  # incomplete: both wait for their restart
    except BaseException:
        proc.kill()
        cancel_sweep_jobs(sweep)
        raise
    assert stopped["a"]["status"] == "requeued", stopped["a"]
    assert stopped["a"]["reason"] == (
        f"RunInterrupted: interrupted by signal SIGTERM; SLURM requeued job {sent['a']} "
        "(restart 1); it resumes from its newest checkpoint"
    )
    assert stopped["b"]["status"] == "requeued", stopped["b"]
    assert stopped["b"]["reason"] == (
        f"RunInterrupted: interrupted by signal SIGUSR2; submitit requeued job {sent['b']} "
        "(restart 1); it resumes from its newest checkpoint"
    )
    assert data["counts"]["requeued"] == 2 and data["counts"]["failed"] == 0, data["counts"]
    assert "requeued (SLURM starts them again" in text
    # The same two jobs, uninterrupted, with Hydra's basic launcher, run while the requeued
    # tasks sit out the cluster's cred_expire (20 s here) and so use no CPU.
    reference = tmp_path / "basic"
    try:
        ref = run_cli("-m", *args, f"hydra.sweep.dir={reference}", timeout=300)
    except BaseException:
        proc.kill()
        cancel_sweep_jobs(sweep)
        raise
    finish(proc, tmp_path, sweep, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]

    for key, d in (("a", a), ("b", b)):
        r = peek(d)
        assert r["status"] == "completed", r["reason"]
        assert r["attempts"] == 2
        assert r["slurm"]["restart_count"] == "1"
        assert task_id(r) == sent[key]  # the same array task, in the same directory
        job_log = "".join(p.read_text() for p in d.glob("*.log"))  # Hydra's <job>.log
        resumed = re.findall(r"resuming .* \(step (\d+)\)", job_log)
        assert len(resumed) == 1 and 0 < int(resumed[0]) < steps, resumed
        # the stopped attempt's requeue is in the log too (run.json is the restart's now)
        assert stopped[key]["reason"].split("; ", 1)[1] in job_log, job_log[-2000:]
        ref_dir = reference / d.name
        for name in ("metrics.csv", "diagnostics.csv"):
            pd.testing.assert_frame_equal(
                pd.read_csv(ref_dir / name), pd.read_csv(d / name), check_exact=True
            )
        mine, theirs = (json.loads((x / "summary.json").read_text()) for x in (d, ref_dir))
        mine.pop("compute_seconds"), theirs.pop("compute_seconds")
        assert mine == theirs
    # the SIGUSR2 path went through submitit's checkpoint/requeue, not a plain kill
    log_b = sweep / ".submitit" / sent["b"] / f"{sent['b']}_0_log.err"
    assert "Caught signal SIGUSR2" in log_b.read_text()

    v, _ = verdict(sweep)
    assert v["runs"]["completed"] == 2 and not v["runs"]["not_completed"]
    data, _ = sweep_status(sweep)
    assert {j["attempts"] for j in data["jobs"]} == {2}


PPO_TINY = [
    "experiment=ppo", "tier=small", "ppo.num_envs=16", "ppo.num_steps=32",
    "ppo.num_minibatches=4", "ppo.update_epochs=2", "ppo.chunk_updates=2", "ppo.eval_every=20",
    "ppo.eval_seeds=4", "eval.n_seeds=4", "ppo.updates=160", "hydra.sweep.subdir=ppo",
]  # fmt: skip


def test_a_requeued_ppo_job_resumes_and_matches_an_uninterrupted_run(
    slurm_cluster: str, tmp_path: Path
) -> None:
    """A PPO job requeued mid-training (``scontrol requeue``) resumes from its checkpoint in the
    same directory and ends with the metrics and final state of an uninterrupted run."""
    from prereg.training.checkpoints import load_checkpoint

    sweep = tmp_path / "sweep"
    proc = start(tmp_path, sweep, *PPO_TINY)
    d = sweep / "ppo"
    sent: dict[str, str] = {}

    def requeue(r: dict[str, Any]) -> None:
        sent["task"] = task_id(r)
        subprocess.run(["scontrol", "requeue", sent["task"]], check=True, timeout=30)

    ready = lambda: any((d / "checkpoints").glob("step_*")) and peek(d)  # noqa: E731
    act_when_ready([(ready, requeue)], proc, sweep, 180)
    reference = tmp_path / "basic"
    try:
        ref = run_cli("-m", *PPO_TINY, f"hydra.sweep.dir={reference}", timeout=300)
    except BaseException:
        proc.kill()
        cancel_sweep_jobs(sweep)
        raise
    finish(proc, tmp_path, sweep, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]

    r = peek(d)
    assert r["status"] == "completed", r["reason"]
    assert r["attempts"] == 2 and r["slurm"]["restart_count"] == "1"
    assert task_id(r) == sent["task"]
    job_log = "".join(p.read_text() for p in d.glob("*.log"))
    resumed = re.findall(r"resuming .* \(update (\d+)\)", job_log)
    assert len(resumed) == 1 and 0 < int(resumed[0]) < 160, resumed
    ours = pd.read_csv(d / "metrics.csv").drop(columns="sps")
    theirs = pd.read_csv(reference / "ppo" / "metrics.csv").drop(columns="sps")
    pd.testing.assert_frame_equal(theirs, ours, check_exact=True)
    fa, _ = load_checkpoint(d / "checkpoints" / "final")
    fb, _ = load_checkpoint(reference / "ppo" / "checkpoints" / "final")
    assert fa.keys() == fb.keys()
    for key in fa:
        assert (fa[key] == fb[key]).all(), key
