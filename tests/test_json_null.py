"""NaN is ``null`` in JSON: prereg's one JSON writer turns NaN/inf into null (standard JSON,
no ``"nan"`` strings), and the readers take null (and the strings of older files) as NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from prereg.core.atomic import atomic_write_json, read_json
from prereg.ppo import ladder_verdict


def test_nan_and_inf_are_written_as_null_everywhere_in_the_object(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_json(
        path,
        {
            "success_rate": float("nan"),
            "final": {"value_loss": np.float32("inf"), "entropy": np.float64(-np.inf)},
            "curve": [1.0, float("nan")],
            "array": np.array([np.nan, 2.0]),
            "fine": np.float32(0.5),
        },
    )
    text = path.read_text()
    assert "nan" not in text.lower() and "inf" not in text.lower()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert data == {
        "success_rate": None,
        "final": {"value_loss": None, "entropy": None},
        "curve": [1.0, None],
        "array": [None, 2.0],
        "fine": 0.5,
    }
    assert read_json(path) == data


@pytest.mark.parametrize("stored", [None, "nan"])  # today's null, and older files' string
def test_the_ladder_reads_a_null_figure_as_nan(tmp_path, stored):
    ev = {"seed_start": 10000, "n_seeds": 4, "success_rate": 0.5, "mean_steps": 10.0}
    ev |= {"mean_terminal_alignment": stored, "mean_return": 1.0}
    read = ladder_verdict._evaluation(ev)
    assert read is not None and math.isnan(read["mean_terminal_alignment"])
    assert read["success_rate"] == 0.5 and ladder_verdict._evaluation(None) is None


def test_best_state_lists_a_run_whose_eval_holds_null(tmp_path):
    from prereg.core.rundirs import load_run

    run = tmp_path / "run"
    ev = {"seed_start": 10000, "n_seeds": 32, "success_rate": 0.25, "mean_steps": 10.0}
    ev |= {"mean_terminal_alignment": float("nan"), "mean_return": 1.0}
    atomic_write_json(run / "logs" / "evaluation_seed_10000.json", ev)
    atomic_write_json(run / "run.json", {"status": "completed", "experiment": "ppo"})
    atomic_write_json(run / "summary.json", {"experiment": "ppo", "updates": 3, "env_steps": 9})
    states = ladder_verdict.collect_states([load_run(run)], 10000, 32)
    assert len(states) == 1 and states[0]["success_rate"] == 0.25
    assert math.isnan(states[0]["mean_terminal_alignment"])
    pa = ladder_verdict.path_a([load_run(run)], 10000, 32)
    text = "\n".join(ladder_verdict.render_path_a(pa))
    assert "0.250" in text  # renders (the old "nan" string crashed its number formatting)
    report, status = ladder_verdict.best_state_report([run], as_json=True)
    assert status == 0 and json.loads(report)["best"]["mean_terminal_alignment"] is None
