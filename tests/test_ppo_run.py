"""PPO through run.py: the run-directory files, eval-only mode, resume, segments, bad input."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium
import numpy as np
import pandas as pd
import pytest
from helpers import REPO, assert_refused_in_one_line, prereg_cli, run_cli

import prereg.ppo.env  # noqa: F401 - registers prereg/MesaDock-v0 (Gymnasium's convention)
from prereg.ppo.multiseed import member_states
from prereg.ppo.policy import load_policy
from prereg.training.checkpoints import load_checkpoint

TINY = [
    "experiment=ppo", "tier=small", "ppo.num_envs=16", "ppo.num_steps=32",
    "ppo.num_minibatches=4", "ppo.update_epochs=2", "ppo.chunk_updates=2", "ppo.eval_every=2",
    "ppo.eval_seeds=8",
]  # fmt: skip
COLUMNS = [
    "update", "env_steps", "mean_reward", "episode_return", "success_rate", "entropy",
    "log_std", "value_loss", "policy_loss", "approx_kl", "clipfrac", "explained_variance", "sps",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ppo") / "run"
    proc = run_cli(*TINY, "ppo.updates=6", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out.parent / "stdout.txt").write_text(proc.stdout)
    return out


def closing_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("run ")]


@pytest.mark.slow
def test_a_ppo_single_run_ends_with_its_folder_and_eval_success(trained):
    summary = json.loads((trained / "summary.json").read_text())
    ev = summary["evaluation"]
    k = round(ev["success_rate"] * 32)
    assert closing_lines((trained.parent / "stdout.txt").read_text()) == [
        f"run {trained}: completed — eval success {k}/32 = {ev['success_rate']:.3f} at "
        f"seed_start 10000, mean return {ev['mean_return']:.4g}"
    ]
    # NaN is null in JSON (success_rate is NaN in an update where no episode ended)
    text = (trained / "summary.json").read_text()
    assert "nan" not in text.lower()
    rate = summary["final"]["success_rate"]
    assert rate is None or 0 <= rate <= 1
    # every trainer setting is in the checkpoint's settings, at the schema's defaults
    _, meta = load_checkpoint(trained / "checkpoints" / "final")
    stored = meta["settings"]["ppo"]
    assert (stored["anneal_lr"], stored["adam_eps"], stored["log_std_init"]) == (False, 1e-5, 0)
    assert stored["obs_clip"] == 10.0


@pytest.mark.slow
def test_a_run_writes_every_file_with_the_named_columns(trained):
    record = json.loads((trained / "run.json").read_text())
    assert record["status"] == "completed" and record["experiment"] == "ppo"
    metrics = pd.read_csv(trained / "metrics.csv")
    assert list(metrics.columns) == COLUMNS
    assert list(metrics["update"]) == [1, 2, 3, 4, 5, 6]
    assert list(metrics["env_steps"]) == [512 * k for k in range(1, 7)]
    # entropy is the 2-D Gaussian's: sum over dims of (ln(2 pi e)/2 + log_std)
    expected = 2 * (0.5 * np.log(2 * np.pi * np.e) + metrics["log_std"])
    np.testing.assert_allclose(metrics["entropy"], expected, rtol=1e-5)
    ev = json.loads((trained / "logs" / "evaluation_seed_10000.json").read_text())
    assert {"success_rate", "mean_terminal_alignment", "mean_steps", "mean_return"} <= set(ev)
    episodes = pd.read_csv(trained / "logs" / "evaluation_seed_10000_episodes.csv")
    assert list(episodes["seed"]) == list(range(10000, 10032))
    for name in ("final", "best", "step_00000006"):
        assert (trained / "checkpoints" / name / "checkpoint.json").exists(), name
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["env_steps"] == 3072 and summary["evaluation"] == ev
    # paths relative to the run (a moved sweep still points into itself), and the device
    assert (summary["checkpoint_final"], summary["checkpoint_best"], summary["policy"]) == (
        "checkpoints/final", "checkpoints/best", "policies/policy.npz",
    )  # fmt: skip
    assert summary["device"] == "cpu" or summary["device"].startswith("gpu (")


@pytest.mark.slow
def test_the_exported_policy_loads_with_one_call_and_acts_in_the_gymnasium_env(trained):
    policy = load_policy(trained / "policies" / "policy.npz")
    env = gymnasium.make("prereg/MesaDock-v0")
    obs, _ = env.reset(seed=10000)
    total = 0.0
    for _ in range(200):
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += reward
        if terminated or truncated:
            break
    assert np.isfinite(total)
    assert truncated or terminated


@pytest.mark.slow
def test_eval_only_mode_is_deterministic(trained, tmp_path):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        proc = run_cli(
            "experiment=ppo_eval", "eval=seed_20000",
            f"checkpoint={trained / 'checkpoints' / 'final'}", f"hydra.run.dir={out}",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append((out / "logs" / "evaluation_seed_20000.json").read_text())
    assert outs[0] == outs[1]
    assert json.loads(outs[0])["n_seeds"] == 32 and json.loads(outs[0])["seed_start"] == 20000


@pytest.mark.slow
def test_eval_only_writes_beside_the_checkpoint_prints_and_never_overwrites(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    record = (run / "run.json").read_text()
    logs = run / "logs"

    def evaluate(*args: str) -> str:
        proc = run_cli("experiment=ppo_eval", *args, cwd=tmp_path)  # no hydra.run.dir
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = closing_lines(proc.stdout)
        assert len(lines) == 1, proc.stdout
        return lines[0]

    final, best = run / "checkpoints" / "final", run / "checkpoints" / "best"
    line = evaluate("eval=seed_20000", f"checkpoint={final}")
    written = logs / "evaluation_seed_20000.json"
    ev = json.loads(written.read_text())
    assert (logs / "evaluation_seed_20000_episodes.csv").exists()
    assert line.endswith(f"mean return {ev['mean_return']:.4g}; wrote {written}")
    assert f": completed — eval success {round(ev['success_rate'] * 32)}/32 = " in line
    # the eval job's own directory (Hydra's, under the working directory) records the job
    job = Path(line.split()[1].rstrip(":"))
    assert job.parent.parent == tmp_path / "outputs"
    assert json.loads((job / "run.json").read_text())["status"] == "completed"
    job_summary = json.loads((job / "summary.json").read_text())
    assert job_summary["evaluation_file"] == str(written) and job_summary["evaluation"] == ev
    assert not (job / "logs" / "evaluation_seed_20000.json").exists()
    assert (run / "run.json").read_text() == record  # the training run's record is untouched

    # the same seeds again: the same result, said so, nothing rewritten
    mtime = written.stat().st_mtime_ns
    line = evaluate("eval=seed_20000", f"checkpoint={final}")
    assert line.endswith(f"; {written} already holds this result (identical; not rewritten)")
    assert written.stat().st_mtime_ns == mtime

    # another result for a file that exists: written beside it, the original kept
    original = (logs / "evaluation_seed_10000.json").read_text()
    line = evaluate("eval=seed_10000", "eval.n_seeds=8", f"checkpoint={final}")
    beside = logs / "evaluation_seed_10000_2.json"
    assert line.endswith(
        f"; wrote {beside} (evaluation_seed_10000.json there holds a different result)"
    )
    assert json.loads(beside.read_text())["n_seeds"] == 8
    assert (logs / "evaluation_seed_10000.json").read_text() == original

    # a checkpoint other than final is named, so the unsuffixed files stay the final state's
    line = evaluate("eval=seed_20000", f"checkpoint={best}")
    assert line.endswith(f"; wrote {logs / 'evaluation_seed_20000_best.json'}")


@pytest.mark.slow
def test_a_segment_continues_with_cumulative_env_steps(trained, tmp_path):
    out = tmp_path / "ext1"
    proc = run_cli(
        *TINY, "ppo.updates=2", f"ppo.init_from={trained / 'checkpoints' / 'final'}",
        f"hydra.run.dir={out}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["update"]) == [7, 8]
    assert list(metrics["env_steps"]) == [3584, 4096]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["segment"]["start_env_steps"] == 3072
    assert summary["segment"]["init_from"] == str((trained / "checkpoints" / "final").resolve())


# 40 updates of 8 epochs: seconds of training after the first checkpoint, so a kill lands
# mid-run even when everything is compiled and cached
LONG = [a for a in TINY if not a.startswith("ppo.update_epochs=")]
LONG += ["ppo.updates=40", "ppo.update_epochs=8", "ppo.progress=off"]
# seeds 0 and 1 in one vmapped program; 20 updates (each twice the work) still leave seconds
# for a kill after the first checkpoint
MANY = [*(a for a in LONG if a != "ppo.updates=40"), "ppo.updates=20", "ppo.num_seeds=2"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One uninterrupted single-seed run of :data:`LONG` (seed 0)."""
    out = tmp_path_factory.mktemp("ppo") / "reference"
    proc = run_cli(*LONG, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """One uninterrupted run of :data:`MANY`: seeds 0 and 1 in one program."""
    out = tmp_path_factory.mktemp("ppo") / "many"
    proc = run_cli(*MANY, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def kill_then_resume(args: list[str], victim: Path) -> None:
    """Start a run, SIGKILL it once its first periodic checkpoint is written, run it again."""
    cmd = [sys.executable, str(REPO / "run.py"), *args, f"hydra.run.dir={victim}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((victim / "checkpoints").glob("step_*")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((victim / "run.json").read_text())["status"] == "running"
    done = run_cli(*args, f"hydra.run.dir={victim}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((victim / "run.json").read_text())["attempts"] == 2


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical metrics (sps aside) and final checkpoints."""
    ma = pd.read_csv(a / "metrics.csv").drop(columns="sps")
    mb = pd.read_csv(b / "metrics.csv").drop(columns="sps")
    pd.testing.assert_frame_equal(ma, mb, check_exact=True)
    fa, _ = load_checkpoint(a / "checkpoints" / "final")
    fb, _ = load_checkpoint(b / "checkpoints" / "final")
    assert fa.keys() == fb.keys()
    for key in fa:
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_like_an_uninterrupted_one(reference, tmp_path):
    kill_then_resume(LONG, tmp_path / "victim")
    assert_same_run(reference, tmp_path / "victim")


@pytest.mark.slow
def test_a_killed_multi_seed_run_resumes_and_ends_like_an_uninterrupted_one(many, tmp_path):
    kill_then_resume(MANY, tmp_path / "victim")
    assert_same_run(many, tmp_path / "victim")
    for seed in (0, 1):  # each seed's own final state too
        a, b = (d / "checkpoints" / f"seed_{seed}" / "final" for d in (many, tmp_path / "victim"))
        assert load_checkpoint(a)[0].keys() == load_checkpoint(b)[0].keys()


@pytest.mark.slow
def test_seed_k_of_a_multi_seed_run_is_the_single_run_with_that_seed(reference, many):
    single = pd.read_csv(reference / "metrics.csv").drop(columns="sps")
    rows = pd.read_csv(many / "metrics.csv")
    assert list(rows.columns) == [COLUMNS[0], "seed", *COLUMNS[1:]]
    assert list(rows["update"]) == [u for u in range(1, 21) for _ in (0, 1)]
    assert list(rows["seed"]) == [0, 1] * 20
    # batched matmuls may sum in another order: equal to float tolerance, and PPO amplifies
    # such differences over updates (about 1e-3 relative by update 20), so compare the first 8
    seed0 = rows[rows["seed"] == 0].drop(columns=["seed", "sps"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(seed0[:8], single[:8], check_exact=False, rtol=1e-4, atol=1e-6)
    seed1 = rows[rows["seed"] == 1].drop(columns=["seed", "sps"]).reset_index(drop=True)
    assert not np.allclose(seed1["value_loss"], single["value_loss"][:20])  # not seed 0 twice


@pytest.mark.slow
def test_a_multi_seed_run_writes_each_seeds_files_and_the_pooled_eval(many):
    ev = json.loads((many / "logs" / "evaluation_seed_10000.json").read_text())
    assert ev["n_train_seeds"] == 2 and ev["n_seeds"] == 64 and ev["seed_start"] == 10000
    assert [e["train_seed"] for e in ev["per_seed"]] == [0, 1]
    assert all(e["n_seeds"] == 32 for e in ev["per_seed"])
    episodes = pd.read_csv(many / "logs" / "evaluation_seed_10000_episodes.csv")
    assert list(episodes["train_seed"]) == [0] * 32 + [1] * 32
    assert ev["success_rate"] == pytest.approx(episodes["success"].mean())
    assert ev["mean_return"] == pytest.approx(episodes["return"].mean())
    assert ev["success_rate"] == pytest.approx(np.mean([e["success_rate"] for e in ev["per_seed"]]))
    summary = json.loads((many / "summary.json").read_text())
    assert summary["train_seeds"] == [0, 1] and summary["evaluation"] == ev
    assert summary["checkpoint_final"] == "checkpoints/final"  # relative to the run
    for seed in (0, 1):
        mine = summary["per_seed"][str(seed)]
        assert mine["evaluation"] == ev["per_seed"][seed]
        assert mine["checkpoint_final"] == f"checkpoints/seed_{seed}/final"
        assert mine["checkpoint_best"] == f"checkpoints/seed_{seed}/best"
        policy = load_policy(many / mine["policy"])
        assert mine["policy"] == f"policies/seed_{seed}/policy.npz"
        _, meta = load_checkpoint(many / mine["checkpoint_final"])
        assert (meta["settings"]["ppo"]["seed"], meta["settings"]["ppo"]["num_seeds"]) == (seed, 1)
        assert policy(np.zeros(policy.obs_dim)).shape == (2,)


@pytest.mark.slow
def test_eval_only_and_best_state_work_per_seed(many, tmp_path):
    run = tmp_path / "many"
    shutil.copytree(many, run)
    one = run / "checkpoints" / "seed_1" / "final"
    proc = run_cli("experiment=ppo_eval", f"checkpoint={one}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # beside the run's pooled files, named for the seed: the unsuffixed ones stay the pooled
    mine = json.loads((run / "logs" / "evaluation_seed_10000_train_seed_1.json").read_text())
    pooled = json.loads((run / "logs" / "evaluation_seed_10000.json").read_text())
    assert mine == {k: v for k, v in pooled["per_seed"][1].items() if k != "train_seed"}
    proc = prereg_cli("best-state", str(run), "--json")
    assert proc.returncode == 0, proc.stderr
    states = json.loads(proc.stdout)["states"]
    # each seed's final; the best ones were chosen on ppo.eval_seeds=8, not the registered 32
    assert sorted(s["state"] for s in states) == ["final of seed 0", "final of seed 1"]
    assert all(Path(s["checkpoint"]).is_dir() for s in states)
    best = member_states(run, 10000, 8)  # the periodic eval's seeds: each seed's best
    assert [s["state"] for s in best] == ["best of seed 0", "best of seed 1"]
    assert [s["checkpoint"] for s in best] == [
        str(run / "checkpoints" / f"seed_{s}" / "best") for s in (0, 1)
    ]
    # a segment continues a checkpoint of as many seeds, or says so in one line
    stacked = run / "checkpoints" / "final"
    proc = run_cli(*TINY, f"ppo.init_from={stacked}", f"hydra.run.dir={tmp_path / 'ext'}")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: ppo.init_from: {stacked} holds 2 seed(s) but ppo.num_seeds=1; continue it with "
        "ppo.num_seeds=2 (one seed of a multi-seed run: checkpoints/seed_<s>/final)"
    )


@pytest.mark.slow
def test_the_gymnasium_backend_trains_on_pendulum(tmp_path):
    out = tmp_path / "pendulum"
    proc = run_cli(
        "experiment=ppo", "ppo.backend=gymnasium", "env.id=Pendulum-v1", "tier=small",
        "ppo.updates=2", "ppo.num_envs=4", "ppo.num_steps=64", "ppo.num_minibatches=4",
        "ppo.update_epochs=1", "ppo.eval_seeds=2", "eval.n_seeds=2", f"hydra.run.dir={out}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 2 and np.isfinite(metrics["value_loss"]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_id"] == "Pendulum-v1" and summary["policy"] == "policies/policy.npz"
    # the exported policy keeps the env's action bounds (+-2): it scores what the trainer's
    # evaluator scored on the same seeds (before, it acted in [-1, 1])
    policy = load_policy(out / summary["policy"])
    assert list(policy.low) == [-2.0] and list(policy.high) == [2.0]
    episodes = pd.read_csv(out / "logs" / "evaluation_seed_10000_episodes.csv")
    env = gymnasium.make("Pendulum-v1")
    for seed, expected in zip(episodes["seed"], episodes["return"], strict=True):
        obs, _ = env.reset(seed=int(seed))
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total, done = total + float(reward), terminated or truncated
        assert total == pytest.approx(expected, rel=1e-4), seed


GYM = "ppo.backend=gymnasium"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tier=huge"], "error: tier: unknown option 'huge' (allowed: large, medium, small)"),
        (["variant=mixed_2"], "error: variant: unknown option 'mixed_2'"),
        (["ppo.lr=0"], "error: ppo.lr: must be > 0"),
        (["ppo.lr=-3e-4"], "error: ppo.lr: must be > 0"),
        (["ppo.clip_range=0"], "error: ppo.clip_range: must be > 0"),
        (["ppo.mixed_lambda=1.5"], "error: ppo.mixed_lambda: must lie in [0, 1]"),
        (["ppo.init_from=/no/such/ckpt"], "error: ppo.init_from: /no/such/ckpt does not exist"),
        (
            ["ppo.backend=gymnasium", "env.id=Nope-v9"],
            "error: env.id: 'Nope-v9' is not a registered",
        ),
        (
            ["ppo.backend=gymnasium", "env.id=CartPole-v1"],
            "error: env.id: 'CartPole-v1' has action space Discrete",
        ),
    ],
)
def test_ppo_bad_input_is_one_line(tmp_path, args, expected):
    assert_refused_in_one_line(tmp_path / "run", "experiment=ppo", *args, starts=expected)


def test_device_gpu_without_a_gpu_is_refused_in_one_line_before_any_compute(tmp_path):
    import jax

    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("JAX sees a GPU here: ppo.device=gpu is honoured, not refused")
    out = tmp_path / "run"
    proc = run_cli(*TINY, "ppo.device=gpu", f"hydra.run.dir={out}", timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ppo.device: gpu requested but JAX sees no GPU (devices: ")
    assert not (out / "metrics.csv").exists() and not (out / "checkpoints").exists()


def test_eval_of_something_that_is_not_a_checkpoint_is_one_line(tmp_path):
    (tmp_path / "junk").mkdir()
    for path, expected in [
        (tmp_path / "missing", "does not exist"),
        (tmp_path / "junk", "is not a prereg PPO checkpoint"),
    ]:
        proc = run_cli("experiment=ppo_eval", f"checkpoint={path}", f"hydra.run.dir={tmp_path}/o")
        assert proc.returncode == 2
        assert proc.stderr.strip().startswith("error: checkpoint: ") and expected in proc.stderr
