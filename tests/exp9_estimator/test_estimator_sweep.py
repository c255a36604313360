"""End to end through run.py: a tiny exp9 sweep (one cell, 60 steps), then the estimator study
on it with small chains, its verdict and plots, and a re-run that redoes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import run_cli

pytestmark = pytest.mark.slow

ONE_CELL = ["~registration.cells.n5m2", "~registration.cells.n4m3", "~registration.cells.n5m3"]
SMALL = [
    "registration.chains=64",
    "registration.lengths=[4,16]",
    "registration.burn_in=[0,4]",
    "registration.practical.burn_in=4",
    "registration.practical.length=16",
    "registration.exact_t_max=64",
    "registration.bootstrap.resamples=50",
]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("est")
    src, out = root / "exp9", root / "est"
    tiny = ["registration.step_cap=60", "exp9.chunk_steps=20", f"hydra.sweep.dir={src}"]
    proc = run_cli("-m", "arm=baseline,primary,secondary", "cell=n4m2", *ONE_CELL, *tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli(
        "-m", "experiment=exp9_estimator", f"source_sweep={src}", *SMALL, f"hydra.sweep.dir={out}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return src, out, proc.stdout


def test_the_study_writes_its_verdict_and_plots(study):
    _, out, stdout = study
    assert "exp9_estimator verdict" in stdout and "verdict written to" in stdout
    v = json.loads((out / "verdict.json").read_text())
    assert v["exploratory"]["is"] and v["thetas"] == 6  # 3 runs x (eps=0.5 crossing, last)
    assert v["E1"]["comparisons"] == 24 and v["E1"]["pass"]
    assert v["outcome"]["number"] in {1, 2, 3}
    assert len(v["E4"]["pairs"]) == 1 and len(v["E5"]["runs"]) == 3
    md = (out / "verdict.md").read_text()
    for heading in ("## E1", "## E2", "## E3", "## E4", "## E5", "trusted", "exploratory"):
        assert heading in md
    for png in ("snr_emp_vs_pred.png", "mse_vs_T.png"):
        assert (out / "plots" / png).stat().st_size > 0


def test_estimates_follow_their_definitions(study):
    _, out, _ = study
    (job,) = [p for p in out.iterdir() if (p / "run.json").exists()]
    thetas = pd.read_csv(job / "thetas.csv")
    assert (thetas["replay_deviation"] <= 1e-12).all()  # replay reproduces metrics.csv
    est = pd.read_csv(job / "estimates" / "n4m2.csv").merge(thetas, on="theta_id")
    assert len(est) == 6 * 4
    assert ((est["snr_pred"] - est["rho"] * est["length"]).abs() <= 1e-12 * est["snr_pred"]).all()
    assert (
        (est["snr_exact"] * est["mse_exact"] - est["signal"]).abs() <= 1e-9 * est["signal"]
    ).all()
    assert ((est["snr_lo"] <= est["snr_emp"]) & (est["snr_emp"] <= est["snr_hi"])).all()
    for arm in ("baseline", "primary", "secondary"):
        e5 = pd.read_csv(job / "e5" / f"{arm}__n4m2.csv")
        assert list(e5["step"]) == list(range(60)) and e5["kl"].iloc[0] > 0


def test_an_interrupted_job_resumes_redoing_only_what_is_missing(study):
    """A job that stopped after some parts: the re-run rewrites only the missing files, and they
    come back identical (the chains are seeded)."""
    src, out, _ = study
    (job,) = [p for p in out.iterdir() if (p / "run.json").exists()]
    gone = [job / "estimates" / "n4m2.csv", job / "e5" / "secondary__n4m2.csv"]
    kept = [p for p in job.rglob("*.csv") if p not in gone]
    before = {p: p.stat().st_mtime_ns for p in kept}
    content = {p: p.read_bytes() for p in gone}
    record = json.loads((job / "run.json").read_text())
    (job / "run.json").write_text(json.dumps({**record, "status": "failed", "reason": "killed"}))
    for p in gone:
        p.unlink()
    proc = run_cli("-m", "experiment=exp9_estimator", f"source_sweep={src}", *SMALL,
                   f"hydra.sweep.dir={out}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((job / "run.json").read_text())["status"] == "completed"
    assert {p: p.stat().st_mtime_ns for p in kept} == before
    assert {p: p.read_bytes() for p in gone} == content
