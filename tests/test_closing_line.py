"""A single run ends by printing one line on stdout: its directory, status and headline figures.

``run <dir>: completed — <headline>`` where the headline is the study's ``Experiment.headline``
of its summary (exp9: final KL and rho; PPO: eval success; see tests/test_ppo_run.py); a study
without one prints the directory and status only; a multirun job prints no such line.
"""

from __future__ import annotations

import json
import math

import pytest
from helpers import run_cli

from prereg.core.atomic import atomic_write_json
from prereg.core.experiment import Experiment
from prereg.exp9.experiment import headline as exp9_headline
from prereg.ppo.experiment import eval_headline
from prereg.ppo.experiment import headline as ppo_headline
from prereg.sweep import dispatch


def closing_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("run ")]


@pytest.mark.slow
def test_an_exp9_single_run_ends_with_its_folder_final_kl_and_rho(tmp_path):
    out = tmp_path / "exp9"
    args = ["arm=primary", "cell=n4m2", "registration.step_cap=40", f"hydra.run.dir={out}"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    lines = closing_lines(proc.stdout)
    assert lines == [f"run {out}: completed — {exp9_headline(summary)}"], proc.stdout
    assert lines[0].split(" — ")[1].startswith(f"final KL {summary['last_kl']:.4g}, rho ")
    # a completed run is not redone, and says so in the same line
    again = run_cli(*args)
    assert again.returncode == 0 and closing_lines(again.stdout) == lines


@pytest.mark.slow
def test_a_single_run_that_halts_says_so_and_exits_1(tmp_path):
    """A halted run did not complete: its line says halted and why, and the status is 1."""
    out = tmp_path / "halt"
    proc = run_cli(
        "arm=primary",
        "cell=n4m2",
        "registration.step_cap=20",
        "registration.gates.halt_gap=0.9",  # the spectral gap is below this at step 0
        f"hydra.run.dir={out}",
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert closing_lines(proc.stdout) == [
        f"run {out}: halted — RunHalted: P4 check(s) gap out of tolerance at step 0"
    ]
    assert json.loads((out / "run.json").read_text())["status"] == "halted"


def test_the_headlines_read_a_summary():
    exp9 = {"last_kl": 0.0123456, "last_rho": 1.5, "last_step": 1999.0}
    exp9 |= {"median_kl": 0.02, "median_rho": 1.25}
    assert exp9_headline(exp9) == (
        "final KL 0.01235, rho 1.5 at step 1999 (final-window medians: KL 0.02, rho 1.25)"
    )
    ev = {"seed_start": 20000, "n_seeds": 32, "success_rate": 0.40625, "mean_return": 12.345678}
    assert ppo_headline({"evaluation": ev}) == (
        "eval success 13/32 = 0.406 at seed_start 20000, mean return 12.35"
    )
    graded = {"evaluation": ev, "grade": {"passed": False, "failed_stage": 2}}
    assert ppo_headline(graded).endswith("; Path-B stages: failed stage 2")
    # NaN is null in JSON: a figure that is null reads "nan", never a crash
    assert "mean return nan" in ppo_headline({"evaluation": {**ev, "mean_return": None}})
    note = "wrote /x/logs/evaluation_seed_20000.json"
    assert eval_headline({"evaluation": ev, "evaluation_note": note}).endswith(f"; {note}")


def test_a_study_without_a_headline_prints_its_folder_and_status(tmp_path, monkeypatch):
    study = Experiment(name="plain", config=object, run=lambda cfg, d: {})
    broken = Experiment(name="broken", config=object, run=lambda cfg, d: {}, headline=math.sqrt)
    table = {"plain": study, "broken": broken}
    monkeypatch.setattr(dispatch, "get_experiment", lambda name, key="experiment": table[name])
    atomic_write_json(tmp_path / "run.json", {"status": "completed"})
    assert dispatch.closing_line("plain", tmp_path, {"x": 1}) == f"run {tmp_path}: completed"
    # a headline that cannot read the summary never fails the finished run
    assert dispatch.closing_line("broken", tmp_path, {"x": 1}) == f"run {tmp_path}: completed"


@pytest.mark.slow
def test_a_multirun_job_prints_no_closing_line(tmp_path):
    proc = run_cli(
        "-m", "arm=primary", "cell=n4m2", "registration.step_cap=20",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert closing_lines(proc.stdout) == []
