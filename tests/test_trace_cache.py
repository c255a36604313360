"""The traced-program cache (prereg.training.jaxexport): a second process runs the stored
program without tracing, computes the same bits as plain jax.jit, and survives a damaged entry.

Each phase runs in a fresh Python process (the cache is for new processes) on exp9's finite-
difference programs, with a throw-away cache directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import json, os, sys
from prereg.training.jaxcache import enable_compilation_cache
enable_compilation_cache()
from prereg.exp9 import enable_x64
enable_x64()
import numpy as np
from prereg.exp9 import finite_diff, model
from prereg.exp9 import predictor as pred

traced = []
real = pred.predictor
def counting(*args, **kwargs):  # runs only while JAX traces a program that calls it
    traced.append(1)
    return real(*args, **kwargs)
pred.predictor = counting

out = {}
for n, m in ((4, 2), (3, 2)):
    log_q = model.make_teacher(n, 1.0, 1)
    theta = model.init_theta(n, m, 2, 0.1)
    rho, drho, gnorm = finite_diff._rho_and_grads(theta, log_q, n, m)
    out[f"{n}{m}"] = [float(rho).hex(), [float(x).hex() for x in np.asarray(drho)],
                      float(gnorm).hex()]
print(json.dumps({"values": out, "traced": len(traced)}))
"""


def _run(cache: Path, **env: str) -> dict:
    full = {**os.environ, "PREREG_JAX_CACHE": str(cache), **env}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=full, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stderr"] = proc.stderr
    return result


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "prereg-exported").glob("*.bin"))


@pytest.fixture(scope="module")
def cold(tmp_path_factory) -> tuple[Path, dict]:
    cache = tmp_path_factory.mktemp("trace") / "cache"
    return cache, _run(cache)


def test_a_second_process_runs_the_stored_programs_without_tracing(cold):
    cache, first = cold
    assert first["traced"] == 2  # one trace per cell: (4,2) and (3,2)
    assert len(_entries(cache)) == 2  # one program per (n, m): the static arguments are keyed
    second = _run(cache)
    assert second["traced"] == 0
    assert second["values"] == first["values"]


def test_the_stored_programs_compute_what_plain_jit_computes(cold, tmp_path):
    _, first = cold
    plain = _run(tmp_path / "off", PREREG_TRACE_CACHE="0")
    assert plain["traced"] == 2
    assert not (tmp_path / "off" / "prereg-exported").exists()  # switched off: nothing stored
    assert plain["values"] == first["values"]  # bit for bit (float.hex)


def test_a_damaged_entry_is_traced_again_and_replaced(cold, tmp_path):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(cold[0], cache)
    damaged = _entries(cache)[0]
    damaged.write_bytes(damaged.read_bytes()[:100])  # as a disk that filled mid-write
    again = _run(cache)
    assert "unreadable" in again["stderr"] and again["traced"] == 1
    assert again["values"] == cold[1]["values"]
    assert len(damaged.read_bytes()) > 100  # written whole again
    assert _run(cache)["traced"] == 0


def test_static_parameters_may_come_first_and_unnamed_ones_are_refused():
    """The stored program calls the function by parameter name (a static ``k`` before the
    array ``x`` is bound as such), equal to plain jit; ``*args`` cannot be named: refused."""
    import jax
    import jax.numpy as jnp

    from prereg.training.jaxexport import cached_jit

    def scale(k: int, x):
        return x * k + jnp.arange(x.shape[0])

    cached = cached_jit(scale, static_argnames=("k",))
    x = jnp.ones(3)
    plain = jax.jit(scale, static_argnames=("k",))
    assert cached(3, x).tolist() == plain(3, x).tolist() == [3.0, 4.0, 5.0]
    assert cached(k=2, x=x).tolist() == plain(k=2, x=x).tolist()
    assert len(cached.programs) == 2  # one stored program per value of the static k
    with pytest.raises(TypeError, match="named parameters only"):
        cached_jit(lambda *xs: xs)
