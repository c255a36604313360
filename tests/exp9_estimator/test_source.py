"""A bad ``source_sweep`` is refused with one line naming the key, before any compute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli

from prereg.core.errors import ConfigError
from prereg.exp9_estimator.source import check_source

CELLS = {"n4m2": {"n": 4, "m": 2}, "n5m2": {"n": 5, "m": 2}}
LAMBDAS = {"baseline": 0.0, "primary": 0.01}


def fake_sweep(root: Path, name: str = "exp9_v1", skip: int = 0, status: str = "completed"):
    """An exp9 sweep's run files (no metrics): every (arm, cell) but the last ``skip``."""
    keys = [(a, c) for c in CELLS for a in LAMBDAS]
    for i, (arm, cell) in enumerate(keys[: len(keys) - skip]):
        d = root / f"arm={arm},cell={cell}"
        d.mkdir(parents=True)
        last = i == len(keys) - skip - 1
        record = {
            "experiment": "exp9",
            "status": status if last else "completed",
            "registration_hash": "h1",
            "job": {"choices": {"arm": arm, "cell": cell}},
        }
        (d / "run.json").write_text(json.dumps(record))
        (d / "registration.json").write_text(
            json.dumps({"name": name, "cells": CELLS, "lambdas": LAMBDAS})
        )
    return root


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: None, "required"),
        (lambda p: str(p / "nowhere"), "no such folder"),
        (lambda p: str(p), "holds no exp9 run"),
        (lambda p: str(fake_sweep(p / "s", name="exp9_v2")), "not 'exp9_v1'"),
        (lambda p: str(fake_sweep(p / "s", skip=1)), "incomplete: 3 of 4"),
        (lambda p: str(fake_sweep(p / "s", status="failed")), "n5m2 failed"),
    ],
)
def test_bad_source_is_refused_in_one_line(tmp_path: Path, make, says: str):
    with pytest.raises(ConfigError) as err:
        check_source(make(tmp_path), "exp9_v1")
    msg = str(err.value)
    assert msg.startswith("source_sweep: ") and says in msg and "\n" not in msg


def test_a_complete_sweep_passes(tmp_path: Path):
    src = check_source(str(fake_sweep(tmp_path / "s")), "exp9_v1")
    assert sorted(src.runs) == sorted((a, c) for c in CELLS for a in LAMBDAS)


def test_the_command_line_refuses_before_any_job(tmp_path: Path):
    bad = fake_sweep(tmp_path / "s", skip=1)
    out = tmp_path / "est"
    proc = run_cli(
        "-m", "experiment=exp9_estimator", f"source_sweep={bad}", f"hydra.sweep.dir={out}"
    )
    assert proc.returncode != 0
    assert "source_sweep: " in proc.stderr and "incomplete" in proc.stderr
    assert not any(out.glob("*/run.json"))
