"""prereg's one entrypoint: ``python run.py [-m] [group=option ...] [key=value ...]``.

The command line is checked first (every job of a sweep composed and validated), so bad
input stops before any compute with one line naming the key; then Hydra runs the jobs
and, at the end of a multirun, the verdict callback writes the experiment's verdict.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import prereg  # noqa: F401 - first: sets single-threaded BLAS before numpy/scipy load
from prereg.ppo.ladder_runner import registered_sweep_order
from prereg.sweep import precheck
from prereg.sweep.dispatch import run_task
from prereg.sweep.launchers import register_launcher_profiles
from prereg.sweep.schema import register_schemas

CONF_DIR = Path(__file__).resolve().parent / "conf"

register_schemas()
register_launcher_profiles()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    """One Hydra job: dispatch to the experiment's runner."""
    return run_task(cfg)


if __name__ == "__main__":
    status = precheck.check(sys.argv[1:], CONF_DIR)
    if status:
        sys.exit(status)
    sys.argv[1:] = registered_sweep_order(sys.argv[1:], CONF_DIR)  # ladder: registered order
    main()
