"""The example study outside the package (examples/quadratic_sgd), run as a user would.

It is loaded without installing it (``PREREG_EXPERIMENTS=quadratic_sgd`` and
``PYTHONPATH=examples/quadratic_sgd``), and once through its entry point after a
``pip install --target`` of the example's own pyproject.toml.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, prereg_cli, run_cli

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "examples" / "quadratic_sgd"
ENV = {"PREREG_EXPERIMENTS": "quadratic_sgd", "PYTHONPATH": str(EXAMPLE)}
SWEEP = ["-m", "experiment=quadratic_sgd", "qsgd_arm=glob(*)"]
ARMS = ("momentum", "sgd")
SEEDS = ("0", "1", "2", "3", "4")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    sweep_dir = tmp_path_factory.mktemp("quadratic_sgd") / "sweep"
    proc = run_cli(*SWEEP, f"hydra.sweep.dir={sweep_dir}", env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "**Outcome 1**" in proc.stdout  # the callback printed the verdict
    return sweep_dir


def check_verdict_json(v: dict) -> None:
    assert v["experiment"] == "quadratic_sgd"
    assert v["outcome"]["number"] == 1
    assert v["registration"]["name"] == "quadratic_sgd_v1"
    assert v["registration"]["registered"] is True
    assert v["runs"] == {"expected": 2, "completed": 2, "missing": [], "not_completed": {}}
    assert v["G1"]["pass"] is True and v["G1"]["never_crossed"] == []
    assert v["G2"]["pass"] is True and v["G2"]["bar"] == 0.25
    assert sorted(v["crossings"]) == sorted(ARMS)
    for arm in ARMS:
        assert sorted(v["crossings"][arm]) == list(SEEDS)
        assert all(isinstance(t, int) and 0 < t <= 3000 for t in v["crossings"][arm].values())
    # heavy ball with beta = 0.9 contracts the slow directions about 1 / (1 - beta) = 10x faster
    for seed in SEEDS:
        ratio = v["crossings"]["momentum"][seed] / v["crossings"]["sgd"][seed]
        assert v["G2"]["ratios"][seed] == pytest.approx(ratio)
        assert 0.05 < ratio < 0.15
    assert max(v["G2"]["ratios"].values()) == pytest.approx(v["G2"]["max_ratio"])
    floors = v["reported"]["final_vs_stationary"]
    # momentum has settled: its final loss is its exact stationary loss (within sampling noise)
    assert floors["momentum"]["median_final_loss"] == pytest.approx(
        floors["momentum"]["stationary_loss"], rel=0.2
    )


def test_sweep_writes_runs_and_verdict(sweep: Path) -> None:
    for arm in ARMS:
        run_dir = sweep / f"qsgd_arm={arm}"
        run = json.loads((run_dir / "run.json").read_text())
        assert run["status"] == "completed" and run["experiment"] == "quadratic_sgd"
        assert run["registration"] == "quadratic_sgd_v1"
        assert run["job"]["choices"]["qsgd_arm"] == arm
        header = (run_dir / "metrics.csv").read_text().splitlines()[0]
        assert header == "seed,step,loss"
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["arm"] == arm and sorted(summary["crossing_step"]) == list(SEEDS)
    hashes = {json.loads((sweep / f"qsgd_arm={a}" / "run.json").read_text())["registration_hash"]
              for a in ARMS}  # fmt: skip
    assert len(hashes) == 1
    check_verdict_json(json.loads((sweep / "verdict.json").read_text()))
    md = (sweep / "verdict.md").read_text()
    assert md.startswith("# quadratic_sgd verdict")
    assert "**Outcome 1**" in md
    assert "Registration quadratic_sgd_v1 (hash" in md and "matches the frozen file" in md
    assert "Runs: 2/2 completed." in md
    assert "## G1 reach — PASS" in md and "## G2 speed-up — PASS" in md
    assert "| seed | sgd | momentum | ratio |" in md


def test_status_and_compare(sweep: Path) -> None:
    status = prereg_cli("status", str(sweep), env=ENV)
    assert status.returncode == 0, status.stderr
    assert "(quadratic_sgd): 2 jobs listed in sweep.json" in status.stdout
    assert "2 completed" in status.stdout

    table = prereg_cli("compare", str(sweep), env=ENV)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    for column in ("qsgd_arm", "status", "median_crossing_step", "stationary_loss"):
        assert column in lines[0]
    assert any(line.startswith("qsgd_arm=momentum") and "completed" in line for line in lines)
    assert any(line.startswith("qsgd_arm=sgd") and "completed" in line for line in lines)

    grouped = prereg_cli("compare", str(sweep), "--by", "qsgd_arm", "--csv", env=ENV)
    assert grouped.returncode == 0, grouped.stderr
    rows = [line.split(",") for line in grouped.stdout.strip().splitlines()]
    head = rows[0]
    assert head[:4] == ["qsgd_arm", "registration", "runs", "completed"]  # one hash: one group
    by_arm = {row[0]: dict(zip(head, row, strict=True)) for row in rows[1:]}
    assert sorted(by_arm) == sorted(ARMS)
    assert float(by_arm["momentum"]["mean(momentum)"]) == 0.9
    assert float(by_arm["sgd"]["mean(momentum)"]) == 0.0
    fast = float(by_arm["momentum"]["mean(median_crossing_step)"])
    assert fast < 0.25 * float(by_arm["sgd"]["mean(median_crossing_step)"])


def test_verdict_recomputes_the_same(sweep: Path) -> None:
    before = json.loads((sweep / "verdict.json").read_text())
    md_before = (sweep / "verdict.md").read_text()
    (sweep / "verdict.json").unlink()
    (sweep / "verdict.md").unlink()
    proc = prereg_cli("verdict", str(sweep), env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "**Outcome 1**" in proc.stdout
    assert json.loads((sweep / "verdict.json").read_text()) == before
    assert (sweep / "verdict.md").read_text() == md_before


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("registration.lr=-1", "error: registration.lr: must be > 0, got -1.0"),
        (
            "registration.lr=3",
            "error: registration.lr: must be < 2 (1 + momentum) / curvature_max = 2 for arm sgd "
            "to be stable, got 3.0",
        ),
        ("qsgd_arm=foo", "error: qsgd_arm: unknown option 'foo' (allowed: momentum, sgd)"),
    ],
)
def test_bad_input_is_one_line_before_any_compute(tmp_path: Path, override: str, line: str):
    sweep_dir = tmp_path / "bad"
    args = [*SWEEP, f"hydra.sweep.dir={sweep_dir}", override]
    if override.startswith("qsgd_arm="):
        args.remove("qsgd_arm=glob(*)")
    proc = run_cli(*args, env=ENV, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert errors == [line], proc.stderr
    assert proc.stderr.strip() == line
    assert not sweep_dir.exists()


def test_entry_point_route(tmp_path: Path) -> None:
    """``pip install`` the example (its pyproject.toml's entry point), no PREREG_EXPERIMENTS."""
    src = tmp_path / "src"  # a copy: pip's in-tree build leaves build/ and *.egg-info behind
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = tmp_path / "site"
    try:
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(src)],
            capture_output=True,
            text=True,
            timeout=240,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("pip install of examples/quadratic_sgd took over 240 s (no index reachable?)")
    if pip.returncode != 0:
        tail = " | ".join((pip.stdout + pip.stderr).strip().splitlines()[-3:])
        pytest.skip(f"pip could not build examples/quadratic_sgd (needs setuptools): {tail}")
    assert (site / "quadratic_sgd" / "conf" / "registration" / "quadratic_sgd_v1.yaml").is_file()
    env = {"PREREG_EXPERIMENTS": "", "PYTHONPATH": str(site)}
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(*SWEEP, f"hydra.sweep.dir={sweep_dir}", env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_verdict_json(json.loads((sweep_dir / "verdict.json").read_text()))
    status = prereg_cli("status", str(sweep_dir), env=env)
    assert "2 completed" in status.stdout, status.stdout + status.stderr


def test_too_few_steps_fails_g1_and_is_not_the_registration(tmp_path: Path) -> None:
    """With 1000 steps plain SGD misses the threshold on some seeds: outcome 3, G2 not
    evaluated, and the verdict names the constant that differs from the frozen file."""
    sweep_dir = tmp_path / "short"
    proc = run_cli(*SWEEP, f"hydra.sweep.dir={sweep_dir}", "registration.steps=1000", env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    v = json.loads((sweep_dir / "verdict.json").read_text())
    assert v["outcome"]["number"] == 3
    assert v["registration"]["registered"] is False
    assert v["registration"]["differing_constants"] == ["steps"]
    assert v["G1"]["pass"] is False and v["G2"]["pass"] is None
    assert v["G1"]["never_crossed"] and all(x.startswith("sgd/") for x in v["G1"]["never_crossed"])
    md = (sweep_dir / "verdict.md").read_text()
    assert "**NOT the registered constants** — differs in steps." in md
    assert "## G1 reach — FAIL" in md and "## G2 speed-up — not evaluated" in md
