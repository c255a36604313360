"""One preflight: the command line is parsed and its jobs expanded once, and that one plan feeds
validation, the output-directory check, the study's sweep order and ``sweep.json``; a sweeper
other than Hydra's basic one (``hydra/sweeper=prereg_random``) goes through the same checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli
from hydra.core.override_parser.overrides_parser import OverridesParser

from hydra_plugins.prereg_sweepers.random_search import draw_jobs
from prereg.sweep import app, overrides, precheck, preflight


@pytest.fixture
def counted(monkeypatch):
    """Count how often the command line is parsed and its jobs expanded."""
    calls = {"parse_overrides": 0, "split_jobs": 0, "parse_args": 0}
    where = {"parse_overrides": overrides, "split_jobs": overrides, "parse_args": precheck}
    for name, module in where.items():
        real = getattr(module, name)

        def wrapper(*a, _real=real, _name=name, **k):
            calls[_name] += 1
            return _real(*a, **k)

        monkeypatch.setattr(module, name, wrapper)
    app.setup()
    return calls


def test_a_ladder_sweep_is_planned_once_for_every_check(counted, tmp_path: Path, capsys):
    sweep = tmp_path / "ladder"
    (sweep / "old").mkdir(parents=True)  # an existing sweep dir: its registrations are checked
    argv = ["-m", "experiment=ppo_ladder", "candidate=glob(*)", "tier=small",
            f"hydra.sweep.dir={sweep}"]  # fmt: skip
    assert app.preflight(argv) is None
    assert counted == {"parse_overrides": 1, "split_jobs": 1, "parse_args": 1}
    plan = preflight.current(["experiment=ppo_ladder", "candidate=lr1e4,vc0_25,ec0_001,clip0_1",
                              "tier=small"])  # fmt: skip
    assert plan is not None and plan.basic and len(plan.jobs) == 4
    assert "candidate values in registered order: lr1e4, vc0_25, ec0_001, clip0_1" in (
        capsys.readouterr().out
    )


def test_bad_input_is_found_by_the_same_single_plan(counted, capsys):
    assert app.preflight(["-m", "arm=baseline,bogus", "cell=n4m2"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: arm: unknown option 'bogus'")
    assert counted["parse_overrides"] == 1 and counted["split_jobs"] == 1


def test_another_sweeper_has_no_jobs_up_front_but_every_bound_is_checked(counted, capsys):
    argv = ["-m", "hydra/sweeper=prereg_random", "registration.lr=interval(0.01, 0.05)",
            "arm=baseline,primary"]  # fmt: skip
    assert app.preflight(argv) is None
    plan = preflight.current(["registration.lr=interval(0.01, 0.05)", "arm=baseline,primary"])
    assert plan is not None and plan.sweeper == "prereg_random" and plan.jobs is None
    probes = sorted(sorted(o for o in job if not o.startswith("hydra")) for job in plan.probes)
    assert probes == [
        ["arm=baseline", "registration.lr=0.01"],
        ["arm=baseline", "registration.lr=0.05"],
        ["arm=primary", "registration.lr=0.01"],
    ]
    assert counted["split_jobs"] == 0  # nothing to enumerate for a sampling sweeper
    bad = ["-m", "hydra/sweeper=prereg_random", "registration.lr=interval(0.01, -0.05)"]
    assert app.preflight(bad) == 2
    assert capsys.readouterr().err.strip() == "error: registration.lr: must be > 0, got -0.05"


def test_an_interval_without_a_sampling_sweeper_is_refused_in_one_line(capsys):
    app.setup()
    assert app.preflight(["-m", "registration.lr=interval(0.01, 0.05)"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: registration.lr: 'registration.lr=interval(0.01, 0.05)' is ")
    assert "hydra/sweeper=" in err and "\n" not in err


def test_random_search_draws_are_seeded_and_in_bounds():
    parsed = OverridesParser.create().parse_overrides(
        ["a=tag(log, interval(1e-5, 1e-3))", "b=interval(0, 10)", "c=x,y,z", "d=1"]
    )
    jobs = draw_jobs(parsed, 50, seed=3)
    assert jobs == draw_jobs(parsed, 50, seed=3) and jobs != draw_jobs(parsed, 50, seed=4)
    for job in jobs:
        values = dict(o.split("=", 1) for o in job)
        assert 1e-5 <= float(values["a"]) <= 1e-3 and 0 <= float(values["b"]) <= 10
        assert values["c"] in "xyz" and values["d"] == "1"
    # log-uniform: about half the draws lie below the geometric midpoint 1e-4
    below = sum(float(dict(o.split("=", 1) for o in j)["a"]) < 1e-4 for j in jobs)
    assert 15 <= below <= 35


@pytest.mark.slow
def test_a_random_search_sweep_runs_through_run_py(tmp_path: Path):
    sweep = tmp_path / "search"
    proc = run_cli(
        "-m", "hydra/sweeper=prereg_random", "hydra.sweeper.n_trials=2", "hydra.sweeper.seed=1",
        "registration.lr=tag(log, interval(0.005, 0.05))", "cell=n4m2",
        "registration.step_cap=3", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted(p for p in sweep.iterdir() if (p / "run.json").exists())
    assert len(runs) == 2
    for run in runs:
        assert json.loads((run / "run.json").read_text())["status"] == "completed"
    manifest = json.loads((sweep / "sweep.json").read_text())
    assert manifest["sweeper"] == "prereg_random" and manifest["jobs"] is None
    assert (sweep / "verdict.json").exists()
