"""hydra/launcher=pool: worker processes that live for the sweep. Its results equal the
sequential launcher's byte for byte; a worker killed during a job leaves that job failed and the
rest of the sweep (a fresh worker) and its verdict go on; exp9 multiruns get it by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, run_cli
from launchers.killed_job import (
    assert_the_killed_job_is_recorded_and_the_rest_kept,
    sweep_with_a_killed_job,
)

from prereg.core.registration import CONF_DIR
from prereg.sweep import preflight
from prereg.sweep.app import setup
from prereg.sweep.default_launcher import POOL, with_default_launcher


def _plan(*argv: str) -> preflight.Plan:
    setup()  # the schemas and resolvers, as run.py sets them up before planning
    return preflight.plan(list(argv), CONF_DIR)


def test_free_cpus_are_the_available_ones_less_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import hydra_plugins.prereg_launchers.launcher as launcher
    import prereg.sweep.default_launcher as dl

    # the module object, not its dotted name: the namespace package's attribute need not exist
    monkeypatch.setattr(launcher, "available_cpus", lambda: 2)
    monkeypatch.setattr(dl, "_window", None)  # no window measured: the 1-minute load average
    for load, free in ((0.3, 2), (1.2, 1), (7.5, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert dl.free_cpus() == free
    for busy, free in ((0.3, 2), (0.6, 1), (1.4, 1), (3.0, 1)):  # measured: nearest CPU
        monkeypatch.setattr(dl, "busy_elsewhere", lambda busy=busy: busy)
        assert dl.free_cpus() == free


def test_the_busy_cpus_are_measured_now_not_a_minute_ago() -> None:
    """A process spinning on a CPU while this one idles counts as about one busy CPU (the load
    average would need a minute to see it); under MIN_WINDOW_S there is no figure."""
    import time

    import prereg.sweep.default_launcher as dl

    dl.start_cpu_window()
    assert dl.busy_elsewhere() is None  # too short a window to say anything
    spin = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"
    proc = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(1.0)
        busy = dl.busy_elsewhere()
    finally:
        proc.wait()
    assert busy is not None and busy >= 0.5, busy  # the spinner (and whatever else runs)


def test_exp9_multiruns_get_the_pool_by_default_on_more_than_one_cpu() -> None:
    sweep = ("-m", "arm=baseline,primary", "cell=n4m2")
    assert with_default_launcher(_plan(*sweep), cpus=2)[-1] == POOL
    assert POOL not in with_default_launcher(_plan(*sweep), cpus=1)
    named = with_default_launcher(_plan(*sweep, "hydra/launcher=basic"), cpus=2)
    assert POOL not in named and "hydra/launcher=basic" in named
    assert POOL not in with_default_launcher(_plan("-m", "arm=baseline", "cell=n4m2"), cpus=2)
    assert POOL not in with_default_launcher(_plan("arm=baseline", "cell=n4m2"), cpus=2)
    ppo = ("-m", "experiment=ppo", "tier=small", "ppo.seed=0,1")
    assert POOL not in with_default_launcher(_plan(*ppo), cpus=2)  # PPO uses every core itself


def test_a_rerun_keeps_the_launcher_its_sweep_directory_got(tmp_path: Path) -> None:
    """Whatever the load now: a re-run into a sweep directory takes the launcher recorded in its
    multirun.yaml (so finished jobs' .hydra records keep their bytes); a new directory decides
    from the free CPUs."""
    sweep = ("-m", "arm=baseline,primary", "cell=n4m2")
    for recorded, cpus in ((True, 1), (False, 2)):
        d = tmp_path / str(recorded)
        d.mkdir()
        hydra_overrides = [f"hydra.sweep.dir={d}", *([POOL] if recorded else [])]
        (d / "multirun.yaml").write_text(f"hydra:\n  overrides:\n    hydra: {hydra_overrides}\n")
        argv = with_default_launcher(_plan(*sweep, f"hydra.sweep.dir={d}"), cpus=cpus)
        assert (POOL in argv) is recorded
    fresh = with_default_launcher(_plan(*sweep, f"hydra.sweep.dir={tmp_path / 'new'}"), cpus=2)
    assert POOL in fresh
    # the composed directory counts, however it is set: here ++ (no plain hydra.sweep.dir=)
    forced = with_default_launcher(_plan(*sweep, f"++hydra.sweep.dir={tmp_path / 'True'}"), cpus=1)
    assert POOL in forced
    # a directory not fixed yet (an interpolation) holds no earlier sweep: decided afresh
    dated = f"hydra.sweep.dir={tmp_path / 'True'}/${{now:%Y}}"
    assert POOL not in with_default_launcher(_plan(*sweep, dated), cpus=1)


_START_WORKERS = """
from hydra_plugins.prereg_launchers import pool
good = pool._job_modules
def start():
    w = pool._spawn("exp9")
    w.conn.send_bytes(pool._STOP)  # never adopted: it ends
    w.proc.join(60)
    print("WORKER", type(w.proc._popen).__module__, w.proc.exitcode, flush=True)
pool._job_modules = lambda runner: [*good(runner), "breaks_on_import"]
start()
pool._job_modules = good  # the dead server is started again, with modules that import
start()
"""


def test_workers_fork_from_a_server_and_start_afresh_if_it_fails(tmp_path: Path) -> None:
    """Workers are forks of the fork server (which imported the study once); a server that
    dies importing a module costs a warning, and the worker is started afresh (spawn)."""
    (tmp_path / "breaks_on_import.py").write_text("raise ValueError('broken module')\n")
    path = os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, "-c", _START_WORKERS], env={**os.environ, "PYTHONPATH": path},
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    workers = [x.split()[1:] for x in proc.stdout.splitlines() if x.startswith("WORKER ")]
    assert workers == [
        ["multiprocessing.popen_spawn_posix", "0"],
        ["multiprocessing.popen_forkserver", "0"],
    ], proc.stdout
    assert "the pool's fork server failed" in proc.stderr


@pytest.mark.slow
def test_pool_metrics_equal_the_sequential_launchers_byte_for_byte(tmp_path: Path) -> None:
    jobs = ("-m", "arm=baseline,primary", "cell=n4m2", "registration.step_cap=25")
    for launcher in ("pool", "basic"):
        proc = run_cli(
            *jobs, f"hydra/launcher={launcher}", f"hydra.sweep.dir={tmp_path / launcher}"
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(d.name for d in (tmp_path / "pool").iterdir() if (d / "metrics.csv").exists())
    assert len(runs) == 2
    for name in runs:
        for file in ("metrics.csv", "fd_check.json"):  # P1 FD: a sibling's, or computed
            pooled = (tmp_path / "pool" / name / file).read_bytes()
            assert pooled == (tmp_path / "basic" / name / file).read_bytes(), (name, file)
    for name in ("verdict.json",):
        assert (
            json.loads((tmp_path / "pool" / name).read_text())["outcome"]
            == json.loads((tmp_path / "basic" / name).read_text())["outcome"]
        )
    # a re-run of the pool sweep redoes nothing and rewrites Hydra's records with the same
    # bytes (hydra.job.id is the job's number, as in Hydra's basic launcher, not a worker's)
    records = {f: f.read_bytes() for f in (tmp_path / "pool").glob("*/.hydra/*.yaml")}
    assert len(records) == 2 * 3
    proc = run_cli(*jobs, "hydra/launcher=pool", f"hydra.sweep.dir={tmp_path / 'pool'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {f: f.read_bytes() for f in records} == records


_COUNT_COMPOSITIONS = """
import json, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
composed = []
original = ConfigLoaderImpl._load_configuration_impl
def counting(self, config_name, overrides, run_mode, *args, **kwargs):
    composed.append([list(overrides), run_mode.name])
    return original(self, config_name, overrides, run_mode, *args, **kwargs)
ConfigLoaderImpl._load_configuration_impl = counting
from prereg.sweep.app import cli
status = cli(sys.argv[1:])
print("COMPOSED " + json.dumps(composed))
sys.exit(status)
"""


@pytest.mark.slow
def test_a_pool_sweep_composes_each_config_once(tmp_path: Path) -> None:
    """Preflight, Hydra's sweeper and the launcher share one composition per job (Hydra alone
    composes every job twice, and each pool worker composed its jobs a third time)."""
    jobs = ["arm=baseline,primary,secondary", "cell=n4m2"]
    argv = ["-m", *jobs, "registration.step_cap=5", "hydra/launcher=pool",
            "hydra.launcher.workers=2", f"hydra.sweep.dir={tmp_path}"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", _COUNT_COMPOSITIONS, *argv],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("COMPOSED "))
    composed = [(tuple(o), mode) for o, mode in json.loads(line.removeprefix("COMPOSED "))]
    assert len(composed) == len(set(composed)), composed  # nothing composed twice
    for arm in ("baseline", "primary", "secondary"):  # each job once, as Hydra composes it
        forms = [o for o, mode in composed if mode == "RUN" and f"arm={arm}" in o]
        assert sum("hydra.mode=MULTIRUN" in o for o in forms) == 1, forms
    assert len(composed) <= 3 + 3  # the jobs, the first job to find the study, 2 sweep configs
    runs = [d for d in tmp_path.iterdir() if d.name.startswith("arm=")]
    assert len(runs) == 3 and all((d / "metrics.csv").exists() for d in runs)


def test_bad_input_in_a_pool_sweep_is_one_line_and_starts_no_worker(tmp_path: Path) -> None:
    proc = run_cli("-m", "arm=baseline,primry", "cell=n4m2", "hydra/launcher=pool",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: arm: unknown option 'primry' (did you mean primary?) "
        "(allowed: baseline, primary, secondary)"
    ]
    assert not (tmp_path / "sweep").exists()
    bad_start = ("hydra/launcher=pool", "hydra.launcher.start=fork")
    proc = run_cli("-m", "arm=baseline,primary", "cell=n4m2", *bad_start,
                   f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: hydra.launcher.start: unknown value 'fork' (allowed: forkserver, spawn)"
    ]
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_a_killed_worker_fails_its_job_and_a_fresh_one_takes_the_next(tmp_path: Path) -> None:
    """One worker, killed -9 during the first job: that job is recorded dead, and a fresh
    worker runs the next job to the end; the verdict still runs."""
    k = sweep_with_a_killed_job(tmp_path, "hydra/launcher=pool", "hydra.launcher.workers=1")
    assert_the_killed_job_is_recorded_and_the_rest_kept(k)
    reason = json.loads((k.victim / "run.json").read_text())["reason"]
    assert "(exit status -9" in reason, reason  # the worker's own status, not its server's
