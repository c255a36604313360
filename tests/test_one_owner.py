"""One owner per run directory, end to end: real sweeps that meet each other's runs.

- Two sweeps into one directory at once: each job is trained once (``attempts: 1``), the one
  that meets the other's run says who holds it, and both print the same verdict.
- A run owned by another live process: a sweep reports it ``running elsewhere (host, pid)``, goes
  on, writes its verdict and exits 1 naming it; a single run into it exits 1 naming the owner.
- ``--fail-fast``: after the first job that fails or halts, no other job starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, run_cli

pytestmark = pytest.mark.slow

# one job long enough (seconds) that the second process meets it while the first trains it
TWICE = ["-m", "arm=baseline", "cell=n4m2", "registration.step_cap=300"]
HOLDER = """
import json, os, sys, time
from pathlib import Path
from prereg.core.lease import try_acquire
run = Path(sys.argv[1])
assert try_acquire(run) is None
(run / "run.json").write_text(json.dumps({"status": "running", "pid": os.getpid()}))
print("held", flush=True)
time.sleep(300)
"""


def verdict_text(stdout: str) -> str:
    """The verdict a sweep printed (from its title to the line naming its files)."""
    start = stdout.index("# exp9 verdict")
    return stdout[start : stdout.index("verdict written to", start)]


def test_two_sweeps_into_one_directory_train_each_job_once(tmp_path: Path) -> None:
    """Both started at once (two terminals): one trains the run, the other meets it, names its
    owner, waits (``--wait``) and finds it completed; both print the same verdict."""
    sweep = tmp_path / "sweep"
    args = [sys.executable, str(REPO / "run.py"), *TWICE, f"hydra.sweep.dir={sweep}", "--wait"]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    logs = [tmp_path / "a.out", tmp_path / "b.out"]
    procs = [
        subprocess.Popen(args, cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)  # noqa: SIM115
        for log in logs
    ]
    try:
        codes = [proc.wait(timeout=600) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    outs = [log.read_text() for log in logs]
    assert codes == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    (run,) = [json.loads(p.read_text()) for p in sweep.glob("arm=*/run.json")]
    assert (run["status"], run["attempts"]) == ("completed", 1)
    owner = [proc.pid for proc in procs].index(run["pid"])
    other = outs[1 - owner]
    met = f"waiting for its owner to finish (host {run['host']}, pid {run['pid']}"
    assert met in other and "already completed; not redone" in other, other[-3000:]
    assert "already completed" not in outs[owner]
    assert verdict_text(outs[0]) == verdict_text(outs[1])
    for out in outs:
        assert out.strip().splitlines()[-1] == "all 1 jobs completed (or were skipped)"


def test_a_run_owned_elsewhere_is_reported_not_trained(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    held = sweep / "arm=baseline,cell=n4m2,registration.step_cap=40"
    held.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(held)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = (held / "run.json").read_text()
        proc = run_cli("-m", "arm=baseline", "cell=n4m2", "registration.step_cap=40",
                       f"hydra.sweep.dir={sweep}")  # fmt: skip
        single = run_cli("arm=baseline", "cell=n4m2", "registration.step_cap=40",
                         f"hydra.run.dir='{held}'")  # fmt: skip
        assert (held / "run.json").read_text() == before  # not touched by either
    finally:
        holder.kill()
        holder.wait(timeout=30)
    owner = f"host {os.uname().nodename}, pid {holder.pid}"
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"running elsewhere ({owner}" in proc.stdout + proc.stderr
    assert (sweep / "verdict.json").exists()
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: 1 of 1 jobs did not complete: 1 running elsewhere ({held.name} ({owner}"
    ), last
    assert single.returncode == 1
    assert single.stderr.strip() == (
        f"error: {held} is running elsewhere ({owner}, since "
        + single.stderr.split("since ")[1].split(")")[0]
        + "); not started (--wait waits for it)"
    )


def test_fail_fast_starts_no_job_after_the_first_failure(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m", "hydra/launcher=basic",  # one job at a time, in order: the first one fails
        "arm=baseline,primary,secondary", "cell=n4m2", "registration.step_cap=10",
        "exp9.chunk_steps=2", "registration.lr=10", f"hydra.sweep.dir={sweep}", "--fail-fast",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    ran = sorted(p.parent.name for p in sweep.glob("arm=*/run.json"))
    assert ran == ["arm=baseline,cell=n4m2,registration.lr=10,registration.step_cap=10"], ran
    status = json.loads((sweep / ran[0] / "run.json").read_text())["status"]
    assert status in ("failed", "halted")  # lr=10 diverges or goes out of tolerance
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: 3 of 3 jobs did not complete: 1 {status} ({ran[0]}); 2 not run")
    assert (sweep / "verdict.json").exists()
