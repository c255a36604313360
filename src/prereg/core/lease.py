"""One owner per run directory: a lease taken before any work is written there.

Two files in the run directory:

- ``lease.lock`` is locked with ``flock`` for as long as the owner runs.  The kernel drops the
  lock when the process dies (SIGKILL, out of memory), so a dead owner leaves no stale lock.  It
  is never replaced or deleted (a lock on a replaced file would guard nothing).
- ``lease.json`` names the owner (host, pid, since, SLURM ids) and a heartbeat the owner
  refreshes every :data:`HEARTBEAT_S` seconds; ``status`` reads it, and the owner deletes it on
  release.  It is what guards the directory where ``flock`` does not work (said once in the log)
  or works only on one host (some NFS/Lustre mounts): a record of another host whose heartbeat
  is younger than :data:`EXPIRY_S` is respected even when the lock is free.

A SLURM task that was requeued (same job id, ``SLURM_RESTART_COUNT`` set) takes over a record its
own earlier incarnation left: SLURM ends a task before it runs it again.  Leases are re-entrant
within one process (dispatch takes one, the runner takes it again).
"""

from __future__ import annotations

import datetime as _dt
import errno
import logging
import os
import platform
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prereg.core.atomic import atomic_write_json, read_json, remove_quietly

log = logging.getLogger("prereg")

LOCK_FILE = "lease.lock"
LEASE_FILE = "lease.json"
HEARTBEAT_S = 10.0  # how often the owner refreshes lease.json
EXPIRY_S = 60.0  # a record not refreshed for this long is stale
WAIT_POLL_S = 1.0  # how often a waiting job looks again
# errnos of a file system without a working flock
NO_LOCK_ERRNOS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})

_held: dict[Path, _Holding] = {}  # this process's leases, by resolved run dir
_said_no_lock: set[str] = set()  # file systems already reported as lacking flock
_guard = threading.Lock()


@dataclass(frozen=True)
class Owner:
    """Who holds a run directory, as its ``lease.json`` says."""

    host: str
    pid: int
    since: str | None = None
    slurm: str | None = None  # "<array>_<task>" or job id

    def describe(self) -> str:
        """``host h, pid 123[, slurm 45_6][, since t]`` for one-line messages."""
        bits = [f"host {self.host}", f"pid {self.pid}"]
        if self.slurm:
            bits.append(f"slurm {self.slurm}")
        if self.since:
            bits.append(f"since {self.since}")
        return ", ".join(bits)


class RunHeldElsewhere(Exception):
    """The run directory is owned by another live process: this one does not train it."""

    def __init__(self, run_dir: Path, owner: Owner) -> None:
        super().__init__(f"{run_dir} is running elsewhere ({owner.describe()})")
        self.run_dir, self.owner = Path(run_dir), owner

    def __reduce__(self) -> tuple:
        return (type(self), (self.run_dir, self.owner))


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _slurm_job() -> str | None:
    """This process's SLURM task as ``<array>_<task>`` (or the job id); None off SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def _record(since: str) -> dict[str, Any]:
    return {
        "host": platform.node(),
        "pid": os.getpid(),
        "since": since,
        "heartbeat_at": _now().isoformat(timespec="seconds"),
        "slurm": _slurm_job(),
    }


def owner_of(record: dict[str, Any] | None) -> Owner | None:
    """The :class:`Owner` a ``lease.json`` names (None for an absent or unreadable one)."""
    if not isinstance(record, dict) or not record.get("host"):
        return None
    try:
        pid = int(record.get("pid", ""))
    except (TypeError, ValueError):
        return None
    return Owner(str(record["host"]), pid, record.get("since"), record.get("slurm"))


def _age_s(record: dict[str, Any], now: _dt.datetime) -> float:
    try:
        beat = _dt.datetime.fromisoformat(str(record.get("heartbeat_at")))
    except (TypeError, ValueError):
        return float("inf")
    return (now - beat).total_seconds()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead (this machine's PID 1 reaps slowly)
        with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
            return not any(ln.startswith("State:") and "Z" in ln.split()[1:2] for ln in fh)
    except OSError:
        return True


def record_holds(
    record: dict[str, Any] | None,
    lock_free: bool | None,
    now: _dt.datetime | None = None,
    host: str | None = None,
    slurm_job: str | None = None,
    restarted: bool = False,
) -> bool:
    """Whether ``record`` (a ``lease.json``) still owns the directory (a pure rule).

    ``lock_free``: True if this process could take the flock, None where flock does not work.
    Same host: with a working lock, a free lock means the owner is gone; without one, the pid
    must be alive and the heartbeat fresh.  Another host: the heartbeat must be fresh.  A
    record of this very SLURM task, run again after a requeue, never holds.
    """
    owner = owner_of(record)
    if owner is None or record is None:
        return False
    now = now or _now()
    host = host or platform.node()
    if restarted and slurm_job and owner.slurm == slurm_job:
        return False
    fresh = _age_s(record, now) < EXPIRY_S
    if owner.host == host:
        if lock_free is True:
            return False
        return fresh and _pid_alive(owner.pid)
    return fresh


class _Holding:
    """A lease this process holds: the locked file, the heartbeat thread, a use count."""

    def __init__(self, run_dir: Path, fd: int | None, record: dict[str, Any]) -> None:
        self.run_dir, self.fd, self.record, self.uses = run_dir, fd, record, 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="prereg-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.record["heartbeat_at"] = _now().isoformat(timespec="seconds")
            try:
                atomic_write_json(self.run_dir / LEASE_FILE, self.record)
            except OSError as exc:  # a full disk is the run's error to report, not this thread's
                log.debug("lease heartbeat not written in %s: %s", self.run_dir, exc)

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        remove_quietly(self.run_dir / LEASE_FILE)
        if self.fd is not None:
            os.close(self.fd)  # drops the flock


def _try_lock(run_dir: Path) -> tuple[int | None, bool | None]:
    """``(fd, lock_free)``: the locked fd and True, ``(None, False)`` if another process holds
    the lock, ``(None, None)`` where the file system has no working flock (said once)."""
    import fcntl

    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None, False
        if exc.errno in NO_LOCK_ERRNOS:
            fs = str(run_dir.parent)
            if fs not in _said_no_lock:
                _said_no_lock.add(fs)
                log.warning(
                    "file locks do not work under %s (%s); run directories there are guarded "
                    "by lease.json heartbeats only (stale after %.0f s)",
                    fs,
                    os.strerror(exc.errno),
                    EXPIRY_S,
                )
            return None, None
        raise
    return fd, True


def try_acquire(run_dir: str | os.PathLike) -> Owner | None:
    """Take the lease of ``run_dir`` for this process; the other owner if it is held.

    Re-entrant: a lease this process already holds is counted once more (release it as many
    times).  Creates nothing but ``lease.lock`` and ``lease.json`` in the directory.
    """
    run_dir = Path(run_dir).resolve()
    with _guard:
        holding = _held.get(run_dir)
        if holding is not None:
            holding.uses += 1
            return None
        run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # a status probe holds the lock for microseconds: look again
            fd, lock_free = _try_lock(run_dir)
            record = read_json(run_dir / LEASE_FILE)
            if lock_free is not False:
                break
            time.sleep(0.05)
        if lock_free is False:
            owner = owner_of(record)
            if owner is None or owner.host != platform.node() or _pid_alive(owner.pid):
                return owner or Owner("unknown host", -1)
            # the owner died but a process it forked still holds the lock: its record decides
            log.warning("%s: lock kept by a process of dead pid %d; taken over", run_dir, owner.pid)
            lock_free = None
        restarted = bool(os.environ.get("SLURM_RESTART_COUNT"))
        if record_holds(record, lock_free, slurm_job=_slurm_job(), restarted=restarted):
            if fd is not None:
                os.close(fd)
            return owner_of(record)
        mine = _record(_now().isoformat(timespec="seconds"))
        try:
            atomic_write_json(run_dir / LEASE_FILE, mine)
        except OSError:
            if fd is not None:
                os.close(fd)
            raise
        if lock_free is None:  # no lock: the last writer wins; look again after a moment
            time.sleep(0.2)
            now = owner_of(read_json(run_dir / LEASE_FILE))
            if now is not None and (now.host, now.pid) != (mine["host"], mine["pid"]):
                return now
        _held[run_dir] = _Holding(run_dir, fd, mine)
        return None


def release(run_dir: str | os.PathLike) -> None:
    """Give back one use of this process's lease of ``run_dir`` (the last use frees it)."""
    run_dir = Path(run_dir).resolve()
    with _guard:
        holding = _held.get(run_dir)
        if holding is None:
            return
        holding.uses -= 1
        if holding.uses > 0:
            return
        del _held[run_dir]
    holding.release()


@contextmanager
def lease(run_dir: str | os.PathLike, wait: bool = False) -> Iterator[None]:
    """Hold ``run_dir``'s lease for the block; :class:`RunHeldElsewhere` if another live
    process holds it (with ``wait``: poll until it is free, logging the owner once)."""
    said = False
    while (owner := try_acquire(run_dir)) is not None:
        if not wait:
            raise RunHeldElsewhere(Path(run_dir), owner)
        if not said:
            log.info("%s: waiting for its owner to finish (%s)", run_dir, owner.describe())
            said = True
        time.sleep(WAIT_POLL_S)
    try:
        yield
    finally:
        release(run_dir)


def current_owner(run_dir: str | os.PathLike) -> Owner | None:
    """The live owner of ``run_dir`` as another process sees it (None: free), for ``status``.

    Does not take the lease: the lock is tried and, if taken, dropped at once.
    """
    run_dir = Path(run_dir)
    record = read_json(run_dir / LEASE_FILE)
    if not (run_dir / LOCK_FILE).exists():
        return owner_of(record) if record_holds(record, None) else None
    resolved = run_dir.resolve()
    if resolved in _held:
        return owner_of(_held[resolved].record)
    import fcntl

    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        lock_free: bool | None = True
    except OSError as exc:
        lock_free = None if exc.errno in NO_LOCK_ERRNOS else False
    finally:
        os.close(fd)
    if lock_free is False:
        return owner_of(record) or Owner("unknown host", -1)
    return owner_of(record) if record_holds(record, lock_free) else None
