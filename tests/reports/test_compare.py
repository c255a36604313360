"""``python -m prereg compare`` on run directories written by hand (no experiment is run)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pandas as pd
import pytest

from prereg.reports.compare import build_table, collect_runs, compare, compare_main

STEP_CAP = "registration.step_cap=20"


def exp9_summary(arm: str, cell: str, last_kl: float, crossed_fine: bool) -> dict:
    return {
        "experiment": "exp9",
        "arm": arm,
        "cell": cell,
        "steps": 20,
        "initial_kl": 0.3,
        "crossings": {
            "0.5": {"step": 12.0, "kl": 0.14, "rho": 1e-4, "signal": 0.02, "noise": 190.0},
            "0.1": {"step": 19.0, "kl": 0.02, "rho": 2e-5, "signal": 0.01, "noise": 200.0}
            if crossed_fine
            else None,
        },
        "last_kl": last_kl,
        "last_rho": 1e-4,
        "median_kl": last_kl * 1.5,
        "median_rho": 3e-4,
        "fidelity": {"first": {"rel_err": 1e-15, "pass": True}},
        "thresholds_list": [0.5, 0.1],
    }


def make_run(
    sweep: Path,
    arm: str,
    cell: str,
    status: str | None = "completed",
    reason: str | None = None,
    summary: dict | None | str = "auto",
    wall: float = 2.0,
    write_job: bool = True,
    config: dict | None = None,
) -> Path:
    """A job dir as the runners leave it: run.json (+ job), summary.json, .hydra/overrides.yaml."""
    overrides = [f"arm={arm}", f"cell={cell}", STEP_CAP]
    d = sweep / ",".join(overrides)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if config is not None:
        import yaml

        (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if status is not None:
        run = {
            "status": status,
            "reason": reason,
            "experiment": "exp9",
            "registration": "exp9_v1",
            "registration_hash": "325aea6c641228c2",
            "wall_seconds": wall,
            "attempts": 1,
            "slurm": {},
        }
        if write_job:
            run["job"] = {
                "choices": {
                    "experiment": "exp9",
                    "arm": arm,
                    "cell": cell,
                    "registration": "exp9_v1",
                },
                "overrides": overrides,
            }
        (d / "run.json").write_text(json.dumps(run))
    if summary == "auto":
        summary = exp9_summary(arm, cell, 0.1 if arm == "baseline" else 0.2, arm == "baseline")
    if isinstance(summary, dict):
        (d / "summary.json").write_text(json.dumps(summary))
    elif isinstance(summary, str):
        (d / "summary.json").write_text(summary)
    return d


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A half-finished sweep with every kind of trouble compare must survive."""
    sweep = tmp_path / "sweep"
    make_run(sweep, "baseline", "n4m2", wall=2.0)
    make_run(sweep, "primary", "n4m2", wall=4.0)
    make_run(
        sweep,
        "primary",
        "n5m2",
        status="failed",
        summary=None,
        reason="FloatingPointError: non-finite value at step 7 in rho " + "x" * 80,
    )
    make_run(sweep, "baseline", "n5m2", summary=None)  # completed, summary.json missing
    make_run(sweep, "secondary", "n4m2", status=None, summary=None)  # only .hydra: pending
    bad = make_run(sweep, "secondary", "n5m2", status=None, summary=None)
    (bad / "run.json").write_text('{"status": "comp')  # torn write
    make_run(sweep, "baseline", "n4m3", summary="{not json")  # corrupt summary
    make_run(sweep, "primary", "n4m3", write_job=False)  # run.json without job: overrides.yaml
    (sweep / "sweep.json").write_text("{}")
    return sweep


def rows_by_run(table) -> dict[str, dict]:
    return {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}


def test_mixed_rows_and_columns(mixed: Path) -> None:
    runs, bad = collect_runs([str(mixed)])
    assert bad == []
    table = build_table(runs)
    # varying config keys only: registration.step_cap, experiment, registration are constant
    assert table.columns[:3] == ["run", "arm", "cell"]
    assert "registration.step_cap" not in table.columns and "experiment" not in table.columns
    assert table.columns[3:6] == ["status", "reason", "wall_s"]
    assert table.columns[6:] == [
        "initial_kl",
        "last_kl",
        "median_kl",
        "last_rho",
        "median_rho",
        "crossings.0.5.step",
        "crossings.0.1.step",
    ]
    rows = rows_by_run(table)
    assert len(rows) == 8
    ok = rows["arm=baseline,cell=n4m2," + STEP_CAP]
    assert (ok["arm"], ok["cell"], ok["status"], ok["reason"]) == (
        "baseline",
        "n4m2",
        "completed",
        None,
    )
    assert ok["last_kl"] == 0.1 and ok["crossings.0.1.step"] == 19.0 and ok["wall_s"] == 2.0
    assert rows["arm=primary,cell=n4m2," + STEP_CAP]["crossings.0.1.step"] is None
    failed = rows["arm=primary,cell=n5m2," + STEP_CAP]
    assert failed["status"] == "failed" and failed["reason"].startswith("FloatingPointError")
    assert failed["last_kl"] is None
    no_summary = rows["arm=baseline,cell=n5m2," + STEP_CAP]
    assert (no_summary["status"], no_summary["reason"]) == ("completed", "summary.json missing")
    pending = rows["arm=secondary,cell=n4m2," + STEP_CAP]
    assert (pending["status"], pending["arm"], pending["cell"]) == ("pending", "secondary", "n4m2")
    torn = rows["arm=secondary,cell=n5m2," + STEP_CAP]
    assert (torn["status"], torn["reason"], torn["arm"]) == (
        "pending",
        "run.json unreadable",
        "secondary",
    )
    corrupt = rows["arm=baseline,cell=n4m3," + STEP_CAP]
    assert corrupt["reason"] == "summary.json unreadable" and corrupt["initial_kl"] is None
    no_job = rows["arm=primary,cell=n4m3," + STEP_CAP]
    assert (no_job["arm"], no_job["cell"], no_job["last_kl"]) == ("primary", "n4m3", 0.2)


def test_text_table_truncates_reasons(mixed: Path) -> None:
    text = compare([str(mixed)])
    lines = text.splitlines()
    assert len(lines) == 9
    assert lines[0].split()[:4] == ["run", "arm", "cell", "status"]
    failed = next(line for line in lines if "cell=n5m2" in line and "failed" in line)
    assert "FloatingPointError: non-finite value ..." in failed and "xxx" not in failed


def test_by_aggregates(mixed: Path) -> None:
    frame = pd.read_csv(io.StringIO(compare([str(mixed)], by="arm", fmt="csv")))
    frame = frame.set_index("arm")
    assert list(frame.index) == ["baseline", "primary", "secondary"]
    assert frame.loc["baseline", "runs"] == 3 and frame.loc["baseline", "completed"] == 3
    assert frame.loc["primary", "failed"] == 1 and frame.loc["secondary", "pending"] == 2
    # means over runs that have the figure: baseline n4m2 only has a readable summary
    assert frame.loc["baseline", "mean(last_kl)"] == pytest.approx(0.1)
    assert frame.loc["primary", "mean(last_kl)"] == pytest.approx(0.2)
    assert frame.loc["primary", "mean(wall_s)"] == pytest.approx((4.0 + 2.0 + 2.0) / 3)
    assert pd.isna(frame.loc["secondary", "mean(last_kl)"])


def test_by_unknown_key_is_an_error(mixed: Path, capsys) -> None:
    args = Namespace(paths=[str(mixed)], by="nope", csv=False, markdown=False, diff=None)
    assert compare_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: by: no run has key 'nope'")


def _fake_runs(tmp_path: Path, experiment: str) -> None:
    for lr in ("1e-4", "3e-4"):
        d = tmp_path / f"ppo.lr={lr}"
        d.mkdir()
        job = {
            "choices": {"experiment": experiment, "tier": "large"},
            "overrides": [f"ppo.lr={lr}"],
        }
        (d / "run.json").write_text(
            json.dumps(
                {"status": "completed", "experiment": experiment, "wall_seconds": 9.5, "job": job}
            )
        )
        (d / "summary.json").write_text(
            json.dumps(
                {
                    "experiment": experiment,
                    "env_steps": 8192,
                    "final": {"success_rate": 0.5, "entropy": 2.1},
                    "curve": [1, 2, 3],
                    "tier": "large",
                }
            )
        )


def test_generic_experiment_scalar_leaves(tmp_path: Path) -> None:
    _fake_runs(tmp_path, "my_experiment")
    table = build_table(collect_runs([str(tmp_path)])[0])
    assert table.columns == [
        "run",
        "ppo.lr",
        "status",
        "wall_s",
        "env_steps",
        "final.success_rate",
        "final.entropy",
        "tier",
    ]


def test_ppo_runs_show_their_named_figures_only(tmp_path: Path) -> None:
    _fake_runs(tmp_path, "ppo")  # tier is a config choice, not repeated as a figure
    table = build_table(collect_runs([str(tmp_path)])[0])
    assert table.columns == [
        "run",
        "ppo.lr",
        "status",
        "wall_s",
        "env_steps",
        "final.success_rate",
        "final.entropy",
    ]


def test_globs_and_mixed_paths_deduplicate(mixed: Path) -> None:
    single = mixed / ("arm=baseline,cell=n4m2," + STEP_CAP)
    runs, bad = collect_runs([str(mixed / "arm=primary*"), str(single), str(single)])
    assert bad == []
    assert sorted(r.path.name.split(",")[0] for r in runs) == ["arm=baseline"] + ["arm=primary"] * 3


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prereg", "compare", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_csv_parses_back(mixed: Path) -> None:
    out = cli(str(mixed), "--csv")
    assert out.returncode == 0, out.stderr
    frame = pd.read_csv(io.StringIO(out.stdout))
    assert len(frame) == 8 and frame["last_kl"].dtype == float
    assert set(frame["status"]) == {"completed", "failed", "pending"}
    assert frame["reason"].str.contains("x" * 80).any()  # CSV keeps the full reason
    assert frame.loc[frame["arm"] == "baseline", "last_kl"].dropna().tolist() == [0.1]


def test_markdown_has_a_header_row(mixed: Path, capsys) -> None:
    args = Namespace(paths=[str(mixed)], by=None, csv=False, markdown=True, diff=None)
    assert compare_main(args) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| run | arm | cell | status |") and md[0].endswith("|")
    assert set(md[1].replace("|", "").split()) <= {"---", "---:"}
    assert len(md[1].split("|")) == len(md[0].split("|"))
    assert len([line for line in md if line.startswith("| arm=")]) == 8


def test_cli_missing_path_is_one_error_line(mixed: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such*dir"
    bad = cli(str(missing), str(mixed))
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [f"error: paths: {missing} matches no run directory"]


def test_diff_lists_exactly_the_differing_keys(tmp_path: Path) -> None:
    base = {
        "runner": "exp9",
        "arm": {"name": "baseline"},
        "registration": {
            "lr": 0.02,
            "step_cap": 20,
            "thresholds": [0.5, 0.1],
            "cells": {"n4m2": {"n": 4, "m": 2}},
        },
        "exp9": {"chunk_steps": 100},
    }
    other = json.loads(json.dumps(base))
    other["arm"]["name"] = "primary"
    other["registration"]["thresholds"] = [0.5, 0.05]
    other["exp9"]["extra"] = True
    a = make_run(tmp_path, "baseline", "n4m2", config=base)
    b = make_run(tmp_path, "primary", "n4m2", config=other)
    out = cli("--diff", str(a), str(b), "--csv")
    assert out.returncode == 0, out.stderr
    frame = pd.read_csv(io.StringIO(out.stdout), dtype=str)
    assert list(frame["key"]) == ["arm.name", "registration.thresholds.1", "exp9.extra"]
    assert frame.iloc[0, 1:].tolist() == ["baseline", "primary"]
    assert frame.iloc[2, 1:].tolist() == ["<absent>", "true"]


def diff_args(a: Path, b: Path) -> Namespace:
    return Namespace(paths=[], by=None, csv=False, markdown=False, diff=[str(a), str(b)])


def test_diff_identical_and_missing_config(tmp_path: Path, capsys) -> None:
    a = make_run(tmp_path, "baseline", "n4m2", config={"arm": {"name": "baseline"}})
    assert compare_main(diff_args(a, a)) == 0
    assert capsys.readouterr().out.startswith("no differences")
    nocfg = make_run(tmp_path, "secondary", "n4m2")
    assert compare_main(diff_args(a, nocfg)) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "no readable .hydra/config.yaml" in err[0]
    assert compare_main(diff_args(a, tmp_path / "nothing")) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: diff: {tmp_path / 'nothing'} matches no run directory"
    )
