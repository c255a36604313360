"""prereg's Hydra application: ``prereg run [-m] ...`` and ``python run.py [-m] ...``.

The command line is checked first (every job of a sweep composed and validated), so bad
input stops before any compute with one line naming the key; so does an output directory
that cannot be written or that holds runs of another registration.  Then Hydra runs the
jobs and, at the end of a multirun, the verdict callback writes the study's verdict.
SIGTERM/Ctrl-C and a full or read-only disk end with one ``error:`` line, not a traceback.

The config groups are package data (``prereg/conf``), so this runs from a wheel install in
any directory; outputs go under the current directory's ``outputs/``.  Importing this module
does nothing: :func:`cli` sets up threads, signals and Hydra's stores when it is called.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prereg.core.registration import CONF_DIR
from prereg.sweep import outcome
from prereg.sweep.outcome import FLAGS

CONFIG_NAME = "config"


def _task(cfg: Any) -> dict:
    """One Hydra job: dispatch to the study's runner."""
    from hydra.core.hydra_config import HydraConfig

    from prereg.core.atomic import UNWRITABLE_ERRNOS, cannot_write
    from prereg.sweep.dispatch import run_task  # lazily: bad input exits before this import

    try:
        return run_task(cfg)
    except OSError as exc:  # a single run re-raises its failure; an unwritable output: one line
        where = HydraConfig.get().runtime.output_dir
        unwritable = cannot_write(exc, where, UNWRITABLE_ERRNOS)
        if unwritable is None:
            raise
        raise unwritable from exc


def hydra_main():
    """The Hydra entry point over prereg's package config (built on first use)."""
    import hydra

    return hydra.main(config_path=str(CONF_DIR), config_name=CONFIG_NAME, version_base="1.3")(_task)


def setup() -> None:
    """What every prereg process needs before Hydra composes anything (idempotent).

    One BLAS thread per process, set before numpy/scipy load their OpenBLAS: prereg's jobs are
    single-core by design (parallelism is across jobs); OpenBLAS threads contending for the
    cores made JAX's LAPACK solves 10-20x slower on a busy 2-core machine.  Export
    OPENBLAS_NUM_THREADS yourself to override.  Then the resolvers and every study's schema.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from prereg.core.dirnames import register_resolvers
    from prereg.sweep.schema import register_schemas

    register_resolvers()
    register_schemas()


def preflight(argv: list[str]) -> int | None:
    """Everything checked before Hydra starts, from ONE plan of the command line: the config
    of every job (or of every sweep bound), the study's sweep order and default launcher, then
    the output directory (composed with the command line Hydra gets: one composition for both).
    The plan is kept for the sweep manifest and for Hydra's config loader (:func:`hydra_uses`);
    a pool sweep's workers start here, importing the study while Hydra composes the jobs it
    has not composed yet (:mod:`hydra_plugins.prereg_launchers.pool`).
    The exit status on bad input, else None.
    """
    from prereg.sweep import precheck
    from prereg.sweep import preflight as planning
    from prereg.sweep.default_launcher import prestart_pool, with_default_launcher
    from prereg.sweep.order import study_sweep_order
    from prereg.sweep.outputdir import check_output_dir

    # the default launcher first (exp9: worker processes on a multi-core machine): it is one of
    # the overrides every job is composed with
    status, plan = precheck.check(argv, CONF_DIR, prepare=with_default_launcher)
    if status or plan is None:
        planning.remember(None)
        return status
    sys.argv[1:] = study_sweep_order(plan)  # e.g. the ladder's registered order
    status = check_output_dir(plan)
    if status:
        return status
    prestart_pool(plan)  # only once the command line is known good: bad input starts nothing
    planning.remember(plan)
    return None


@contextmanager
def hydra_uses(loader: Any) -> Iterator[None]:
    """Hydra composes with ``loader`` (the preflight's, which composes each config once) instead
    of a fresh loader of its own, when both search the same config path; restored after."""
    import hydra._internal.hydra as hydra_internal

    made = hydra_internal.ConfigLoaderImpl

    def same_search_path(config_search_path: Any) -> Any:
        if loader is not None and str(config_search_path) == str(loader.config_search_path):
            return loader
        return made(config_search_path=config_search_path)

    hydra_internal.ConfigLoaderImpl = same_search_path  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        hydra_internal.ConfigLoaderImpl = made  # type: ignore[misc]


def split_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(prereg's flags, Hydra's arguments)`` of a command line."""
    return [a for a in argv if a in FLAGS], [a for a in argv if a not in FLAGS]


def cli(argv: list[str]) -> int:
    """Check the command line and the output directory, then run Hydra; the exit status.

    A sweep exits 1 when any job did not complete (failed, halted, refused, not run, running
    elsewhere), after its verdict is written (:mod:`prereg.sweep.callbacks`).  ``--wait``: a job
    whose directory another live process owns waits for it; ``--fail-fast``: no new job starts
    after one failed or halted.
    """
    from prereg.core.signals import install_interrupt_handlers

    install_interrupt_handlers()  # before the slow imports: SIGTERM/Ctrl-C is handled from here
    from prereg.sweep.default_launcher import start_cpu_window

    start_cpu_window()  # what other processes use while this one starts: the default launcher
    import logging

    from prereg.core.atomic import CannotWrite
    from prereg.core.signals import RunInterrupted, interrupted_message
    from prereg.sweep import preflight as planning

    flags, argv = split_flags(argv)
    saved = {FLAGS[f]: os.environ.get(FLAGS[f]) for f in FLAGS}
    try:
        for flag in flags:
            os.environ[FLAGS[flag]] = "1"
        setup()
        outcome.reset()
        sys.argv[1:] = argv
        status = preflight(argv)
        if status:
            return status
        logging.raiseExceptions = False  # a log line the disk refuses is not the run's error
        plan = planning.current_plan()
        with hydra_uses(plan.loader if plan is not None else None):
            hydra_main()()
        return outcome.exit_status()
    except RunInterrupted as exc:
        print(interrupted_message(exc), file=sys.stderr)
        return 128 + exc.signum
    except CannotWrite as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        from prereg.sweep.default_launcher import end_pool_workers

        end_pool_workers()  # exiting pool workers; those no launcher took (bad input)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def main() -> None:
    """Console entry point of ``python run.py``: exit with :func:`cli`'s status."""
    sys.exit(cli(sys.argv[1:]))
