"""Atomic file writes: a reader never sees a half-written file.

Every file a run produces goes through here: the bytes are written to a temporary
name in the same directory, flushed to disk, and renamed over the target, which is
atomic on POSIX file systems.  A write that fails (disk full, read-only file system)
removes its temporary file and raises an ``OSError`` naming the target; a process
killed mid-write (SIGKILL) can leave one, and :func:`remove_stale_temps` clears those
when the run starts again.  A file whose bytes would not change is not rewritten, so
re-running finished work leaves every file (and its mtime) as it was.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # run.py imports this before its slow imports: no pandas here
    import pandas as pd

# errors that mean "this output location cannot take any more writes", not a bug of one file
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
# also refused up front when probing an output directory
UNWRITABLE_ERRNOS = STORAGE_ERRNOS | {errno.EACCES, errno.EPERM}
PROBE_BYTES = 64 * 1024
# the temporary names atomic_write_bytes uses: ".<name>.<8 random chars>.tmp"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()
FILE_MODE = 0o666 & ~_UMASK  # what open() gives a new file; mkstemp alone gives 0600
DIR_MODE = 0o777 & ~_UMASK  # what mkdir() gives; mkdtemp alone gives 0700


class CannotWrite(BaseException):
    """An output location cannot be written (disk full, quota, read-only, no permission).

    A BaseException, like :class:`~prereg.core.signals.RunInterrupted`: every later job
    of the sweep would fail the same way, so the sweep stops and ``run.py`` prints the one
    line ``error: cannot write to <path>: <cause>`` instead of a stack trace.
    """

    def __init__(self, path: str | os.PathLike, cause: str) -> None:
        super().__init__(f"cannot write to {path}: {cause}")
        self.path, self.cause = str(path), cause

    def __reduce__(self) -> tuple:
        return (type(self), (self.path, self.cause))


def cannot_write(
    exc: BaseException, fallback: str | os.PathLike, errnos: frozenset[int] = STORAGE_ERRNOS
) -> CannotWrite | None:
    """The :class:`CannotWrite` an ``OSError`` of a full or read-only disk means, else None.

    ``fallback`` names the location when the error names no file.
    """
    if isinstance(exc, CannotWrite):
        return exc
    if not isinstance(exc, OSError) or exc.errno not in errnos:
        return None
    return CannotWrite(exc.filename or fallback, exc.strerror or os.strerror(exc.errno))


def naming(exc: OSError, path: str | os.PathLike) -> OSError:
    """``exc`` if it names a file, else the same error naming ``path`` (a failed ``write()``
    or ``fsync()`` names none; same OSError subclass, so callers' ``except`` still match)."""
    if exc.filename or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def remove_quietly(path: str | os.PathLike | None) -> None:
    """Delete a temporary file if it is there (cleanup never hides the original error)."""
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same dir, fsync, rename).

    Nothing is written if ``path`` already holds exactly ``data``.  On failure the
    temporary file is removed and the ``OSError`` names ``path``.
    """
    path = Path(path)
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        named = naming(exc, path)
        if named is exc:
            raise
        raise named from exc
    finally:
        remove_quietly(tmp)


def remove_stale_temps(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files a killed :func:`atomic_write_bytes` left under ``root``.

    Called when a run (re)starts in its own directory, where no other writer is active.
    """
    removed = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            if _TEMP_NAME.match(name):
                path = Path(dirpath) / name
                try:
                    path.unlink()
                    removed.append(path)
                except OSError:
                    pass
    return removed


def probe_writable(directory: str | os.PathLike) -> CannotWrite | None:
    """Create ``directory`` and write, fsync and delete a 64 KiB file in it; the problem if any.

    Run before any compute, so an unwritable or full output location is one line up front
    rather than a failure after the work.  64 KiB covers the records Hydra writes first
    (``multirun.yaml``, ``.hydra/*.yaml``, about 10 KiB) with plain, non-atomic writes.
    """
    directory = Path(directory)
    tmp: str | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".prereg-probe.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(PROBE_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.errno not in UNWRITABLE_ERRNOS:
            raise
        return CannotWrite(exc.filename or directory, exc.strerror or os.strerror(exc.errno))
    finally:
        remove_quietly(tmp)
    return None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """``obj`` as standard JSON values: NaN and +-inf become ``null`` (JSON has no NaN).

    :func:`atomic_write_json` writes through it; JSON printed to stdout should go through it too.

    A reader takes ``null`` for a figure as missing / NaN; files written before this rule
    hold the strings ``"nan"``/``"inf"``/``"-inf"`` instead.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():
        return json_safe(obj.item())
    if hasattr(obj, "tolist"):
        return json_safe(obj.tolist())
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented standard JSON (NaN/inf as ``null``), atomically."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def csv_text(frame: pd.DataFrame, header: bool = True) -> str:
    """A DataFrame as prereg's CSV text (full float precision, no index)."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=header, float_format="%.17g")
    return buf.getvalue()


def atomic_write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV (full float precision), atomically."""
    atomic_write_text(path, csv_text(frame))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file written by :func:`atomic_write_json`; None if it does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
