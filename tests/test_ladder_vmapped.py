"""``ladder.mode=vmapped``: one job trains every Path-B candidate (and the control) in one jitted
program and writes the run directories, grades and verdict a ladder sweep writes; candidate k
follows its separate run; a killed job resumes; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_refused_in_one_line, prereg_cli, run_cli, sibling_module

from prereg.training.checkpoints import load_checkpoint

CANDIDATES = ["lr1e4", "vc0_25", "ec0_001", "clip0_1"]  # registered order
TINY = [
    "tier=small", "ppo.num_envs=16", "ppo.num_steps=32", "ppo.num_minibatches=4",
    "ppo.update_epochs=2", "ppo.progress=off", "ppo.updates=4", "ppo.chunk_updates=2",
]  # fmt: skip
GATES = [
    "registration.stage2.window=2", "registration.stage1.min_success_rate=0.0",
    "registration.stage2.max_log_std_delta=1", "registration.stage2.max_value_loss=1e9",
    "registration.stage3.max_abs_gap=1", "registration.stage2.max_final_entropy=100",
]  # fmt: skip
PROGRAM = ["experiment=ppo_ladder", "ladder.mode=vmapped", "ladder.control=true", *TINY, *GATES]


def run_into(out: Path, *args: str) -> Path:
    proc = run_cli(*args, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    return run_into(tmp_path_factory.mktemp("vmapped") / "program", *PROGRAM)


def metrics(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "metrics.csv").drop(columns="sps")


@pytest.mark.slow
def test_one_job_writes_every_candidates_run_dir_grade_and_the_verdict(program):
    for name in [*CANDIDATES, "control"]:
        run = program / f"candidate={name}"
        record = json.loads((run / "run.json").read_text())
        assert (record["status"], record["experiment"]) == ("completed", "ppo_ladder"), name
        assert record["job"]["choices"]["candidate"] == name
        for f in (
            "registration.json", "metrics.csv", "checkpoints/final", "checkpoints/best",
            "logs/evaluation_seed_10000.json", "logs/evaluation_seed_20000.json",
            "policies/policy.npz",
        ):  # fmt: skip
            assert (run / f).exists(), f"{name}: {f}"
        assert list(metrics(run)["update"]) == [1, 2, 3, 4]
        summary = json.loads((run / "summary.json").read_text())
        assert summary["ladder_mode"] == "vmapped" and summary["grade"]["passed"] is True
        assert summary["candidate"] == name
    lr = json.loads((program / "candidate=lr1e4" / "summary.json").read_text())
    assert lr["hparams"]["lr"] == pytest.approx(1e-4)
    rows = pd.read_csv(program / "metrics.csv")
    assert list(rows.columns[:3]) == ["update", "candidate", "seed"]
    assert list(rows["candidate"][:5]) == [*CANDIDATES, "control"]

    v = json.loads((program / "verdict.json").read_text())
    assert v["decision"]["adopted"] == "lr1e4" and v["modes"] == ["vmapped"]
    assert [r["candidate"] for r in v["candidates"]] == CANDIDATES  # the control is no candidate
    assert v["control"]["graded"] and "never" not in v["decision"]["sentence"]
    md = (program / "verdict.md").read_text()
    assert "ladder.mode=vmapped: every candidate trained at once" in md
    assert (
        "## Control: the registered set-up at the default hparams (reported, never adopted)" in md
    )
    assert (program / "plots" / "ladder_stages.png").stat().st_size > 0
    summary = json.loads((program / "summary.json").read_text())
    assert summary["members"] == 5 and set(summary["candidates"]) == {*CANDIDATES, "control"}
    again = prereg_cli("verdict", str(program))  # the CLI regrades the same runs
    assert again.returncode == 0, again.stderr
    assert json.loads((program / "verdict.json").read_text())["decision"] == v["decision"]
    status = prereg_cli("status", str(program))
    assert status.returncode == 0, status.stdout
    assert "6 run directories found" in status.stdout and " 6 completed" in status.stdout


@pytest.mark.slow
def test_candidate_k_follows_its_separate_run_and_the_control_the_default_hparams(
    program, tmp_path
):
    separate = run_into(tmp_path / "vc", "experiment=ppo_ladder", "candidate=vc0_25", *TINY, *GATES)
    plain = run_into(tmp_path / "plain", "experiment=ppo", "variant=mixed_0_90", *TINY)
    for ours, theirs in (
        (program / "candidate=vc0_25", separate),
        (program / "candidate=control", plain),
    ):
        a, b = metrics(ours), metrics(theirs)
        assert list(a.columns) == list(b.columns)
        # batched matmuls may sum in another order: equal to float tolerance
        np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=2e-4, atol=1e-6)
        ea = json.loads((ours / "logs" / "evaluation_seed_10000.json").read_text())
        eb = json.loads((theirs / "logs" / "evaluation_seed_10000.json").read_text())
        assert ea["n_success"] == eb["n_success"]
        assert ea["mean_return"] == pytest.approx(eb["mean_return"], rel=1e-3)
    summary = json.loads((separate / "summary.json").read_text())
    ours = json.loads((program / "candidate=vc0_25" / "summary.json").read_text())
    assert ours["hparams"] == summary["hparams"]
    assert ours["grade"]["passed"] == summary["grade"]["passed"]


@pytest.mark.slow
def test_a_killed_vmapped_job_resumes_and_ends_like_an_uninterrupted_one(program, tmp_path):
    ppo_run = sibling_module(__file__, "test_ppo_run")
    victim = tmp_path / "victim"
    ppo_run.kill_then_resume(PROGRAM, victim)
    pd.testing.assert_frame_equal(metrics(program), metrics(victim), check_exact=True)
    for name in [*CANDIDATES, "control"]:
        a, b = (d / f"candidate={name}" for d in (program, victim))
        pd.testing.assert_frame_equal(metrics(a), metrics(b), check_exact=True)
        fa, _ = load_checkpoint(a / "checkpoints" / "final")
        fb, _ = load_checkpoint(b / "checkpoints" / "final")
        for key in fa:
            np.testing.assert_array_equal(fa[key], fb[key], err_msg=f"{name}: {key}")
        assert json.loads((b / "run.json").read_text())["attempts"] == 2
    assert (victim / "verdict.md").exists()


@pytest.mark.slow
def test_a_candidate_going_nonfinite_fails_alone_and_the_job_exits_1(tmp_path):
    out = tmp_path / "program"
    proc = run_cli(
        "experiment=ppo_ladder", "ladder.mode=vmapped", *TINY, *GATES, "ppo.chunk_updates=1",
        "registration.candidates.lr1e4.set.lr=20", f"hydra.run.dir={out}",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("error: run failed: NonFiniteError: 1 of 4 candidates went non-finite (lr1e4;")
    )
    record = json.loads((out / "candidate=lr1e4" / "run.json").read_text())
    assert record["status"] == "failed"
    assert record["reason"].startswith("NonFiniteError: non-finite value at step ")
    bad = int(record["reason"].split("at step ")[1].split()[0])
    assert list(metrics(out / "candidate=lr1e4")["update"]) == list(range(1, bad))
    for name in CANDIDATES[1:]:  # the others trained on to the end and were graded
        run = out / f"candidate={name}"
        assert json.loads((run / "run.json").read_text())["status"] == "completed", name
        assert list(metrics(run)["update"]) == [1, 2, 3, 4]
    v = json.loads((out / "verdict.json").read_text())
    row = next(r for r in v["candidates"] if r["candidate"] == "lr1e4")
    assert row["result"] == "not graded" and v["decision"]["adopted"] is None
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["ladder.mode=vmapped", "candidate=lr1e4"],
            "candidate: ladder.mode=vmapped trains every registered candidate in one job; "
            "drop candidate=lr1e4",
        ),
        (
            ["candidate=lr1e4", "ladder.control=true"],
            "ladder.control: a control job trains the default hparams, not candidate lr1e4",
        ),
        (
            ["ladder.mode=vmapped", "ppo.backend=gymnasium"],
            "ppo.backend: ladder.mode=vmapped needs the jitted trainer (got gymnasium) "
            "(allowed: jax)",
        ),
    ],
)
def test_vmapped_bad_input_is_one_line(tmp_path, args, expected):
    assert_refused_in_one_line(
        tmp_path / "run", "experiment=ppo_ladder", *args, starts=f"error: {expected}"
    )
