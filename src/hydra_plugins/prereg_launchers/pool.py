"""``hydra/launcher=pool``: a multirun's jobs in a few worker processes that live for the sweep.

:class:`~.launcher.BoundedLocalLauncher` starts one process per job, so every job pays Python's
start-up and JAX's import again (about 2 s each on a 2-core machine, more than an exp9 run
computes). Here ``workers`` processes (default: the CPUs this process may use, at most one per
job) are started once (by ``run.py``'s preflight, :func:`prestart`, else at the launcher's
setup), forked from a server that imports the study's modules (JAX) once (:func:`_context`);
each sets prereg up while the sweep process is still planning, then takes jobs one at a
time and runs each exactly as a submitit job does (Hydra's ``run_job`` on the job's sweep
config), in the sweep's own run directories. The sweep
process composes each job's config (once: Hydra's sweeper has just composed it to check it,
:class:`prereg.sweep.overrides.ComposeOnce` keeps it) and sends it; workers compose nothing.

Kept from the local launcher: the jobs run in the sweep's order as workers free up; the sweep
waits for every job and returns their results in order; a worker that dies during a job (kill -9,
out of memory) has its job written ``failed`` in ``run.json`` ("killed: job process ended without
a result (exit status -9, local job <pid>)", :mod:`.dead_jobs`), a fresh worker takes the next
job and the verdict still runs; ``fail_fast`` (or ``--fail-fast``) starts no job after one
failed, halted or died. Each job takes its run directory's lease itself (dispatch), as in every
launcher. Jobs' results equal the sequential launcher's byte for byte (same code, same inputs).

Longer than 400 lines because it holds both ends of one pipe protocol, which must agree message
by message: the sweep process's side (starting workers, the fork server, :class:`_Pool`) and the
worker's (:func:`worker_main`).
"""

# No ``from __future__ import annotations`` here: Hydra's plugin scan executes this module
# before it is in sys.modules (see config.py).
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from multiprocessing.connection import Connection, wait
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import DictConfig, open_dict

from .dead_jobs import (
    _record_dead_job,
    dead_job_return,
    dead_jobs_message,
    death_reason,
    returned_failure,
)
from .launcher import available_cpus, fail_fast, not_run_return

log = logging.getLogger(__name__)

#: ConfigStore name of :class:`PoolQueueConf`.
POOL_SCHEMA = "prereg_pool_schema"


class StartMethod(str, Enum):
    """How workers start: forks of a server that imported the study once, or fresh
    interpreters that each import it (``spawn``: slower to start, nothing shared)."""

    forkserver = "forkserver"
    spawn = "spawn"


@dataclass
class PoolQueueConf:
    """``hydra/launcher=pool``'s schema (``conf/hydra/launcher/pool.yaml`` extends it)."""

    _target_: str = "hydra_plugins.prereg_launchers.pool.PoolLauncher"
    # worker processes; null = the CPUs this process may use (never more than the jobs)
    workers: int | None = None
    # start no new job after one failed, halted or died (as run.py --fail-fast)
    fail_fast: bool = False
    # forkserver: workers fork from a server that imported the study once; spawn: each imports
    start: StartMethod = StartMethod.forkserver


ConfigStore.instance().store(
    group="hydra/launcher", name=POOL_SCHEMA, node=PoolQueueConf(), provider="prereg_launchers"
)


class PoolLauncher(BaseSubmititLauncher):
    """Hydra launcher: ``workers`` long-lived local processes take the sweep's jobs in turn."""

    _EXECUTOR = "local"  # dead jobs are recorded as the local launcher's ("local job <pid>")

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None
        num_jobs = len(job_overrides)
        assert num_jobs > 0
        size = pool_size(self.params.get("workers"), num_jobs)
        stop_after_failure = fail_fast(dict(self.params))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Pool sweep ({num_jobs} jobs, {size} worker processes), output dir : {sweep_dir}")
        for i, overrides in enumerate(job_overrides):
            log.info(f"\t#{initial_job_idx + i} : {' '.join(filter_overrides(overrides))}")
        pool = _Pool(self)
        pool.adopt(prestarted())  # the workers started at setup (or before), if still there
        return pool.run(job_overrides, initial_job_idx, stop_after_failure, size)

    def setup(self, **kwargs: Any) -> None:
        """Hydra's setup, then the workers, unless ``run.py``'s preflight has started them
        (:func:`prestart`): started now, in the background, so that they import JAX while the
        sweep process is still composing every job (Hydra's sweeper checks them all first)."""
        super().setup(**kwargs)
        if not (_STARTING or _PRESTARTED):
            prestart_configured(_runner(self.config), self.params)

    def run_one(self, sweep_config: DictConfig) -> JobReturn:
        """One job in this (worker) process on the sweep config the sweep process composed: as
        ``BaseSubmititLauncher.__call__`` runs it (Hydra's singletons are set once per
        worker)."""
        assert self.hydra_context is not None and self.task_function is not None
        setup_globals()
        return run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )

    def job_config(self, overrides: Sequence[str], num: int) -> bytes:
        """Job ``num``'s sweep config, pickled for a worker (composed once, in this process)."""
        import cloudpickle

        assert self.hydra_context is not None and self.config is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(
            self.config, list(overrides)
        )
        with open_dict(sweep_config.hydra.job) as job:
            # as Hydra's basic launcher: the job's number, so that the job's .hydra records
            # are the same bytes whichever worker runs it, in this sweep or a re-run of it
            job.num = job.id = num
        return cloudpickle.dumps(sweep_config)


def start_method(value: Any) -> str:
    """``hydra.launcher.start``'s value as text (null: forkserver)."""
    return str(getattr(value, "value", value) or StartMethod.forkserver.value)


def pool_size(workers: Any, jobs: int | None = None) -> int:
    """How many workers: ``workers`` (null: the CPUs this process may use), at most ``jobs``."""
    size = int(workers or available_cpus())
    return max(1, size if jobs is None else min(jobs, size))


def _runner(config: DictConfig | None) -> str:
    """The study's run function the sweep's config names ("" before Hydra sets it)."""
    return str(config.get("runner", "")) if config is not None else ""


def _job_modules(runner: str) -> list[str]:
    """What the fork server imports for study ``runner``'s workers: prereg's set-up, JAX, and
    the study's run and ``preload`` modules where they are prereg's own. A module that raises
    on import kills the server (with a traceback), so a study from outside prereg is imported
    by each worker instead, where a failure is its job's error."""
    from prereg.core.experiments import experiment_or_none

    modules = ["prereg.sweep.app", "jax"]
    exp = experiment_or_none(runner)
    if exp is not None:
        run = exp.run if isinstance(exp.run, str) else getattr(exp.run, "__module__", "")
        study = [run.split(":", 1)[0], *exp.preload]
        modules += [m for m in study if m.startswith("prereg.")]
    return modules


def _context(runner: str, start: str = "forkserver") -> Any:
    """Where workers come from: a fork server that has imported the study's modules (JAX,
    optax, pandas) once, so each worker is a fork of it instead of a fresh interpreter that
    imports them again (about 1-1.5 CPU s each here). The server holds no JAX backend (no
    threads), so forking it is safe; the sweep process, which may, is never forked. Where
    there is no fork server (Windows), or ``start`` says so, fresh interpreters (spawn)."""
    import multiprocessing

    if start == "spawn" or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_job_modules(runner))  # used when the server starts (once)
    return ctx


def _spawn(runner: str, start: str = "forkserver") -> SimpleNamespace:
    """A worker process that imports ``runner`` at once, then waits for its launcher (a fork
    of the fork server; a fresh interpreter if the server cannot start one)."""
    import multiprocessing

    ctx = _context(runner, start)
    try:
        return _start(ctx, runner)
    except (EOFError, OSError) as exc:
        if ctx.get_start_method() == "spawn":
            raise
        log.warning(f"the pool's fork server failed ({exc!r}); starting workers afresh")
        return _start(multiprocessing.get_context("spawn"), runner)


def _start(ctx: Any, runner: str) -> SimpleNamespace:
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=worker_main, args=(child,), daemon=True)
    proc.start()
    child.close()
    parent.send((runner, sys.path))  # a fork of the server has the server's path, not ours
    return SimpleNamespace(proc=proc, conn=parent, job=None)


#: Workers started before Hydra (:func:`prestart`), for the pool launcher's setup to adopt.
_PRESTARTED: list[SimpleNamespace] = []
#: The thread :func:`prestart` starts them from (see :func:`prestarted`).
_STARTING: list[Any] = []


def prestart(runner: str, count: int, start: str = "forkserver") -> None:
    """Start ``count`` workers now, importing ``runner`` (the study's run function: JAX) while
    the sweep process checks and composes the jobs; :meth:`PoolLauncher.setup` adopts them.

    From a thread: the first worker's start waits for the fork server to import the study
    (2-3 s), which the sweep process spends composing the jobs meanwhile. A worker that cannot
    be started is left out (the launcher starts its own, and says why if it cannot)."""
    import threading

    def start_all() -> None:
        try:
            for _ in range(count):
                _PRESTARTED.append(_spawn(runner, start))
        except Exception as exc:  # noqa: BLE001 - the launcher starts what is missing
            log.debug(f"prestarting pool workers failed: {exc!r}")

    thread = threading.Thread(target=start_all, name="prereg-pool-start", daemon=True)
    thread.start()
    _STARTING.append(thread)


def prestart_configured(runner: str, params: Any, jobs: int | None = None) -> int:
    """:func:`prestart` the workers ``hydra.launcher`` (``params``) asks for: ``workers`` of
    them (at most ``jobs``), started the ``start`` way; how many."""
    count = pool_size(params.get("workers"), jobs)
    prestart(runner, count, start_method(params.get("start")))
    return count


def prestarted() -> list[SimpleNamespace]:
    """The workers :func:`prestart` started, once it has started them all."""
    while _STARTING:
        _STARTING.pop().join()
    return _PRESTARTED


#: Workers told to end, not yet waited for (:meth:`_Pool.close`).
_EXITING: list[SimpleNamespace] = []


def end_workers() -> None:
    """Wait for the workers told to end (kill one that takes over 30 s), and end the
    prestarted ones no launcher adopted (the sweep stopped before Hydra ran)."""
    prestarted()  # once the thread starting them is done
    while _PRESTARTED:
        _kill(_PRESTARTED.pop())
    while _EXITING:
        w = _EXITING.pop(0)
        w.proc.join(timeout=30)
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join()
        w.conn.close()
    _stop_fork_server()


def _kill(worker: SimpleNamespace) -> None:
    """End a worker that holds no job: nothing to clean up, and no traceback on the terminal."""
    worker.proc.kill()
    worker.proc.join()
    worker.conn.close()


def _stop_fork_server() -> None:
    """Once every worker has ended, stop the fork server and wait for it: it exits now, not
    with this process, and its CPU time and its workers' count as this process's children's
    (``time``, ``getrusage``), as spawned workers' do. A no-op where none runs."""
    import multiprocessing.forkserver as forkserver

    server = getattr(forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)  # CPython's own (its tests use it); absent: left
    if stop is None or getattr(server, "_forkserver_pid", None) is None:
        return
    try:
        stop()
    except OSError:  # already gone
        pass


class _Pool:
    """The sweep process's side: start workers, hand out jobs, collect results and deaths."""

    def __init__(self, launcher: PoolLauncher) -> None:
        import cloudpickle  # submitit's own pickler: the launcher travels as submitit sends it

        self.launcher = launcher
        self.runner = _runner(launcher.config)
        self.start = start_method(launcher.params.get("start"))
        self.payload = cloudpickle.dumps((launcher, Singleton.get_state()))
        self.workers: list[Any] = []
        self.retired: list[Any] = []
        self.warming: Any = None  # the thread importing the verdict's modules

    def start_worker(self) -> Any:
        worker = _spawn(self.runner, self.start)
        worker.conn.send_bytes(self.payload)
        self.workers.append(worker)
        return worker

    def warm_verdict(self) -> None:
        """Once no job waits, import what the verdict needs in a thread of this (otherwise
        idle) process while the last jobs run (:func:`prereg.sweep.callbacks.warm_verdict`)."""
        if self.warming is None:
            import threading

            from prereg.sweep.callbacks import warm_verdict

            self.warming = threading.Thread(target=warm_verdict, args=(self.runner,), daemon=True)
            self.warming.start()

    def adopt(self, started: list[SimpleNamespace]) -> None:
        """Take over workers already started (:func:`prestart`); ``started`` is emptied. One
        that has died meanwhile is left out (:meth:`run` starts what is missing)."""
        while started:
            worker = started.pop(0)
            try:
                worker.conn.send_bytes(self.payload)
            except (OSError, ValueError):
                _kill(worker)
                continue
            self.workers.append(worker)

    def run(
        self, job_overrides: Sequence[Sequence[str]], first: int, fail_fast: bool, size: int
    ) -> list[JobReturn]:
        """Run the jobs on ``size`` workers (started here, or kept from setup; extras end)."""
        import cloudpickle

        from prereg.core.atomic import CannotWrite

        returns: dict[int, JobReturn] = {}
        dead = []
        waiting = deque(range(len(job_overrides)))
        stop = False
        try:
            while len(self.workers) < size:
                self.start_worker()
            for w in self.workers[size:]:  # more workers than jobs
                w.conn.send_bytes(_STOP)
            self.retired, self.workers = self.workers[size:], self.workers[:size]
            while True:
                for w in list(self.workers):
                    if w.job is None and waiting and not stop:
                        if not w.proc.is_alive():  # died between jobs: nothing lost, replace it
                            self.workers.remove(w)
                            w = self.start_worker()
                        w.job = waiting.popleft()
                        w.conn.send_bytes(self.launcher.job_config(job_overrides[w.job],
                                                                   first + w.job))  # fmt: skip
                busy = [w for w in self.workers if w.job is not None]
                if not busy:
                    break
                if not waiting or stop:
                    self.warm_verdict()
                ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
                for w in busy:
                    if w.conn not in ready and w.proc.sentinel not in ready:
                        continue
                    i, w.job = w.job, None
                    try:
                        ret = cloudpickle.loads(w.conn.recv_bytes())
                    except (EOFError, OSError):  # the worker died during the job
                        w.proc.join()
                        why = death_reason("local", "FINISHED", str(w.proc.pid),
                                           exit_status=w.proc.exitcode)  # fmt: skip
                        job = SimpleNamespace(job_id=str(w.proc.pid))
                        d = _record_dead_job(self.launcher, job, first + i, job_overrides[i], why)
                        dead.append(d)
                        ret = dead_job_return(d)
                        self.workers.remove(w)
                        if waiting and not (fail_fast or stop):
                            self.start_worker()
                    if isinstance(ret, CannotWrite):  # a full or read-only disk stops the
                        raise ret  # sweep, as in the sequential launcher: one line in run.py
                    returns[i] = ret
                    if fail_fast and not stop and returned_failure(ret):
                        stop = True
                        if waiting:
                            log.warning(f"fail-fast: job #{first + i} did not complete; "
                                        f"{len(waiting)} job(s) not started")  # fmt: skip
        except BaseException as exc:
            # Ctrl-C, a signal to this process only, or an error: each busy worker gets the same
            # signal (SIGTERM for an error), checkpoints its job and records the stop; close()
            # waits for them; no worker is left behind
            signum = getattr(exc, "signum", signal.SIGTERM)
            for w in self.workers + self.retired:
                if w.proc.is_alive():
                    os.kill(w.proc.pid, signum)
            self.close()
            raise
        self.close(wait=False)  # they exit (JAX's teardown) while this process writes the verdict
        if dead:
            log.error(dead_jobs_message(dead, len(job_overrides)))
        return [returns.get(i) or not_run_return(o) for i, o in enumerate(job_overrides)]

    def close(self, wait: bool = True) -> None:
        """Tell every worker to end; wait for it (then kill one that does not), or with
        ``wait=False`` leave that to :func:`end_workers` (``run.py`` calls it at the end)."""
        for w in self.workers:
            try:
                w.conn.send_bytes(_STOP)
            except (OSError, ValueError):
                pass
        _EXITING.extend(self.workers + self.retired)
        self.workers, self.retired = [], []
        if wait:
            end_workers()


def worker_main(conn: Connection) -> None:
    """A worker process: set prereg up, import the study's runner, take its launcher, then run
    jobs until told to stop (:func:`_work`). A signal (Ctrl-C, the sweep process's SIGTERM) ends
    it quietly wherever it lands: a job records its own stop, and the sweep process says why."""
    from prereg.core.signals import RunInterrupted, install_interrupt_handlers

    install_interrupt_handlers()
    try:
        _work(conn)
    except RunInterrupted as exc:
        sys.exit(128 + exc.signum)


def _work(conn: Connection) -> None:
    """The worker's life after its signal handlers: each job's JobReturn goes back pickled (an
    unpicklable one as its exception's text); a full or read-only disk goes back as the
    ``CannotWrite`` that stops the sweep."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # workers may share a GPU
    import cloudpickle

    from prereg.core.atomic import CannotWrite
    from prereg.sweep.app import setup

    setup()
    logging.raiseExceptions = False  # a log line the disk refuses is not the job's error
    runner, sys.path[:] = conn.recv()
    if runner:  # imported once here, while the sweep process plans (JAX for exp9 and PPO)
        from prereg.core.experiments import get_experiment

        try:
            get_experiment(runner, "runner").import_for_jobs()
        except Exception:  # noqa: BLE001 - the job itself will say what is wrong
            pass
    payload = _receive(conn)
    if not payload:  # never adopted: the sweep stopped before its launcher started
        return
    launcher, singletons = cloudpickle.loads(payload)
    Singleton.set_state(singletons)
    while data := _receive(conn):
        sweep_config = cloudpickle.loads(data)
        try:
            ret = launcher.run_one(sweep_config)
        except CannotWrite as exc:  # the sweep process stops the sweep and prints one line
            conn.send_bytes(cloudpickle.dumps(exc))
            continue
        try:
            data = cloudpickle.dumps(ret)
        except Exception as exc:  # noqa: BLE001 - e.g. an exception that does not pickle
            value = getattr(ret, "_return_value", None)
            overrides = list(sweep_config.hydra.overrides.task)
            failed = JobReturn(overrides=overrides, status=JobStatus.FAILED)
            failed.return_value = RuntimeError(f"{value!r} (result not picklable: {exc})")
            data = cloudpickle.dumps(failed)
        conn.send_bytes(data)


#: What tells a worker to end (a job is its pickled config: never empty).
_STOP = b""


def _receive(conn: Connection) -> bytes:
    """The next message for a worker; :data:`_STOP` once the sweep process has gone."""
    try:
        return conn.recv_bytes()
    except (EOFError, OSError):
        return _STOP
