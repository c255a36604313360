"""Bounded waits and a throwaway Hydra app for the SLURM launcher tests."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from launchers.cluster import slurm_required


def skip_or_fail(ok: bool, message: str) -> str:
    """``message`` if the cluster is up; else skip, or fail where SLURM is required."""
    if ok:
        return message
    reason = f"SLURM not available: {message}"
    print(reason)
    if slurm_required():
        pytest.fail(f"{reason} (PREREG_REQUIRE_SLURM=1: the SLURM tests must run)", pytrace=False)
    pytest.skip(reason)


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.25, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def sacct_state(job_id: str) -> str:
    """The job's allocation-level state in sacct ('' while unknown)."""
    out = (
        subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        .stdout.strip()
        .splitlines()
    )
    return out[0].strip() if out else ""


def squeue_state(job_id: str) -> str:
    out = (
        subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        .stdout.strip()
        .splitlines()
    )
    return out[0].strip() if out else ""


def sbatch(*args: str) -> str:
    proc = subprocess.run(
        ["sbatch", "--parsable", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"sbatch failed: {proc.stderr.strip()}"
    return proc.stdout.strip().split(";")[0]


APP = """
import json, os, time
import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg):
    hc = HydraConfig.get()
    info = {
        "x": cfg.x, "num": hc.job.num, "job_id": hc.job.get("id"),
        "output_dir": hc.runtime.output_dir, "pid": os.getpid(),
        "restart_count": os.environ.get("SLURM_RESTART_COUNT"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "array_job_id": os.environ.get("SLURM_ARRAY_JOB_ID"),
        "prealloc": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
        "t": time.time(),
    }
    with open(os.path.join(hc.runtime.output_dir, "starts.jsonl"), "a") as f:
        f.write(json.dumps(info) + "\\n")
    # first run of a job with wait_for_requeue=true: wait to be requeued (bounded)
    if cfg.wait_for_requeue and info["restart_count"] is None:
        time.sleep(120)
    time.sleep(cfg.sleep)
    return info


if __name__ == "__main__":
    main()
"""


def write_app(root: Path) -> Path:
    """A minimal Hydra app (outside the repository) that uses prereg's launcher profiles, which
    Hydra finds through the installed plugin hydra_plugins.prereg_launchers."""
    (root / "conf").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "config.yaml").write_text("x: 0\nsleep: 0\nwait_for_requeue: false\n")
    app = root / "app.py"
    app.write_text(textwrap.dedent(APP))
    return app


def start_sweep(app: Path, sweep_dir: Path, *overrides: str) -> subprocess.Popen:
    log = open(sweep_dir.parent / f"{sweep_dir.name}.log", "w")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", *overrides],
        cwd=app.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def cancel_sweep_jobs(sweep_dir: Path) -> None:
    """scancel every SLURM job a sweep submitted (best effort; for failed tests)."""
    folder = sweep_dir / ".submitit"
    ids = {p.name.split("_")[0] for p in folder.glob("*_*") if p.is_dir()}
    if ids:
        subprocess.run(["scancel", *sorted(ids)], capture_output=True, timeout=30)


def stop_sweep(proc: subprocess.Popen, sweep_dir: Path) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    cancel_sweep_jobs(sweep_dir)


def finish_sweep(proc: subprocess.Popen, sweep_dir: Path, timeout: float) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_sweep(proc, sweep_dir)
        raise AssertionError(f"sweep did not finish within {timeout:.0f} s") from None
    log = (sweep_dir.parent / f"{sweep_dir.name}.log").read_text()
    if proc.returncode != 0:
        cancel_sweep_jobs(sweep_dir)
        raise AssertionError(f"sweep failed (rc={proc.returncode}):\n{log[-3000:]}")
    return log


def submitit_results(sweep_dir: Path) -> dict[int, Any]:
    """Hydra job number -> the job's return value, from submitit's result pickles."""
    results: dict[int, Any] = {}
    for path in sorted((sweep_dir / ".submitit").glob("*/*_result.pkl")):
        with open(path, "rb") as f:
            tag, value = pickle.load(f)
        assert tag == "success", f"{path.name}: {value}"
        ret = value.return_value  # raises if the task raised
        results[ret["num"]] = ret
    return results


def starts(job_dir: Path) -> list[dict[str, Any]]:
    path = job_dir / "starts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
