"""The launcher profiles (package data of the plugin hydra_plugins.prereg_launchers) as Hydra
sees them (no SLURM needed)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from launchers.slurm_helpers import finish_sweep, start_sweep, starts, write_app

from hydra_plugins.prereg_launchers.launcher import BoundedLocalLauncher, SlurmLauncher
from hydra_plugins.prereg_launchers.search_path import PROFILES


def qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@pytest.fixture()
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config dir and cwd outside the repository."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("x: 0\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _compose(conf_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def _launcher(conf_dir: Path, *overrides: str):
    cfg = _compose(conf_dir, *overrides)
    return cfg.hydra.launcher, cfg.hydra.sweep.dir


def packaged_profiles() -> list[str]:
    folder = resources.files("hydra_plugins.prereg_launchers.conf") / "hydra" / "launcher"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def test_every_packaged_profile_is_found(elsewhere: Path) -> None:
    names = packaged_profiles()
    assert names == ["local", "pool", "slurm"]
    for name in names:
        assert _launcher(elsewhere / "conf", f"hydra/launcher={name}")[0]._target_


SEARCH_PATH_APP = """
import json, sys
from hydra import compose, initialize_config_dir

with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
    cfg = compose(config_name="config", overrides=["hydra/launcher=slurm"],
                  return_hydra_config=True)
print(json.dumps({
    "target": cfg.hydra.launcher._target_,
    "sources": [[s.provider, f"{s.schema}://{s.path}"] for s in cfg.hydra.runtime.config_sources],
    "imported": sorted(m for m in ("prereg", "submitit") if m in sys.modules),
}))
"""


def test_profiles_are_found_through_the_search_path_plugin(tmp_path: Path) -> None:
    """A fresh process, in a directory that is not the repository, composing a config of its
    own: nothing registers the profiles but Hydra's plugin scan."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("x: 0\n")
    app = tmp_path / "compose.py"
    app.write_text(textwrap.dedent(SEARCH_PATH_APP))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREREG_")}
    proc = subprocess.run(
        [sys.executable, str(app), str(tmp_path / "conf")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["target"] == qualname(SlurmLauncher)
    sources = [tuple(s) for s in out["sources"]]
    assert ("prereg-launchers", PROFILES) in sources
    # after the app's own config dir, so an app's hydra/launcher/<name>.yaml takes precedence
    assert sources.index(("main", f"file://{tmp_path / 'conf'}")) < sources.index(
        ("prereg-launchers", PROFILES)
    )
    # Hydra imports the plugin in every app: it loads neither prereg nor submitit until used
    assert out["imported"] == []


def test_a_profile_in_the_apps_config_dir_replaces_the_packaged_one(elsewhere: Path) -> None:
    own = elsewhere / "conf" / "hydra" / "launcher"
    own.mkdir(parents=True)
    (own / "slurm.yaml").write_text(
        "defaults:\n  - prereg_slurm_schema\n  - _self_\npartition: mine\n"
    )
    launcher, _ = _launcher(elsewhere / "conf", "hydra/launcher=slurm")
    assert launcher.partition == "mine"
    assert launcher._target_ == qualname(SlurmLauncher)
    assert launcher.max_num_timeout == 0  # the schema's default, not the packaged profile's 3


def test_a_profile_of_ones_own_extends_the_packaged_one(elsewhere: Path) -> None:
    """As the slurm.yaml header tells users: ``defaults: [slurm, _self_]`` plus their fields."""
    own = elsewhere / "conf" / "hydra" / "launcher"
    own.mkdir(parents=True)
    (own / "mycluster.yaml").write_text(
        "defaults:\n  - slurm\n  - _self_\npartition: gpu\ntimeout_min: 240\n"
    )
    launcher, _ = _launcher(elsewhere / "conf", "hydra/launcher=mycluster")
    assert launcher._target_ == qualname(SlurmLauncher)
    assert (launcher.partition, launcher.timeout_min) == ("gpu", 240)
    assert launcher.max_num_timeout == 3  # the packaged profile's
    assert launcher.additional_parameters["requeue"] is True


def test_slurm_profile_extends_submitit_slurm(elsewhere: Path) -> None:
    launcher, sweep_dir = _launcher(
        elsewhere / "conf", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"
    )
    # prereg's SlurmLauncher: stock submission, but waits for every job and records dead ones
    assert launcher._target_ == qualname(SlurmLauncher)
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
    assert launcher._target_ == qualname(BoundedLocalLauncher)
    assert launcher.array_parallelism == 3
    assert launcher.submitit_folder == f"{sweep_dir}/.submitit/%j"


@pytest.mark.parametrize("name", ["local", "slurm"])
def test_a_launcher_pickles_by_reference(elsewhere: Path, name: str) -> None:
    """submitit pickles the launcher into each job: its class must be importable by name."""
    launcher = instantiate(_launcher(elsewhere / "conf", f"hydra/launcher={name}")[0])
    again = pickle.loads(pickle.dumps(launcher))  # plain pickle: classes only by reference
    assert type(again) is type(launcher)
    assert qualname(type(again)).startswith("hydra_plugins.prereg_launchers.launcher.")
    assert again.params == launcher.params


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


def test_any_sbatch_flag_can_be_added_through_additional_parameters(capsys):
    """``+hydra.launcher.additional_parameters.<flag>=...`` is free-form (every sbatch flag);
    an unknown key elsewhere under ``hydra.launcher`` is still one line."""
    from prereg.core.registration import CONF_DIR
    from prereg.sweep import app, precheck

    app.setup()  # resolvers and schemas, as `prereg run` does first
    base = ["-m", "hydra/launcher=slurm", "arm=primary", "cell=n4m2"]
    status, plan = precheck.check(
        [*base, "+hydra.launcher.additional_parameters.account=p"], CONF_DIR
    )
    assert status is None and plan is not None, capsys.readouterr().err
    status, plan = precheck.check([*base, "+hydra.launcher.partitionn=debug"], CONF_DIR)
    assert status == 2 and plan is None
    assert "hydra.launcher.partitionn: unknown key" in capsys.readouterr().err
