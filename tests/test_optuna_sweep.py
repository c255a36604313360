"""``hydra/sweeper=optuna``: trials are prereg jobs labelled exploratory, never registered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli

from prereg.core.exploration import label, mark
from prereg.core.rundirs import RunInfo
from prereg.ppo.ladder_verdict import _exploratory, write_verdict

TINY_PPO = [
    "experiment=ppo", "tier=small", "ppo.num_envs=8", "ppo.num_steps=16",
    "ppo.num_minibatches=2", "ppo.update_epochs=1", "ppo.chunk_updates=2", "ppo.eval_every=2",
    "ppo.updates=2", "ppo.eval_seeds=4", "ppo.progress=off",
]  # fmt: skip
SEARCH = [
    "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=3",
    "hydra.sweeper.objective=evaluation.mean_return", *TINY_PPO,
    "ppo.lr=tag(log, interval(1e-5, 1e-3))", "ppo.clip_range=choice(0.1, 0.2, 0.3)",
]  # fmt: skip


def runs_of(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if (p / "run.json").exists())


@pytest.mark.slow
def test_a_three_trial_optuna_sweep_runs_resumes_and_the_ladder_verdict_refuses_it(tmp_path):
    sweep = tmp_path / "search"
    proc = run_cli(*SEARCH, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = runs_of(sweep)
    assert len(runs) == 3
    study = json.loads((sweep / "optuna.json").read_text())
    assert study["objective"] == "evaluation.mean_return" and study["direction"] == "maximize"
    assert [t["state"] for t in study["trials"]] == ["COMPLETE"] * 3
    for trial in study["trials"]:
        run = Path(trial["job_dir"])
        record = json.loads((run / "run.json").read_text())
        assert record["status"] == "completed"
        assert record["exploratory"] == {"sweeper": "optuna"}
        summary = json.loads((run / "summary.json").read_text())
        assert trial["value"] == summary["evaluation"]["mean_return"]  # the named figure
        assert 1e-5 <= trial["params"]["ppo.lr"] <= 1e-3
        assert trial["params"]["ppo.clip_range"] in {"0.1", "0.2", "0.3"}
        assert summary["hparams"]["lr"] == trial["params"]["ppo.lr"]
    best = max(study["trials"], key=lambda t: t["value"])
    assert study["best"] == best

    # the same command again resumes the study: nothing is redone
    again = run_cli(*SEARCH, f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "optuna: 3 of 3 trials done" in again.stderr + again.stdout
    assert runs_of(sweep) == runs
    assert all(json.loads((r / "run.json").read_text())["attempts"] == 1 for r in runs)

    text = write_verdict(sweep)
    assert "**REFUSED**" in text
    assert json.loads((sweep / "verdict.json").read_text())["decision"]["outcome"] == "refused"


def test_labelled_runs_make_a_ladder_verdict_exploratory_even_beside_registered_ones(tmp_path):
    reg = {"variant": "reward_phase3", "tier": "large", "updates": 1221}
    registered = {"variant": "reward_phase3", "tier": "large", "segment": {"target_update": 1221}}
    status = {"differing_constants": []}
    runs = [RunInfo(tmp_path / "a", {"status": "completed"}, registered)]
    assert _exploratory(runs, reg, status) == {"is": False, "why": ""}
    runs.append(RunInfo(tmp_path / "b", {"status": "completed", **label("optuna")}, registered))
    assert _exploratory(runs, reg, status) == {"is": True, "why": "runs of hydra/sweeper=optuna"}


def test_the_label_and_the_mark():
    assert label("basic") == {} and label(None) == {}
    assert label("prereg_random") == {"exploratory": {"sweeper": "prereg_random"}}
    explore = {"is": True, "why": "step_cap 100"}
    records = [None, {"status": "completed"}, label("optuna"), label("optuna")]
    assert mark(explore, records) == {
        "is": True,
        "why": "runs of hydra/sweeper=optuna, step_cap 100",
    }
    assert mark({"is": False, "why": ""}, [{}, None]) == {"is": False, "why": ""}


def test_bad_sweeper_values_are_one_line_before_anything_is_written(tmp_path):
    for override, expected in [
        ("hydra.sweeper.direction=up", "error: hydra.sweeper.direction: unknown value 'up' "
         "(allowed: maximize, minimize)"),
        ("hydra.sweeper.n_trials=0", "error: hydra.sweeper.n_trials: must be an integer >= 1, "
         "got 0"),
    ]:  # fmt: skip
        proc = run_cli(*SEARCH, override, f"hydra.sweep.dir={tmp_path / 'bad'}")
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [expected]
        assert not (tmp_path / "bad").exists()
