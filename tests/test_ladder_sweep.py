"""The Path-B ladder end to end through run.py: tiny multiruns whose outcome is fixed in advance
by command-line registration overrides (so the verdict flags them as not the registered
constants), both ladder modes, the verdict files, best-state, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import prereg_cli, run_cli

CANDIDATES = ["lr1e4", "vc0_25", "ec0_001", "clip0_1"]  # registered order
TINY = [
    "tier=small", "ppo.num_envs=16", "ppo.num_steps=32", "ppo.num_minibatches=4",
    "ppo.update_epochs=2", "ppo.progress=off",
]  # fmt: skip
GATES = [
    "ppo.updates=3", "registration.stage2.window=2", "registration.stage1.min_success_rate=0.0",
    "registration.stage2.max_log_std_delta=1", "registration.stage2.max_value_loss=1e9",
    "registration.stage3.max_abs_gap=1",
    # the override-named job dirs would exceed 255 characters: name them by candidate
    "hydra.sweep.subdir=${candidate.name}",
]  # fmt: skip
PASS_ALL = "registration.stage2.max_final_entropy=100"  # every candidate passes
FAIL_STAGE2 = "registration.stage2.max_final_entropy=0"  # every candidate fails Stage 2


def ladder(out: Path, mode: str, gate: str) -> Path:
    proc = run_cli(
        "-m", "experiment=ppo_ladder", "candidate=glob(*)", f"ladder.mode={mode}",
        *TINY, *GATES, gate, f"hydra.sweep.dir={out}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "# PPO Path-B ladder verdict" in proc.stdout
    return out


def verdict(sweep: Path) -> dict:
    return json.loads((sweep / "verdict.json").read_text())


def run_record(sweep: Path, name: str) -> dict:
    return json.loads((sweep / name / "run.json").read_text())


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> Path:
    return ladder(tmp_path_factory.mktemp("ladder") / "seq", "sequential", PASS_ALL)


@pytest.fixture(scope="module")
def parallel(tmp_path_factory) -> Path:
    return ladder(tmp_path_factory.mktemp("ladder") / "par", "parallel", PASS_ALL)


@pytest.fixture(scope="module")
def rejected(tmp_path_factory) -> Path:
    return ladder(tmp_path_factory.mktemp("ladder") / "rej", "sequential", FAIL_STAGE2)


@pytest.mark.slow
def test_sequential_trains_in_registered_order_and_skips_after_the_first_pass(sequential):
    # alphabetical (glob) order would have trained clip0_1, ec0_001 and lr1e4
    assert run_record(sequential, "lr1e4")["status"] == "completed"
    for name in CANDIDATES[1:]:
        record = run_record(sequential, name)
        assert record["status"] == "skipped", name
        assert record["reason"].startswith("earlier candidate lr1e4 passed all three stages")
        assert record["experiment"] == "ppo_ladder"
        assert not (sequential / name / "metrics.csv").exists()
    logs = sequential / "lr1e4" / "logs"
    for start in (10000, 20000):
        ev = json.loads((logs / f"evaluation_seed_{start}.json").read_text())
        assert (ev["seed_start"], ev["n_seeds"]) == (start, 32)
    summary = json.loads((sequential / "lr1e4" / "summary.json").read_text())
    assert summary["candidate"] == "lr1e4" and summary["hparams"]["lr"] == pytest.approx(1e-4)
    assert summary["grade"]["passed"] is True

    v = verdict(sequential)
    assert v["decision"]["outcome"] == "adopted" and v["decision"]["adopted"] == "lr1e4"
    assert [r["result"] for r in v["candidates"]] == ["ADOPTED"] + ["not graded"] * 3
    md = (sequential / "verdict.md").read_text()
    # a tiny ladder is exploratory: it says so first, adopts nothing, and points to the real one
    assert v["exploratory"]["is"] is True
    assert "**exploratory: not the registered set-up (" in md.split("\n\n", 2)[1]
    assert "lr1e4 is the first candidate in registered order to pass all three stages" in md
    assert "**Adopted" not in md
    assert "**NOT the registered constants** — differs in stage1.min_success_rate" in md
    assert "tier small (registered large); updates 3 (registered 1221)" in md
    assert md.count("not graded: skipped: earlier candidate lr1e4") == 3
    assert v["next_command"] == "python run.py -m experiment=ppo_ladder 'candidate=glob(*)'"
    assert v["next_command"] in md


@pytest.mark.slow
def test_parallel_trains_every_candidate_and_gives_the_same_verdict(sequential, parallel):
    assert all(run_record(parallel, n)["status"] == "completed" for n in CANDIDATES)
    seq, par = verdict(sequential), verdict(parallel)
    assert par["decision"] == seq["decision"]
    assert par["candidates"][0]["grade"] == seq["candidates"][0]["grade"]
    assert [r["result"] for r in par["candidates"]] == ["ADOPTED", "PASS", "PASS", "PASS"]
    assert par["next_command"] == seq["next_command"]
    # recomputed from disk by the CLI: the same verdict
    written = (parallel / "verdict.json").read_text()
    proc = prereg_cli("verdict", str(parallel))
    assert proc.returncode == 0 and "**exploratory: not the registered set-up" in proc.stdout
    assert json.loads((parallel / "verdict.json").read_text()) == json.loads(written)


@pytest.mark.slow
def test_every_candidate_failing_stage2_rejects_path_b_with_the_best_state(rejected):
    v = verdict(rejected)
    assert v["decision"]["outcome"] == "rejected"
    assert [r["result"] for r in v["candidates"]] == ["FAIL (Stage 2)"] * 4
    assert all(r["grade"]["stages"][2]["result"] == "not reached" for r in v["candidates"])
    md = (rejected / "verdict.md").read_text()
    # exploratory: the stage results as measured, no falsifier quoted as a finding, no Path A
    assert "**exploratory: not the registered set-up" in md and "**Path B rejected" not in md
    assert "Stage results on this set-up: no candidate passed all three stages." in md
    assert '"Entropy regularization is not the root cause"' not in md and not v["falsifiers"]
    assert not v.get("path_a")
    assert v["next_command"] == "python run.py -m experiment=ppo_ladder 'candidate=glob(*)'"
    # Path A's best state is still one command away
    proc = prereg_cli("best-state", *(str(rejected / n) for n in CANDIDATES))
    assert proc.returncode == 0, proc.stderr
    best = [line for line in proc.stdout.splitlines() if line.startswith("**`")]
    assert best and Path(best[0].split("`")[1]).is_dir()


@pytest.mark.slow
def test_a_moved_sweep_still_gives_its_verdict_best_state_compare_and_eval(rejected, tmp_path):
    # summary.json records checkpoints and policies relative to the run: a sweep copied back
    # from a cluster (here: moved) points into itself, not at the old disk
    moved = tmp_path / "moved"
    shutil.move(rejected, moved)
    try:
        summary = json.loads((moved / "lr1e4" / "summary.json").read_text())
        assert summary["checkpoint_final"] == "checkpoints/final"
        assert summary["policy"] == "policies/policy.npz"
        decision = verdict(moved)["decision"]
        proc = prereg_cli("verdict", str(moved))
        assert proc.returncode == 0, proc.stderr
        assert verdict(moved)["decision"] == decision
        assert str(rejected) not in (moved / "verdict.json").read_text()
        proc = prereg_cli("best-state", str(moved))
        assert proc.returncode == 0, proc.stderr
        best = [line for line in proc.stdout.splitlines() if line.startswith("**`")]
        where = Path(best[0].split("`")[1])
        assert where.is_dir() and moved in where.parents
        proc = prereg_cli("compare", str(moved))
        assert proc.returncode == 0, proc.stderr
        assert all(name in proc.stdout for name in CANDIDATES)
        final = moved / "lr1e4" / "checkpoints" / "final"
        args = ["experiment=ppo_eval", "eval=seed_20000", f"checkpoint={final}"]
        proc = run_cli(*args, cwd=tmp_path)  # the eval job's own folder outside the sweep
        assert proc.returncode == 0, proc.stderr[-2000:]
        written = moved / "lr1e4" / "logs" / "evaluation_seed_20000.json"
        assert f"{written} already holds this result" in proc.stdout
    finally:
        shutil.move(moved, rejected)


@pytest.mark.slow
def test_a_control_job_joins_the_sweeps_verdict_and_is_never_adopted(parallel, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(parallel, sweep)
    before = verdict(sweep)["decision"]
    gates = [g for g in GATES if not g.startswith("hydra.")]
    proc = run_cli(
        "experiment=ppo_ladder", "ladder.control=true", *TINY, *gates, PASS_ALL,
        f"hydra.run.dir={sweep / 'control'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((sweep / "control" / "summary.json").read_text())
    assert summary["candidate"] == "control" and summary["grade"]["passed"] is True
    assert summary["hparams"] == {
        "lr": 3e-4,
        "value_coef": 0.5,
        "entropy_coef": 0.01,
        "clip_range": 0.2,
    }
    again = prereg_cli("verdict", str(sweep))
    assert again.returncode == 0, again.stderr
    v = verdict(sweep)
    assert v["decision"] == before  # reported, never adopted
    assert v["control"]["graded"] and v["control"]["sentence"].startswith("passes all three")
    assert (
        "## Control: the registered set-up at the default hparams"
        in (sweep / "verdict.md").read_text()
    )


@pytest.mark.slow
def test_a_plain_ppo_run_takes_a_candidate_by_hand(tmp_path):
    out = tmp_path / "vc"
    proc = run_cli(
        "experiment=ppo", "candidate=vc0_25", *TINY, "ppo.updates=1", f"hydra.run.dir={out}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["candidate"] == "vc0_25"
    assert summary["hparams"] == {
        "lr": 3e-4, "value_coef": 0.25, "entropy_coef": 0.01, "clip_range": 0.2,
    }  # fmt: skip
    assert json.loads((out / "run.json").read_text())["experiment"] == "ppo"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["candidate=foo"], "candidate: unknown option 'foo' (allowed: clip0_1, ec0_001, lr1e4, "),
        ([], "candidate: no candidate selected (allowed: lr1e4, vc0_25, ec0_001, clip0_1)"),
        (["candidate=lr1e4", "candidate.name=bogus"], "candidate: unknown candidate 'bogus'"),
        (
            ["-m", "candidate=glob(*)", "registration.candidates.ec0_001.order=2"],
            "registration.candidates.ec0_001.order: order 2 repeats that of vc0_25",
        ),
        (
            ["candidate=lr1e4", "registration.stage1.min_success_rate=abc"],
            "registration.stage1.min_success_rate: 'abc' is not a valid float",
        ),
        (
            ["candidate=lr1e4", "registration.stage2.max_final_entropy=nan"],
            "registration.stage2.max_final_entropy: must be finite",
        ),
        (
            ["candidate=lr1e4", "ladder.mode=serial"],
            "ladder.mode: unknown value 'serial' (did you mean sequential?) "
            "(allowed: sequential, parallel, vmapped)",
        ),
        (["candidate=lr1e4", "ppo.lr=5e-4"], "ppo.lr: candidate lr1e4 sets it to 0.0001"),
        (["candidate=lr1e4", "eval=seed_20000"], "eval: the ladder evaluates at the registered"),
    ],
)
def test_ladder_bad_input_is_one_line(tmp_path, args, expected):
    out = tmp_path / "run"
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    proc = run_cli(
        *flags, "experiment=ppo_ladder", *overrides, f"hydra.run.dir={out}",
        f"hydra.sweep.dir={out}", timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), proc.stderr
    assert not out.exists()
