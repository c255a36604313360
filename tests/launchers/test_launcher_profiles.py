"""The launcher profiles in launchers/hydra/launcher/ as Hydra sees them (no SLURM needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from launchers.slurm_helpers import finish_sweep, start_sweep, starts, write_app

from prereg.sweep.launchers import launchers_dir, register_launcher_profiles


@pytest.fixture()
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config dir and cwd outside the repository."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("x: 0\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _launcher(conf_dir: Path, *overrides: str):
    register_launcher_profiles()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    return cfg.hydra.launcher, cfg.hydra.sweep.dir


def test_every_profile_file_is_registered(elsewhere: Path) -> None:
    names = sorted(p.stem for p in (launchers_dir() / "hydra" / "launcher").glob("*.yaml"))
    assert {"slurm", "local"} <= set(names)
    for name in names:
        assert _launcher(elsewhere / "conf", f"hydra/launcher={name}")[0]._target_


def test_slurm_profile_extends_submitit_slurm(elsewhere: Path) -> None:
    launcher, sweep_dir = _launcher(
        elsewhere / "conf", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"
    )
    # prereg's SlurmLauncher: stock submission, but waits for every job and records dead ones
    assert launcher._target_ == "hydra_plugins.prereg_launchers.SlurmLauncher"
    assert launcher.partition == "gpu"
    assert launcher.submitit_folder == f"{sweep_dir}/.submitit/%j"
    assert launcher.signal_delay_s < launcher.timeout_min * 60 / 2
    assert launcher.max_num_timeout >= 1  # timeouts are requeued, not fatal
    assert launcher.additional_parameters["requeue"] is True
    assert "export XLA_PYTHON_CLIENT_PREALLOCATE=false" in launcher.setup
    # schema fields inherited from submitit_slurm are still there and typed
    assert "qos" in launcher and "array_parallelism" in launcher


def test_local_profile_is_bounded(elsewhere: Path) -> None:
    launcher, sweep_dir = _launcher(
        elsewhere / "conf", "hydra/launcher=local", "hydra.launcher.array_parallelism=3"
    )
    assert launcher._target_ == "hydra_plugins.prereg_launchers.BoundedLocalLauncher"
    assert launcher.array_parallelism == 3
    assert launcher.submitit_folder == f"{sweep_dir}/.submitit/%j"


@pytest.mark.slow
def test_local_sweep_runs_at_most_n_jobs_at_once(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    sweep = tmp_path / "sweep"
    proc = start_sweep(
        app,
        sweep,
        "hydra/launcher=local",
        "hydra.launcher.array_parallelism=1",
        "x=1,2,3",
        "sleep=1",
    )
    finish_sweep(proc, sweep, timeout=300)
    runs = [starts(sweep / str(n)) for n in range(3)]
    assert all(len(r) == 1 for r in runs)
    runs = sorted((r[0] for r in runs), key=lambda r: r["t"])
    assert [r["x"] for r in runs] == [1, 2, 3]
    # one at a time: each job started after the previous one's 1 s sleep
    assert all(b["t"] - a["t"] >= 1.0 for a, b in zip(runs, runs[1:], strict=False))
    assert all(r["prealloc"] == "false" for r in runs)
    assert len({r["pid"] for r in runs}) == 3 and os.getpid() not in {r["pid"] for r in runs}
