"""Test-session set-up: the persistent JAX compilation cache for in-process tests.

Subprocesses started through ``run.py`` enable the same cache themselves.
"""

from __future__ import annotations

import pytest

from prereg.training.jaxcache import enable_compilation_cache

enable_compilation_cache()


#: Test files that start jobs on the one single-node SLURM cluster: one worker runs them all,
#: one after another, so two of them never compete for its 2 CPUs.
SLURM_FILES = frozenset(
    f"tests/launchers/{name}.py"
    for name in ("test_slurm_cluster", "test_slurm_sweeps", "test_fire_and_forget")
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``pytest -n 2`` (the default, see pyproject.toml): whole files go to a worker (each
    module's fixtures, such as a trained sweep, are built once), and the SLURM files together."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFileSlurmTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "slurm" if path in SLURM_FILES else path

    return ByFileSlurmTogether(config, log)
