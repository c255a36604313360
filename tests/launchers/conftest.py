"""Fixtures for the launcher tests: the single-node SLURM cluster of launchers/slurm_cluster.sh.

The `slurm_cluster` fixture is a thin wrapper over prereg.sweep.launchers.ensure_slurm_cluster,
so tests/conftest.py can define the same fixture for tests elsewhere in one line.
"""

from __future__ import annotations

import pytest

from prereg.sweep.launchers import ensure_slurm_cluster


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The cluster's one-line status. Starts it only in CI or with PREREG_START_SLURM=1."""
    ok, message = ensure_slurm_cluster()
    if not ok:
        reason = f"SLURM not available: {message}"
        print(reason)
        pytest.skip(reason)
    return message
