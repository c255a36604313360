"""End to end through run.py: the exp9 multirun, its verdict, re-runs, failures, resume."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import REPO, prereg_cli, run_cli

pytestmark = pytest.mark.slow

STEPS = 60
SWEEP = ["-m", "arm=baseline,primary,secondary", "cell=glob(*)", f"registration.step_cap={STEPS}"]
COLUMNS = ["step", "kl", "rho", "signal", "noise", "rho_proj", "loss", "grad_norm"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("exp9") / "sweep"
    proc = run_cli(*SWEEP, "exp9.chunk_steps=20", f"hydra.sweep.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_sweep_runs_twelve_jobs_and_each_writes_the_run_contract(sweep):
    out, _ = sweep
    runs = sorted(p for p in out.iterdir() if (p / "run.json").exists())
    assert len(runs) == 12
    hashes = set()
    for run in runs:
        record = json.loads((run / "run.json").read_text())
        assert record["status"] == "completed", record
        assert record["wall_seconds"] > 0 and record["ended_at"]
        assert record["package_version"] and record["jax_backend"].startswith("cpu")
        hashes.add(record["registration_hash"])
        metrics = pd.read_csv(run / "metrics.csv")
        assert list(metrics["step"]) == list(range(STEPS))
        assert set(COLUMNS) <= set(metrics.columns)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["steps"] == STEPS and summary["initial_kl"] > 0
        assert len(pd.read_csv(run / "diagnostics.csv")) == 16
    assert len(hashes) == 1


def test_verdict_is_printed_and_written_with_every_section(sweep):
    out, proc = sweep
    assert "Outcome" in proc.stdout and "verdict written to" in proc.stdout
    v = json.loads((out / "verdict.json").read_text())
    assert v["runs"]["completed"] == 12 and not v["runs"]["missing"]
    assert v["P1"]["fidelity"]["comparisons"] == 24
    assert v["P1"]["fidelity"]["worst_rel_err"] < 1e-9
    assert len(v["P1"]["finite_differences"]["cells"]) == 4
    assert len(v["P2"]["pairs"]) == 8
    assert v["P4"]["cells"] == 192 and v["P4"]["expected_cells"] == 192
    assert v["P4"]["max_detailed_balance"] <= 1e-15
    assert v["outcome"]["number"] in {0, 1, 2, 3, 4}
    assert len(v["reported"]["dose_response"]["pairs"]) == 8
    assert len(v["reported"]["finals"]) == 4
    # the step cap was overridden: the verdict must say these are not the registered constants
    assert not v["registration"]["registered"]
    assert v["registration"]["differing_constants"] == ["step_cap"]
    md = (out / "verdict.md").read_text()
    for heading in ("## P1", "## P2", "## P3", "## P4", "Dose-response", "Finals", "Outcome"):
        assert heading in md
    assert "NOT the registered constants" in md


def test_outcome_follows_the_registered_table(sweep):
    out, _ = sweep
    v = json.loads((out / "verdict.json").read_text())
    p1, p2, p3, p4 = v["P1"]["pass"], v["P2"]["pass"], v["P3"]["pass"], v["P4"]["verified"]
    expected = 0
    if p1 and not v["P4"]["halted_runs"]:
        if p2 and p3 and p4:
            expected = 1
        elif p2 and not p3:
            expected = 2
        elif p3 and p4 and not p2:
            expected = 3
        elif not p2 and not p3:
            expected = 4
    assert v["outcome"]["number"] == expected


def test_verdict_recomputed_from_disk_is_identical(sweep):
    out, _ = sweep
    before = json.loads((out / "verdict.json").read_text())
    proc = prereg_cli("verdict", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "## P2 steering" in proc.stdout
    assert json.loads((out / "verdict.json").read_text()) == before


def test_rerunning_the_sweep_redoes_nothing(sweep):
    out, _ = sweep
    run = out / "arm=primary,cell=n5m3,registration.step_cap=60"
    record = json.loads((run / "run.json").read_text())
    mtime = (run / "metrics.csv").stat().st_mtime_ns
    proc = run_cli(*SWEEP, "exp9.chunk_steps=20", f"hydra.sweep.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((run / "run.json").read_text())
    assert again["attempts"] == record["attempts"] == 1
    assert again["ended_at"] == record["ended_at"]
    assert (run / "metrics.csv").stat().st_mtime_ns == mtime
    assert "already completed" in proc.stdout + proc.stderr


def test_verdict_refuses_to_pool_runs_of_different_registrations(sweep, tmp_path):
    out, _ = sweep
    mixed = tmp_path / "mixed"
    shutil.copytree(out, mixed)
    odd = mixed / "arm=baseline,cell=n4m2,registration.step_cap=60"
    record = json.loads((odd / "run.json").read_text())
    record["registration_hash"] = "0123456789abcdef"
    (odd / "run.json").write_text(json.dumps(record))
    proc = prereg_cli("verdict", str(mixed))
    assert proc.returncode == 0
    v = json.loads((mixed / "verdict.json").read_text())
    assert v["outcome"]["number"] == 0
    assert "different registrations cannot be pooled" in v["refused"]
    assert "0123456789abcdef" in v["refused"]
    assert "REFUSED" in (mixed / "verdict.md").read_text()


PRIMARY = "arm=primary,cell=n4m2,registration.step_cap=30"


def test_a_failing_job_is_recorded_and_the_others_still_count(tmp_path):
    out = tmp_path / "sweep"
    # a real fault: the job's metrics.csv path is occupied by a directory, so writing it fails
    (out / PRIMARY / "metrics.csv").mkdir(parents=True)
    proc = run_cli(
        "-m",
        "arm=baseline,primary",
        "cell=n4m2",
        "registration.step_cap=30",
        f"hydra.sweep.dir={out}",
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # after the verdict: a job failed
    assert (
        proc.stderr.strip().splitlines()[-1]
        == f"error: 1 of 2 jobs did not complete: 1 failed ({PRIMARY})"
    )
    failed = json.loads(
        (out / "arm=primary,cell=n4m2,registration.step_cap=30" / "run.json").read_text()
    )
    assert failed["status"] == "failed"
    assert "IsADirectoryError" in failed["reason"]
    ok = json.loads(
        (out / "arm=baseline,cell=n4m2,registration.step_cap=30" / "run.json").read_text()
    )
    assert ok["status"] == "completed"
    v = json.loads((out / "verdict.json").read_text())
    assert v["runs"]["completed"] == 1
    assert "primary/n4m2" in v["runs"]["not_completed"]
    assert len(v["runs"]["missing"]) == 10
    assert v["outcome"]["number"] == 0
    md = (out / "verdict.md").read_text()
    assert "Not completed: primary/n4m2 — failed: IsADirectoryError" in md
    assert "Missing runs:" in md


def test_killed_run_resumes_from_its_checkpoint_with_identical_results(tmp_path):
    # the largest cell at the registered cap: seconds of training after the first checkpoint,
    # so the kill lands mid-run even when everything is compiled and cached
    args = ["arm=primary", "cell=n5m3", "exp9.chunk_steps=100"]
    ref = tmp_path / "reference"
    assert run_cli(*args, f"hydra.run.dir={ref}").returncode == 0
    victim = tmp_path / "victim"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), *args, f"hydra.run.dir={victim}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list((victim / "checkpoints").glob("step_*")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((victim / "run.json").read_text())["status"] == "running"
    done = run_cli(*args, f"hydra.run.dir={victim}")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((victim / "run.json").read_text())
    assert record["status"] == "completed" and record["attempts"] == 2
    assert "resuming" in done.stdout + done.stderr
    a = pd.read_csv(ref / "metrics.csv")
    b = pd.read_csv(victim / "metrics.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_the_verdict_ends_with_the_trust_section(sweep):
    out, _ = sweep
    v = json.loads((out / "verdict.json").read_text())
    trust = v["trust"]
    assert trust["early_steps"] == 50 and list(trust["arms"]) == ["primary"]
    primary = trust["arms"]["primary"]
    assert len(primary["pairs"]) == 8 and 0 <= primary["early_pairs"] <= 8
    crossed = [p for p in primary["pairs"] if p["t_arm"] is not None]
    assert primary["early_pairs"] == sum(p["t_arm"] < 50 for p in crossed)
    md = (out / "verdict.md").read_text()
    body = md.split("\n## Plots")[0]
    assert body.index("## How much this verdict can be trusted") > body.index("### Finals")


V2_ARMS = ["rho0_01", "rho0_1", "rho1", "noise0_1"]


def test_a_tiny_v2_sweep_runs_the_registered_arms_and_writes_the_generalised_verdict(tmp_path):
    out = tmp_path / "v2"
    args = ["-m", "registration=exp9_v2", "arm=glob(*)", "cell=n4m2", "registration.step_cap=40"]
    proc = run_cli(*args, "exp9.chunk_steps=20", f"hydra.sweep.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.name.split(",")[0] for p in out.iterdir() if (p / "run.json").exists())
    assert runs == sorted(f"arm={a}" for a in ["baseline", *V2_ARMS])
    forms = {}
    for run in out.glob("arm=*"):
        summary = json.loads((run / "summary.json").read_text())
        forms[summary["arm"]] = (summary["lambda"], summary["aux_form"])
    assert forms["noise0_1"] == (0.1, "noise") and forms["rho1"] == (1.0, "rho")
    v = json.loads((out / "verdict.json").read_text())
    assert list(v["P2"]["arms"]) == V2_ARMS and list(v["outcome"]["by_arm"]) == V2_ARMS
    assert [d["arm"] for d in v["reported"]["dose_response"]["rows"]] == V2_ARMS
    assert list(v["trust"]["arms"]) == V2_ARMS
    md = (out / "verdict.md").read_text()
    assert md.splitlines()[4].startswith("**Outcomes by arm** (exploratory) — rho0_01: ")
    assert "## How much this verdict can be trusted" in md
    assert "**Outcomes by arm**" in proc.stdout
