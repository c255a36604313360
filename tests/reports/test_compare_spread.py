"""``compare`` shows how sure a figure is: a Wilson interval beside every eval success rate, and
``--by`` a std and a 95% bootstrap interval of the mean beside each mean (run dirs by hand)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from prereg.core.stats import bootstrap_mean_ci, wilson_interval
from prereg.reports.compare import compare


def ppo_run(sweep: Path, lr: str, seed: int, k: int, with_ci: bool = True) -> Path:
    """A completed experiment=ppo run: summary.json with its final eval (k of 32 episodes)."""
    overrides = [f"ppo.lr={lr}", f"ppo.seed={seed}"]
    d = sweep / ",".join(overrides)
    d.mkdir(parents=True)
    job = {"choices": {"experiment": "ppo"}, "overrides": overrides}
    run = {"status": "completed", "experiment": "ppo", "wall_seconds": 1.0, "job": job}
    (d / "run.json").write_text(json.dumps(run))
    ev = {"seed_start": 10000, "n_seeds": 32, "success_rate": k / 32, "mean_return": 1.0}
    if with_ci:  # evals written before intervals had none: compare computes it from the count
        ev |= {"n_success": k, "success_ci95": list(wilson_interval(k, 32))}
    (d / "summary.json").write_text(json.dumps({"experiment": "ppo", "evaluation": ev}))
    return d


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    for seed, k in enumerate((10, 14, 20)):
        ppo_run(tmp_path, "0.0003", seed, k)
    ppo_run(tmp_path, "0.0001", 0, 30, with_ci=False)
    return tmp_path


def test_every_eval_rate_has_its_wilson_interval(sweep: Path) -> None:
    frame = pd.read_csv(io.StringIO(compare([str(sweep)], fmt="csv")))
    cols = list(frame.columns)
    i = cols.index("evaluation.success_rate")
    assert cols[i + 1] == "evaluation.success_ci95"
    cis = dict(zip(frame["ppo.lr"].astype(str) + "/" + frame["ppo.seed"].astype(str),
                   frame["evaluation.success_ci95"], strict=True))  # fmt: skip
    assert json.loads(cis["0.0001/0"]) == pytest.approx(list(wilson_interval(30, 32)))
    assert json.loads(cis["0.0003/1"]) == pytest.approx(list(wilson_interval(14, 32)))
    text = compare([str(sweep)])
    lo, hi = wilson_interval(30, 32)
    assert f"[{lo:.4g}, {hi:.4g}]" in text


def test_by_reports_std_and_an_interval_of_the_mean(sweep: Path) -> None:
    frame = pd.read_csv(io.StringIO(compare([str(sweep)], by="ppo.lr", fmt="csv")))
    row = frame.set_index("ppo.lr").loc[0.0003]
    rates = [10 / 32, 14 / 32, 20 / 32]
    assert row["mean(evaluation.success_rate)"] == pytest.approx(sum(rates) / 3)
    assert row["std(evaluation.success_rate)"] == pytest.approx(pd.Series(rates).std())
    lo, hi = json.loads(row["ci95(evaluation.success_rate)"])
    assert (lo, hi) == pytest.approx(bootstrap_mean_ci(rates)) and lo < sum(rates) / 3 < hi
    single = frame.set_index("ppo.lr").loc[0.0001]
    assert pd.isna(single["std(evaluation.success_rate)"])  # one run: no spread to show
    assert pd.isna(single["ci95(evaluation.success_rate)"])
