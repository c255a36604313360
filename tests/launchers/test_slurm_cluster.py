"""The single-node SLURM cluster (launchers/slurm_cluster.sh) and Hydra sweeps on it.

Skipped, with the reason printed, where no cluster is up and the tests may not start one
(they start it only when CI is set or PREREG_START_SLURM=1). Every wait is bounded.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from launchers.cluster import slurm_cluster_script
from launchers.slurm_helpers import (
    finish_sweep,
    sacct_state,
    sbatch,
    start_sweep,
    starts,
    stop_sweep,
    submitit_results,
    wait_until,
    write_app,
)

pytestmark = pytest.mark.slurm


def test_status_command_reports_an_idle_node(slurm_cluster: str) -> None:
    proc = subprocess.run(
        ["bash", str(slurm_cluster_script()), "status"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("slurm up:"), line
    assert "accounting ok" in line


def test_sbatch_wrap_completes_and_sacct_shows_completed(
    slurm_cluster: str, tmp_path: Path
) -> None:
    out = tmp_path / "job.out"
    job = sbatch(f"--output={out}", "--time=1", "--wrap", "echo prereg-ok")
    state = wait_until(
        lambda: sacct_state(job) in ("COMPLETED", "FAILED", "CANCELLED") and sacct_state(job),
        timeout=60,
        what=f"job {job} to end",
    )
    assert state == "COMPLETED"
    assert out.read_text().strip() == "prereg-ok"


def test_sigkilled_job_shows_failed_in_sacct(
    slurm_cluster: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    started = tmp_path / "started"
    job = sbatch(
        f"--output={tmp_path / 'job.out'}", "--time=2", "--wrap", f"touch {started}; sleep 120"
    )
    request.addfinalizer(lambda: subprocess.run(["scancel", job], timeout=30))
    # RUNNING in squeue can come before slurmd has launched the batch script; a signal sent
    # then is lost. Wait for the script itself.
    wait_until(started.exists, timeout=60, what=f"job {job} to start")
    # SIGKILL the job's processes, as the OOM killer would. (A plain `scancel --signal=KILL`
    # is a cancel: sacct would say CANCELLED.)
    subprocess.run(["scancel", "--batch", "--signal=KILL", job], check=True, timeout=30)
    state = wait_until(
        lambda: (s := sacct_state(job)) not in ("", "PENDING", "RUNNING") and s,
        timeout=60,
        what=f"job {job} to end",
    )
    assert state == "FAILED"


def test_hydra_sweep_runs_as_one_job_array(slurm_cluster: str, tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    sweep = tmp_path / "sweep"
    proc = start_sweep(
        app,
        sweep,
        "hydra/launcher=slurm",
        "x=1,2,3",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
        "hydra.launcher.signal_delay_s=30",
    )
    finish_sweep(proc, sweep, timeout=240)
    results = submitit_results(sweep)
    assert sorted(results) == [0, 1, 2]
    assert [results[n]["x"] for n in range(3)] == [1, 2, 3]
    assert len({r["array_job_id"] for r in results.values()}) == 1  # one SLURM job array
    for n, r in results.items():
        assert Path(r["output_dir"]) == sweep / str(n)
        assert r["prealloc"] == "false"  # the profile's setup lines ran


def test_requeued_array_task_reruns_same_job_in_same_dir(
    slurm_cluster: str, tmp_path: Path
) -> None:
    """`scontrol requeue` (what preemption does): the task re-runs with SLURM_RESTART_COUNT=1,
    same Hydra job number and directory, and the sweep still gets every result."""
    app = write_app(tmp_path / "app")
    sweep = tmp_path / "sweep"
    proc = start_sweep(
        app,
        sweep,
        "hydra/launcher=slurm",
        "x=1,2",
        "wait_for_requeue=true",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
        "hydra.launcher.signal_delay_s=30",
    )
    try:
        first = wait_until(lambda: starts(sweep / "0"), timeout=120, what="job 0 to start")
        wait_until(lambda: starts(sweep / "1"), timeout=120, what="job 1 to start")
        subprocess.run(["scontrol", "requeue", first[0]["job_id"]], check=True, timeout=30)
        subprocess.run(
            ["scontrol", "requeue", starts(sweep / "1")[0]["job_id"]], check=True, timeout=30
        )
    except BaseException:
        stop_sweep(proc, sweep)
        raise
    # requeued tasks wait cred_expire (20 s on the test cluster, 120 s by default) to restart
    finish_sweep(proc, sweep, timeout=300)
    results = submitit_results(sweep)
    assert sorted(results) == [0, 1]
    for n in (0, 1):
        runs = starts(sweep / str(n))
        assert [r["restart_count"] for r in runs] == [None, "1"]
        assert runs[0]["job_id"] == runs[1]["job_id"]
        assert results[n]["restart_count"] == "1"
        assert Path(results[n]["output_dir"]) == sweep / str(n)
