"""Launcher profiles (``hydra/launcher=slurm`` and ``=local``) and the local SLURM helper.

The profiles are YAML files in the repository's ``launchers/hydra/launcher/`` folder, one per
profile, each documented for the user to edit. :func:`register_launcher_profiles` stores them in
Hydra's ConfigStore under the ``hydra/launcher`` group, so they are found whatever the current
directory, and a profile's ``defaults: [submitit_slurm, _self_]`` still pulls in the
hydra-submitit-launcher schema it extends. ConfigStore contents travel with the pickled Hydra
singletons into each submitit job, so jobs see the same profiles.

``local`` is a bounded version of ``submitit_local``: at most ``array_parallelism`` jobs run at
once (default: the CPUs this process may use), so a laptop is not oversubscribed by a 12-run sweep.

:func:`ensure_slurm_cluster` checks (and, in CI or with ``PREREG_START_SLURM=1``, starts) the
single-node SLURM cluster of ``launchers/slurm_cluster.sh``; the test suite's fixture uses it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import types
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, LocalQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

GROUP = "hydra/launcher"
PROVIDER = "prereg"
#: Name of the structured schema the ``local`` profile extends (not meant to be selected).
LOCAL_SCHEMA = "prereg_local_schema"


def launchers_dir() -> Path:
    """The repository's ``launchers/`` folder (``PREREG_LAUNCHERS_DIR`` overrides)."""
    env = os.environ.get("PREREG_LAUNCHERS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    # src/prereg/sweep/launchers.py -> repository root
    return Path(__file__).resolve().parents[3] / "launchers"


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------
# Bounded local launcher
# --------------------------------------------------------------------------------------------
@dataclass
class BoundedLocalQueueConf(LocalQueueConf):
    """``submitit_local`` plus a cap on how many jobs run at once, and setup lines."""

    _target_: str = "hydra_plugins.prereg_launchers.BoundedLocalLauncher"
    # at most this many jobs at once; null = the number of CPUs available to the sweep process
    array_parallelism: int | None = None
    # shell lines run before each job (e.g. "export XLA_PYTHON_CLIENT_PREALLOCATE=false")
    setup: list[str] | None = None


class BoundedLocalLauncher(BaseSubmititLauncher):
    """submitit's local executor, with a sliding window of ``array_parallelism`` jobs.

    Each job is a separate process (submitit's local job controller) in
    ``<sweep dir>/.submitit/<pid>/``. The sweep process waits for every job to end (even after
    one died), then returns their results in order, raising the first failure.
    """

    _EXECUTOR = "local"

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None
        num_jobs = len(job_overrides)
        assert num_jobs > 0
        params = dict(self.params)
        limit = params.pop("array_parallelism", None) or available_cpus()
        limit = max(1, int(limit))
        folder = params.pop("submitit_folder")
        init: dict[str, Any] = {}
        if "max_num_timeout" in params:
            init["local_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(folder=folder, cluster="local", **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{(k if k in base else f"local_{k}"): v for k, v in params.items()}
        )

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(
            f"Bounded local sweep ({num_jobs} jobs, at most {limit} at once), "
            f"output dir : {sweep_dir}"
        )
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))

        job_params: list[tuple[Any, ...]] = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append(
                (
                    list(overrides),
                    "hydra.sweep.dir",
                    idx,
                    f"job_id_for_{idx}",
                    Singleton.get_state(),
                )
            )

        jobs: list[Any] = [None] * num_jobs
        waiting = deque(range(num_jobs))
        running: set[int] = set()
        try:
            while waiting or running:
                while waiting and len(running) < limit:
                    i = waiting.popleft()
                    jobs[i] = executor.submit(self, *job_params[i])
                    running.add(i)
                finished = {i for i in running if jobs[i].done()}
                running -= finished
                if not finished:
                    time.sleep(0.1)
        except BaseException:
            # Ctrl-C (or any error here): do not leave orphan job processes behind.
            for i in running:
                try:
                    jobs[i].cancel(check=False)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
            raise
        return [j.results()[0] for j in jobs]


def _rebuild_bounded_local_launcher(state: dict[str, Any]) -> BoundedLocalLauncher:
    launcher = BoundedLocalLauncher.__new__(BoundedLocalLauncher)
    launcher.__dict__.update(state)
    return launcher


# Hydra instantiates a launcher only from a registered plugin class whose name starts with
# "hydra_plugins." (Plugins._instantiate), imported from its `_target_`. Rather than installing
# a module into the shared hydra_plugins namespace, register_launcher_profiles() puts an alias
# module hydra_plugins.prereg_launchers into sys.modules holding the class below, and registers
# it with Hydra's Plugins. That alias module does not exist in other processes, so:
# - a launcher *instance* pickles (into each submitit job) as the real, importable
#   prereg.sweep.launchers.BoundedLocalLauncher (__reduce__ below);
# - the alias *class*, which is inside Hydra's Plugins singleton and so inside the singleton
#   state that every submitit launcher (slurm too) ships to its jobs, is pickled by value
#   (cloudpickle.register_pickle_by_value), so unpickling never imports the alias module.
PLUGIN_MODULE = "hydra_plugins.prereg_launchers"


class _BoundedLocalLauncherPlugin(BoundedLocalLauncher):
    def __reduce__(self) -> Any:
        return (_rebuild_bounded_local_launcher, (self.__dict__,))


_BoundedLocalLauncherPlugin.__module__ = PLUGIN_MODULE
_BoundedLocalLauncherPlugin.__name__ = "BoundedLocalLauncher"
_BoundedLocalLauncherPlugin.__qualname__ = "BoundedLocalLauncher"


def _register_plugin_alias() -> None:
    import cloudpickle
    from hydra.core.plugins import Plugins

    module = sys.modules.get(PLUGIN_MODULE)
    if module is None:
        module = types.ModuleType(PLUGIN_MODULE, "alias made by prereg.sweep.launchers")
        sys.modules[PLUGIN_MODULE] = module
    module.BoundedLocalLauncher = _BoundedLocalLauncherPlugin  # type: ignore[attr-defined]
    cloudpickle.register_pickle_by_value(module)
    Plugins.instance().register(_BoundedLocalLauncherPlugin)


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------
def register_launcher_profiles(directory: str | os.PathLike[str] | None = None) -> None:
    """Store every ``<launchers>/hydra/launcher/*.yaml`` in Hydra's ConfigStore.

    After this, ``hydra/launcher=<file stem>`` works from any working directory. Call it before
    ``@hydra.main`` composes the config (run.py does). Calling it again re-reads the files.
    If the folder is missing (e.g. a non-editable install without the repository), a warning
    is issued and only the stock launchers remain.
    """
    _register_plugin_alias()
    cs = ConfigStore.instance()
    cs.store(group=GROUP, name=LOCAL_SCHEMA, node=BoundedLocalQueueConf, provider=PROVIDER)
    folder = Path(directory) if directory is not None else launchers_dir()
    profile_dir = folder / "hydra" / "launcher"
    if not profile_dir.is_dir():
        warnings.warn(
            f"launcher profiles not found: {profile_dir} is missing (set PREREG_LAUNCHERS_DIR); "
            "only hydra/launcher=basic|submitit_local|submitit_slurm are available",
            stacklevel=2,
        )
        return
    for path in sorted(profile_dir.glob("*.yaml")):
        node = OmegaConf.load(path)
        cs.store(group=GROUP, name=path.stem, node=node, provider=PROVIDER)


# --------------------------------------------------------------------------------------------
# The single-node SLURM cluster (launchers/slurm_cluster.sh), for tests
# --------------------------------------------------------------------------------------------
def slurm_cluster_script() -> Path:
    return launchers_dir() / "slurm_cluster.sh"


def _run_script(subcommand: str, timeout: float) -> tuple[int, str]:
    script = slurm_cluster_script()
    if not script.is_file():
        return 127, f"{script} not found"
    env = dict(os.environ, CI=os.environ.get("CI", ""))
    try:
        proc = subprocess.run(
            ["bash", str(script), subcommand],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return 124, f"'{script.name} {subcommand}' did not finish within {timeout:.0f} s"
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode == 0:
        # status line is the last stdout line
        out = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        return 0, out[-1] if out else "ok"
    # the script's one-line reason: prefer its 'slurm_cluster.sh: ...' stderr line
    reasons = [ln for ln in proc.stderr.splitlines() if ln.startswith("slurm_cluster.sh:")]
    msg = reasons[-1] if reasons else (lines[-1] if lines else f"exit status {proc.returncode}")
    return proc.returncode, msg


def slurm_start_allowed() -> bool:
    """Starting a cluster is allowed in CI (``CI`` set) or with ``PREREG_START_SLURM=1``."""
    ci = os.environ.get("CI", "").strip().lower()
    return (ci not in ("", "0", "false", "no")) or os.environ.get("PREREG_START_SLURM") == "1"


def ensure_slurm_cluster(
    allow_start: bool | None = None, timeout: float = 900.0
) -> tuple[bool, str]:
    """Is the single-node SLURM cluster up? Start it if allowed. Returns ``(ok, message)``.

    ``message`` is the one-line status when ``ok``, otherwise the reason it is not available
    (meant for ``pytest.skip(f"SLURM not available: {message}")``).
    """
    rc, msg = _run_script("status", timeout=60)
    if rc == 0:
        return True, msg
    if allow_start is None:
        allow_start = slurm_start_allowed()
    if not allow_start:
        return False, f"{msg} (set PREREG_START_SLURM=1 to let the tests start it)"
    rc, up_msg = _run_script("up", timeout=timeout)
    if rc != 0:
        return False, up_msg
    return True, up_msg
