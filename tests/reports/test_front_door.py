"""What `verdict`, `status` and `compare` do with folders that are not a sweep (a date folder of
several sweeps, `outputs`), `compare --by` over runs of two registrations, and `compare --diff`
resolving a group choice to its registered values.  Run directories are fabricated."""

from __future__ import annotations

import io
import json
from argparse import Namespace
from pathlib import Path

import pandas as pd
import pytest
from helpers import prereg_cli

from prereg.core.registration import load_registered, registration_hash
from prereg.core.rundirs import folder_kind, not_a_sweep_message, sweep_dirs_under
from prereg.reports.compare import compare, compare_main, diff_table

REG = load_registered("exp9_v1")


def exp9_run(sweep: Path, arm: str, cell: str = "n4m2", reg: dict = REG, kl: float = 0.1) -> Path:
    """A completed exp9 run dir with run.json, registration.json, summary and composed config."""
    d = sweep / f"arm={arm},cell={cell}"
    (d / ".hydra").mkdir(parents=True)
    run = {
        "status": "completed",
        "experiment": "exp9",
        "registration": reg["name"],
        "registration_hash": registration_hash(reg),
        "wall_seconds": 1.0,
        "job": {
            "choices": {"experiment": "exp9", "arm": arm, "cell": cell, "registration": "exp9_v1"},
            "overrides": [f"arm={arm}", f"cell={cell}"],
        },
    }
    (d / "run.json").write_text(json.dumps(run))
    (d / "registration.json").write_text(json.dumps(reg))
    summary = {"experiment": "exp9", "arm": arm, "cell": cell, "last_kl": kl}
    (d / "summary.json").write_text(json.dumps(summary))
    config = {"runner": "exp9", "registration": reg, "arm": {"name": arm}, "cell": {"name": cell}}
    (d / ".hydra" / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    return d


@pytest.fixture
def date_folder(tmp_path: Path) -> Path:
    """outputs/multirun/<date>/ with two sweeps (<time>/) in it, and nothing else."""
    date = tmp_path / "outputs" / "multirun" / "2026-11-30"
    for time in ("10-00-00", "11-00-00"):
        for arm in ("baseline", "primary"):
            exp9_run(date / time, arm)
        (date / time / "sweep.json").write_text("{}")
    return date


def listing(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_folder_kinds(date_folder: Path) -> None:
    sweep = date_folder / "10-00-00"
    assert folder_kind(sweep) == "sweep"
    assert folder_kind(sweep / "arm=primary,cell=n4m2") == "run"
    assert folder_kind(date_folder) is None
    assert folder_kind(date_folder.parents[1]) is None  # outputs
    assert sweep_dirs_under(date_folder.parents[1]) == [sweep, date_folder / "11-00-00"]
    assert not_a_sweep_message("sweep_dir", sweep) is None


@pytest.mark.parametrize("command", ["verdict", "status", "compare"])
@pytest.mark.parametrize("which", ["date", "outputs"])
def test_a_folder_holding_no_sweep_is_refused_in_one_line_and_nothing_is_written(
    date_folder: Path, command: str, which: str
) -> None:
    target = date_folder if which == "date" else date_folder.parents[1]
    before = listing(target)
    out = prereg_cli(command, str(target))
    assert out.returncode == 2
    assert out.stdout == ""
    arg = "paths" if command == "compare" else "sweep_dir"
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {arg}: {target} holds no prereg sweep or run (hint: ")
    assert str(date_folder / "10-00-00") in lines[0] and str(date_folder / "11-00-00") in lines[0]
    assert listing(target) == before  # no verdict.md, verdict.json or plots/


def test_an_empty_folder_is_refused_too(tmp_path: Path) -> None:
    out = prereg_cli("verdict", str(tmp_path))
    assert out.returncode == 2 and list(tmp_path.iterdir()) == []
    assert out.stderr.strip() == (
        f"error: sweep_dir: {tmp_path} holds no prereg sweep or run "
        "(no run.json or sweep.json found under it)"
    )


def test_a_glob_matching_a_date_folder_is_refused_and_sweeps_still_work(
    date_folder: Path, capsys
) -> None:
    multirun = date_folder.parent
    exp9_run(multirun / "quick", "baseline")
    args = Namespace(paths=[str(multirun / "*")], by=None, csv=False, markdown=False, diff=None)
    assert compare_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: paths: {date_folder} holds no prereg sweep or run")
    assert "quick" not in compare([str(date_folder / "*")])  # <date>/* are sweeps: fine
    assert "arm=primary" in compare([str(date_folder / "*")])


def test_compare_by_never_pools_two_registrations_and_warns(tmp_path: Path, capsys) -> None:
    short = {**REG, "step_cap": 200}
    for arm in ("baseline", "primary"):
        exp9_run(tmp_path / "full", arm, kl=0.01)
        exp9_run(tmp_path / "quick", arm, reg=short, kl=0.5)
    args = Namespace(paths=[str(tmp_path / "*")], by="arm", csv=True, markdown=False, diff=None)
    assert compare_main(args) == 0
    out = capsys.readouterr()
    frame = pd.read_csv(io.StringIO(out.out), dtype={"registration": str})
    assert list(frame.columns[:3]) == ["arm", "registration", "runs"]
    assert len(frame) == 4 and set(frame["runs"]) == {1}
    full, quick = registration_hash(REG), registration_hash(short)
    means = {(r.arm, r.registration): r["mean(last_kl)"] for _, r in frame.iterrows()}
    assert means == {(a, h): kl for a in ("baseline", "primary")
                     for h, kl in ((full, 0.01), (quick, 0.5))}  # fmt: skip
    warning = out.err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: these runs span 2 registrations")
    assert full in warning[0] and quick in warning[0] and "in step_cap" in warning[0]


def test_compare_by_one_registration_has_no_warning(tmp_path: Path, capsys) -> None:
    for arm in ("baseline", "primary"):
        exp9_run(tmp_path, arm)
    args = Namespace(paths=[str(tmp_path)], by="arm", csv=False, markdown=False, diff=None)
    assert compare_main(args) == 0
    out = capsys.readouterr()
    assert out.err == "" and registration_hash(REG) in out.out


def test_diff_resolves_the_arm_to_its_registered_lambda(tmp_path: Path) -> None:
    a, b = exp9_run(tmp_path, "primary"), exp9_run(tmp_path, "baseline")
    rows = {r[0]: r[1:] for r in diff_table(a, b).rows}
    assert rows["arm.name"] == ["primary", "baseline"]
    assert rows["registration.lambdas[arm]"] == ["0.01", "0.0"]
    assert list(rows)[:2] == ["arm.name", "registration.lambdas[arm]"]
    assert not any(k.startswith("registration.cells") for k in rows)  # same cell: no row
    c = exp9_run(tmp_path, "primary", cell="n5m3")
    rows = {r[0]: r[1:] for r in diff_table(a, c).rows}
    assert rows["registration.cells[cell].n"] == ["4", "5"]
    assert "registration.lambdas[arm]" not in rows
