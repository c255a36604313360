"""``logger=tensorboard``: both runners stream metrics.csv (and more) to TensorBoard event files.

The event files are read back with TensorBoard's own reader, as ``tensorboard --logdir`` does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboardX import SummaryWriter

from prereg.core.atomic import atomic_write_json

pytestmark = pytest.mark.slow

EXP9 = ["arm=primary", "cell=n4m2", "registration.step_cap=30", "exp9.chunk_steps=10"]
EXP9_METRICS = ["kl", "rho", "signal", "noise", "rho_proj", "noise_proj", "loss", "grad_norm"]
DIAGNOSTICS = [
    "detailed_balance", "row_sum", "symmetry", "lambda_2", "gap", "inv_gap_power",
    "conductance", "cheeger_lower", "cheeger_upper", "cheeger_margin",
]  # fmt: skip
PPO = [
    "experiment=ppo", "tier=small", "ppo.num_envs=16", "ppo.num_steps=32",
    "ppo.num_minibatches=4", "ppo.update_epochs=2", "ppo.chunk_updates=2", "ppo.eval_every=2",
    "ppo.updates=4",
]  # fmt: skip
PPO_METRICS = [
    "env_steps", "mean_reward", "episode_return", "success_rate", "entropy", "log_std",
    "value_loss", "policy_loss", "approx_kl", "clipfrac", "explained_variance", "sps",
]  # fmt: skip
EVAL = ["success_rate", "mean_terminal_alignment", "mean_steps", "mean_return"]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar time series of ``<run_dir>/tensorboard`` as TensorBoard shows it."""
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_series_equal(series: list[tuple[int, float]], table: pd.DataFrame, step: str, col: str):
    """One point per row, at the row's step, equal to the CSV value up to float32 rounding."""
    assert [s for s, _ in series] == table[step].tolist(), col
    np.testing.assert_allclose(
        [v for _, v in series], table[col].to_numpy(float), rtol=2e-7, atol=1e-37, err_msg=col
    )


def crash_after_logging(run_dir: Path, last_checkpoint: str) -> None:
    """What a run killed after logging its last chunk but before checkpointing it leaves."""
    shutil.rmtree(run_dir / "checkpoints" / last_checkpoint)
    (run_dir / "summary.json").unlink()
    record = json.loads((run_dir / "run.json").read_text())
    atomic_write_json(run_dir / "run.json", {**record, "status": "running"})


@pytest.fixture(scope="module")
def exp9_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tb") / "exp9"
    proc = run_cli(*EXP9, "logger=tensorboard", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_exp9_streams_every_metric_per_step_and_the_diagnostics(exp9_run):
    series = scalars(exp9_run)
    assert set(series) == {f"metrics/{c}" for c in EXP9_METRICS} | {
        f"diagnostics/{c}" for c in DIAGNOSTICS
    }
    metrics = pd.read_csv(exp9_run / "metrics.csv")
    assert metrics["step"].tolist() == list(range(30))
    for col in EXP9_METRICS:
        assert_series_equal(series[f"metrics/{col}"], metrics, "step", col)
    diagnostics = pd.read_csv(exp9_run / "diagnostics.csv")
    assert len(diagnostics) == 16
    for col in DIAGNOSTICS:
        assert_series_equal(series[f"diagnostics/{col}"], diagnostics, "step", col)


def test_a_resumed_run_shows_each_step_once_with_its_final_values(exp9_run, tmp_path):
    run = tmp_path / "exp9"
    shutil.copytree(exp9_run, run)
    crash_after_logging(run, "step_00000030")
    # the killed process had also logged points past its checkpoint (step 20) that differ
    ghost = SummaryWriter(str(run / "tensorboard"))
    for step in range(20, 41):
        ghost.add_scalar("metrics/kl", 999.0, step)
    ghost.close()
    assert len(scalars(run)["metrics/kl"]) == 30 + 21  # before the resume: ghost points

    proc = run_cli(*EXP9, "logger=tensorboard", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(step 20)" in proc.stdout  # resumed from the step-20 checkpoint
    assert len(list((run / "tensorboard").iterdir())) == 3
    series = scalars(run)
    metrics = pd.read_csv(run / "metrics.csv")
    for col in EXP9_METRICS:
        assert_series_equal(series[f"metrics/{col}"], metrics, "step", col)
    diagnostics = pd.read_csv(run / "diagnostics.csv")
    for col in DIAGNOSTICS:
        assert_series_equal(series[f"diagnostics/{col}"], diagnostics, "step", col)


def test_the_default_logs_nothing_and_turning_it_on_keeps_the_job_directory(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *EXP9, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (job,) = [p for p in sweep.iterdir() if (p / "run.json").exists()]
    assert not (job / "tensorboard").exists()

    crash_after_logging(job, "step_00000030")  # resume the job with logging turned on
    proc = run_cli("-m", *EXP9, "logger=tensorboard", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p for p in sweep.iterdir() if (p / "run.json").exists()] == [job]
    assert json.loads((job / "run.json").read_text())["status"] == "completed"
    metrics = pd.read_csv(job / "metrics.csv")
    series = scalars(job)["metrics/kl"]  # only what the resumed process computed
    assert_series_equal(series, metrics[metrics["step"] >= 20], "step", "kl")


def test_ppo_streams_every_metric_per_update_and_the_periodic_eval(tmp_path):
    out = tmp_path / "ppo"
    proc = run_cli(*PPO, "logger=tensorboard", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    series = scalars(out)
    assert set(series) == {f"metrics/{c}" for c in PPO_METRICS} | {f"eval/{c}" for c in EVAL}
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["update"].tolist() == [1, 2, 3, 4]
    for col in PPO_METRICS:
        assert_series_equal(series[f"metrics/{col}"], metrics, "update", col)
    # the periodic eval at the last update uses the final eval's seeds (10000.., 32 episodes)
    final = json.loads((out / "logs" / "evaluation_seed_10000.json").read_text())
    for name in EVAL:
        steps, values = zip(*series[f"eval/{name}"], strict=True)
        assert steps == (2, 4)
        np.testing.assert_allclose(values[-1], final[name], rtol=2e-7, err_msg=name)
