"""One owner per run directory (:mod:`prereg.core.lease`): real processes hold and lose leases.

A holder is a small Python process that takes a lease and sleeps; no experiment runs here.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prereg.core import lease
from prereg.core.lease import LEASE_FILE, RunHeldElsewhere, record_holds

HOLDER = """
import sys, time
from prereg.core.lease import try_acquire
owner = try_acquire(sys.argv[1])
print("held" if owner is None else f"refused {owner.describe()}", flush=True)
time.sleep(120)
"""


def hold(run_dir: Path) -> subprocess.Popen:
    """A process that takes ``run_dir``'s lease and keeps it until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def stop(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=30)


def stamp(age_s: float) -> str:
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age_s)
    return when.isoformat(timespec="seconds")


def write_record(run_dir: Path, host: str, pid: int, age_s: float, slurm: str | None = None):
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"host": host, "pid": pid, "since": stamp(age_s), "heartbeat_at": stamp(age_s)}
    (run_dir / LEASE_FILE).write_text(json.dumps({**record, "slurm": slurm}))


def test_a_live_owner_is_named_and_sigkill_frees_the_directory_at_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = hold(run)
    try:
        owner = lease.try_acquire(run)
        assert owner is not None and owner.pid == holder.pid and owner.host == platform.node()
        assert lease.current_owner(run) == owner
        with pytest.raises(RunHeldElsewhere, match=rf"running elsewhere \(host .*pid {holder.pid}"):
            with lease.lease(run):
                pass
    finally:
        stop(holder)  # the kernel drops the flock; lease.json stays behind, stale
    assert json.loads((run / LEASE_FILE).read_text())["pid"] == holder.pid
    assert lease.current_owner(run) is None
    with lease.lease(run):  # taken over at once, no expiry to wait for
        assert json.loads((run / LEASE_FILE).read_text())["pid"] == os.getpid()
        with lease.lease(run):  # re-entrant in one process
            pass
        assert lease.current_owner(run) is not None
    assert not (run / LEASE_FILE).exists() and lease.current_owner(run) is None


FORKING_HOLDER = """
import os, sys, time
from prereg.core.lease import try_acquire
assert try_acquire(sys.argv[1]) is None
child = os.fork()  # inherits the locked file: it keeps the lock after its parent dies
if child == 0:
    time.sleep(120)
    os._exit(0)
print(child, flush=True)
time.sleep(120)
"""


def test_a_lock_kept_by_a_dead_owners_child_does_not_hold_the_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", FORKING_HOLDER, str(run)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    child = int(holder.stdout.readline())
    try:
        assert lease.try_acquire(run) is not None  # its owner is alive
        stop(holder)
        with caplog.at_level("WARNING", logger="prereg"):
            assert lease.try_acquire(run) is None
        assert f"lock kept by a process of dead pid {holder.pid}; taken over" in caplog.text
        lease.release(run)
    finally:
        os.kill(child, signal.SIGKILL)


def test_wait_blocks_until_the_owner_ends(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = hold(run)
    subprocess.Popen(["sh", "-c", f"sleep 1.5; kill -9 {holder.pid}"])
    tic = time.monotonic()
    with lease.lease(run, wait=True):
        waited = time.monotonic() - tic
    holder.wait(timeout=30)
    assert holder.returncode == -signal.SIGKILL and waited > 0.5


def test_a_lease_of_another_host_is_respected_until_its_heartbeat_expires(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    write_record(run, "node-elsewhere", 4242, age_s=5)
    owner = lease.try_acquire(run)
    assert owner is not None and (owner.host, owner.pid) == ("node-elsewhere", 4242)
    assert lease.current_owner(run) == owner
    write_record(run, "node-elsewhere", 4242, age_s=lease.EXPIRY_S + 5)  # its node was lost
    assert lease.try_acquire(run) is None
    lease.release(run)


def test_the_ownership_rule() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    here = platform.node()
    fresh = {"host": here, "pid": os.getpid(), "heartbeat_at": stamp(1)}
    dead = {"host": here, "pid": 2**22 + 7, "heartbeat_at": stamp(1)}
    other = {"host": "elsewhere", "pid": 1, "heartbeat_at": stamp(1), "slurm": "7_3"}
    assert not record_holds(None, True, now)
    assert not record_holds(fresh, True, now)  # same host, lock free: the owner is gone
    assert record_holds(fresh, None, now)  # no working lock: a live pid, a fresh heartbeat
    assert not record_holds(dead, None, now)
    assert record_holds(other, True, now)  # another host: the heartbeat decides
    assert not record_holds({**other, "heartbeat_at": stamp(600)}, True, now)
    # a requeued SLURM task takes over what its own earlier incarnation left
    assert not record_holds(other, True, now, slurm_job="7_3", restarted=True)
    assert record_holds(other, True, now, slurm_job="7_4", restarted=True)
    assert record_holds(other, True, now, slurm_job="7_3", restarted=False)


def test_without_a_working_flock_it_says_so_once_and_uses_the_heartbeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import fcntl

    def no_lock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_lock)
    a, b = tmp_path / "a", tmp_path / "b"
    with caplog.at_level("WARNING", logger="prereg"):
        with lease.lease(a), lease.lease(b):
            pass
    said = [r for r in caplog.records if "file locks do not work" in r.getMessage()]
    assert len(said) == 1, caplog.text
    write_record(a, platform.node(), os.getppid(), age_s=1)  # a live process of this host
    owner = lease.try_acquire(a)
    assert owner is not None and (owner.host, owner.pid) == (platform.node(), os.getppid())
