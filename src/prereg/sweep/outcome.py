"""What a sweep has come to, for ``run.py``'s exit status and ``--fail-fast``.

State of this process only: :func:`reset` at the start of a command, the jobs that ran here
(Hydra's basic launcher runs them in-process) note their failures, and the verdict callback
sets the exit status from the run directories once the verdict is written.
"""

from __future__ import annotations

import os

#: prereg's own flags, taken off the command line before Hydra sees it, and the environment
#: variable each sets for the jobs (in this process, local job processes and SLURM tasks alike)
FLAGS = {"--wait": "PREREG_WAIT_FOR_OWNER", "--fail-fast": "PREREG_FAIL_FAST"}
WAIT_ENV = FLAGS["--wait"]
FAIL_FAST_ENV = FLAGS["--fail-fast"]

_state: dict[str, object] = {"exit_status": 0, "failed": []}


def reset() -> None:
    """Forget the previous command's outcome (``cli`` may run several in one process)."""
    _state.update(exit_status=0, failed=[])


def flag_set(env: str) -> bool:
    """Whether ``--wait``/``--fail-fast`` (its environment variable) is on."""
    return os.environ.get(env, "") == "1"


def note_failure(job: str) -> None:
    """A job of this process failed or halted (``--fail-fast`` starts no job after it)."""
    failed = _state["failed"]
    assert isinstance(failed, list)
    failed.append(job)


def first_failure() -> str | None:
    """The first job of this process that failed or halted, if any."""
    failed = _state["failed"]
    assert isinstance(failed, list)
    return failed[0] if failed else None


def set_exit_status(status: int) -> None:
    _state["exit_status"] = int(status)


def exit_status() -> int:
    """0 unless the sweep's closing check found a job that did not complete."""
    return int(_state["exit_status"])  # type: ignore[call-overload]
