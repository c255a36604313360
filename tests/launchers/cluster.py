"""The single-node SLURM cluster of ``launchers/slurm_cluster.sh``, for the tests.

:func:`ensure_slurm_cluster` checks (and, in CI or with ``PREREG_START_SLURM=1`` or
``PREREG_REQUIRE_SLURM=1``, starts) the cluster; the ``slurm_cluster`` fixture
(``tests/launchers/conftest.py``) uses it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def slurm_cluster_script() -> Path:
    """The repository's ``launchers/slurm_cluster.sh`` (``.ci/run`` calls it too)."""
    return REPO / "launchers" / "slurm_cluster.sh"


def _run_script(subcommand: str, timeout: float) -> tuple[int, str]:
    script = slurm_cluster_script()
    if not script.is_file():
        return 127, f"{script} not found"
    env = dict(os.environ, CI=os.environ.get("CI", ""))
    try:
        proc = subprocess.run(
            ["bash", str(script), subcommand],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return 124, f"'{script.name} {subcommand}' did not finish within {timeout:.0f} s"
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode == 0:
        # status line is the last stdout line
        out = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        return 0, out[-1] if out else "ok"
    # the script's one-line reason: prefer its 'slurm_cluster.sh: ...' stderr line
    reasons = [ln for ln in proc.stderr.splitlines() if ln.startswith("slurm_cluster.sh:")]
    msg = reasons[-1] if reasons else (lines[-1] if lines else f"exit status {proc.returncode}")
    return proc.returncode, msg


def slurm_required() -> bool:
    """``PREREG_REQUIRE_SLURM=1`` (set by ``.ci/run``): SLURM tests must fail, not skip."""
    return os.environ.get("PREREG_REQUIRE_SLURM") == "1"


def slurm_start_allowed() -> bool:
    """Starting a cluster is allowed in CI (``CI`` set), with ``PREREG_START_SLURM=1``, or
    where SLURM is required (``PREREG_REQUIRE_SLURM=1``)."""
    ci = os.environ.get("CI", "").strip().lower()
    return (
        (ci not in ("", "0", "false", "no"))
        or os.environ.get("PREREG_START_SLURM") == "1"
        or slurm_required()
    )


def ensure_slurm_cluster(
    allow_start: bool | None = None, timeout: float = 900.0
) -> tuple[bool, str]:
    """Is the single-node SLURM cluster up? Start it if allowed. Returns ``(ok, message)``.

    ``message`` is the one-line status when ``ok``, otherwise the reason it is not available
    (meant for ``pytest.skip(f"SLURM not available: {message}")``).
    """
    rc, msg = _run_script("status", timeout=60)
    if rc == 0:
        return True, msg
    if allow_start is None:
        allow_start = slurm_start_allowed()
    if not allow_start:
        return False, f"{msg} (set PREREG_START_SLURM=1 to let the tests start it)"
    rc, up_msg = _run_script("up", timeout=timeout)
    if rc != 0:
        return False, up_msg
    return True, up_msg
