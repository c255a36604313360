"""Fixtures for the launcher tests: the single-node SLURM cluster of launchers/slurm_cluster.sh.

The `slurm_cluster` fixture is a thin wrapper over launchers.cluster.ensure_slurm_cluster
(tests/launchers/cluster.py), so tests/conftest.py can define the same fixture for tests
elsewhere in one line. Where SLURM cannot be had, the tests skip with the reason printed; with
PREREG_REQUIRE_SLURM=1 (.ci/run) they fail instead.
"""

from __future__ import annotations

import pytest
from launchers.cluster import ensure_slurm_cluster
from launchers.slurm_helpers import skip_or_fail


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The cluster's one-line status. Starts it only in CI or with PREREG_START_SLURM=1."""
    return skip_or_fail(*ensure_slurm_cluster())
