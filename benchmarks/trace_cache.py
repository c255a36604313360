"""The traced-program cache: the first call of each exp9 program in a fresh process, loaded from
the cache against traced by ``jax.jit`` (``PREREG_TRACE_CACHE=0``), in the same run.

Ten programs (cells (4,2) and (5,3): the training chunk with and without the auxiliary term, rho
and its gradient, rho, the P4 kernel), each called once with a one-step chunk so that the
figure is the call's overhead (trace and lower, or load; then the compilation cache's load), not
its compute. Each side runs twice in a fresh process; the second run's figures are printed
(the first fills the caches).

    python benchmarks/trace_cache.py                 # a fresh cache directory (temporary)
    python benchmarks/trace_cache.py --cache ~/.cache/prereg/jax
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _probe() -> list[tuple[str, float, float]]:
    """(program, wall s, CPU s) of each program's first call in this process."""
    from prereg.training.jaxcache import enable_compilation_cache

    enable_compilation_cache()
    from prereg.exp9 import enable_x64

    enable_x64()
    import jax
    import jax.numpy as jnp

    from prereg.exp9 import diagnostics, finite_diff, model, train

    jnp.zeros(1).block_until_ready()  # the backend's start-up is not a program's
    rows = []

    def timed(name: str, program, *args, **kwargs) -> None:
        tic, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(program(*args, **kwargs))
        rows.append((name, time.perf_counter() - tic, time.process_time() - cpu))

    for n, m in ((4, 2), (5, 3)):
        log_q = jnp.asarray(model.make_teacher(n, 1.0, 1))
        theta = model.init_theta(n, m, 2, 0.1)
        state = train.init_state(jnp.asarray(theta), 0.02)
        for lam in (0.0, 0.01):
            timed(f"training chunk ({n},{m}) lambda={lam}", train._run_chunk, state, log_q,
                  num_steps=1, n=n, m=m, lam=lam, form="rho", lr=0.02)  # fmt: skip
        timed(f"rho and its gradient ({n},{m})", finite_diff._rho_and_grads, theta, log_q, n, m)
        timed(f"rho ({n},{m})", finite_diff._rho, theta, log_q, n, m)
        timed(f"P4 kernel ({n},{m})", diagnostics._pi_and_kernel, theta, n, m)
    return rows


def _side(cache: Path, traced: bool) -> list[tuple[str, float, float]]:
    env = {**os.environ, "PREREG_JAX_CACHE": str(cache), "PREREG_TRACE_CACHE": str(int(traced))}
    proc = subprocess.run(
        [sys.executable, __file__, "--probe"], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"probe failed:\n{proc.stderr[-3000:]}")
    return [tuple(r) for r in json.loads(proc.stdout.strip().splitlines()[-1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="cache directory to use")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(_probe()))
        return
    print(
        "command: python benchmarks/trace_cache.py"
        + (f" --cache {args.cache}" if args.cache else "")
    )
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        for traced in (True, False):
            _side(cache, traced)  # fills both caches
        loaded, traced_rows = _side(cache, True), _side(cache, False)
    print()
    print("| program (first call in a process) | jax.jit: CPU s | loaded: CPU s | ratio |")
    print("|---|---:|---:|---:|")
    for (name, _, cpu_loaded), (_, _, cpu_traced) in zip(loaded, traced_rows, strict=True):
        ratio = cpu_traced / cpu_loaded
        print(f"| {name} | {cpu_traced:.3f} | {cpu_loaded:.3f} | {ratio:.1f}x |")
    total_l, total_t = sum(r[2] for r in loaded), sum(r[2] for r in traced_rows)
    print(f"| all {len(loaded)} | {total_t:.2f} | {total_l:.2f} | {total_t / total_l:.1f}x |")


if __name__ == "__main__":
    main()
