"""Structured configs of prereg's launchers, stored in Hydra's ConfigStore on import (as
hydra-submitit-launcher's ``config.py`` stores ``submitit_local`` and ``submitit_slurm``).

They are the schemas the profiles ``conf/hydra/launcher/{local,slurm}.yaml`` extend
(``defaults: [prereg_local_schema, _self_]``); they are not meant to be selected themselves.
"""

# No ``from __future__ import annotations`` here: Hydra's plugin scan executes this module
# before it is in sys.modules, where dataclasses cannot resolve string annotations.
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

GROUP = "hydra/launcher"
PROVIDER = "prereg_launchers"
#: ConfigStore names of the schemas below.
LOCAL_SCHEMA = "prereg_local_schema"
SLURM_SCHEMA = "prereg_slurm_schema"


@dataclass
class BoundedLocalQueueConf(LocalQueueConf):
    """``submitit_local`` plus a cap on how many jobs run at once, and setup lines."""

    _target_: str = "hydra_plugins.prereg_launchers.launcher.BoundedLocalLauncher"
    # at most this many jobs at once; null = the number of CPUs available to the sweep process
    array_parallelism: int | None = None
    # shell lines run before each job (e.g. "export XLA_PYTHON_CLIENT_PREALLOCATE=false")
    setup: list[str] | None = None
    # start no new job after one failed or halted (as run.py --fail-fast)
    fail_fast: bool = False


@dataclass
class PreregSlurmQueueConf(SlurmQueueConf):
    """``submitit_slurm`` (every field) with prereg's SlurmLauncher, plus ``wait`` (false:
    submit the array and a verdict job, then return) and ``fail_fast``."""

    _target_: str = "hydra_plugins.prereg_launchers.launcher.SlurmLauncher"
    # false: submit the job array and a verdict job (afterany) and return at once
    wait: bool = True
    # cancel the array's tasks not yet started once one failed or halted (as --fail-fast)
    fail_fast: bool = False


ConfigStore.instance().store(
    group=GROUP, name=LOCAL_SCHEMA, node=BoundedLocalQueueConf(), provider=PROVIDER
)
ConfigStore.instance().store(
    group=GROUP, name=SLURM_SCHEMA, node=PreregSlurmQueueConf(), provider=PROVIDER
)
