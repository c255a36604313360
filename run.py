"""prereg's one entrypoint: ``python run.py [-m] [group=option ...] [key=value ...]``.

The command line is checked first (every job of a sweep composed and validated), so bad
input stops before any compute with one line naming the key; so does an output directory
that cannot be written or that holds runs of another registration.  Then Hydra runs the
jobs and, at the end of a multirun, the verdict callback writes the experiment's verdict.
SIGTERM/Ctrl-C and a full or read-only disk end with one ``error:`` line, not a traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import prereg  # noqa: F401 - first: sets single-threaded BLAS before numpy/scipy load
from prereg.core.signals import install_interrupt_handlers

install_interrupt_handlers()  # before the slow imports: SIGTERM/Ctrl-C from here on is handled

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from prereg.core.atomic import UNWRITABLE_ERRNOS, CannotWrite, cannot_write  # noqa: E402
from prereg.core.signals import RunInterrupted, interrupted_message  # noqa: E402
from prereg.sweep import precheck  # noqa: E402
from prereg.sweep.launchers import register_launcher_profiles  # noqa: E402
from prereg.sweep.outputdir import check_output_dir  # noqa: E402
from prereg.sweep.schema import register_schemas  # noqa: E402

CONF_DIR = Path(__file__).resolve().parent / "conf"

register_schemas()
register_launcher_profiles()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    """One Hydra job: dispatch to the experiment's runner."""
    from prereg.sweep.dispatch import run_task  # lazily: bad input exits before this import

    try:
        return run_task(cfg)
    except OSError as exc:  # a single run re-raises its failure; an unwritable output: one line
        from hydra.core.hydra_config import HydraConfig

        where = HydraConfig.get().runtime.output_dir
        unwritable = cannot_write(exc, where, UNWRITABLE_ERRNOS)
        if unwritable is None:
            raise
        raise unwritable from exc


def preflight(argv: list[str]) -> int | None:
    """Everything checked before Hydra starts: the command line, then the output directory."""
    return precheck.check(argv, CONF_DIR) or check_output_dir(argv, CONF_DIR)


def cli(argv: list[str]) -> int:
    """Check the command line and the output directory, then run Hydra; the exit status."""
    try:
        status = preflight(argv)
        if status:
            return status
        from prereg.ppo.ladder_runner import registered_sweep_order

        sys.argv[1:] = registered_sweep_order(argv, CONF_DIR)  # ladder: registered order
        logging.raiseExceptions = False  # a log line the disk refuses is not the run's error
        main()
    except RunInterrupted as exc:
        print(interrupted_message(exc), file=sys.stderr)
        return 128 + exc.signum
    except CannotWrite as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
