"""exp9 speed: the full 12-run registered sweep end to end through run.py, plus the step cost.

Prints a table: wall time of the sweep with a cold and a warm JAX compilation cache
(each in a fresh process, as a user runs it), next to the seed's 1913 s; and the cost of
one training step (factored resolvent with ``jnp.linalg.solve``, gradient included)
against a baseline measured in the same run: the eigendecomposition reference that
computes the same rho (numpy ``eigh``, no gradient).

    python benchmarks/exp9_sweep.py                 # full registered sweep (2000 steps)
    python benchmarks/exp9_sweep.py --steps 200     # quicker, not the registered cap
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

REPO = Path(__file__).resolve().parents[1]
SEED_SECONDS = 1913.0


def sweep(out: Path, cache: Path, steps: int | None) -> float:
    """Wall seconds of the whole multirun (verdict included) in a fresh process."""
    args = [sys.executable, str(REPO / "run.py"), "-m", "arm=baseline,primary,secondary",
            "cell=glob(*)", f"hydra.sweep.dir={out}"]  # fmt: skip
    if steps is not None:
        args.append(f"registration.step_cap={steps}")
    env = {**os.environ, "PREREG_JAX_CACHE": str(cache)}
    tic = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    if proc.returncode != 0 or not (out / "verdict.json").exists():
        raise SystemExit(f"sweep failed:\n{proc.stderr[-3000:]}")
    return wall


def step_costs(n: int, m: int, reps: int = 200) -> tuple[float, float]:
    """(ms per training step via solve, ms per eigen-reference rho) at cell (n, m)."""
    from prereg.exp9 import enable_x64

    enable_x64()
    import jax.numpy as jnp
    import numpy as np

    from prereg.exp9 import model, reference, train

    log_q = model.make_teacher(n, 1.0, 1)
    theta = model.init_theta(n, m, 2)
    run_chunk = train.make_chunk_runner(log_q, n, m, 0.01, "rho", 0.02)
    state = train.init_state(jnp.asarray(theta), 0.02)
    state, met = run_chunk(state, reps)  # compile
    np.asarray(met["kl"])
    tic = time.perf_counter()
    state, met = run_chunk(state, reps)
    np.asarray(met["kl"])
    lu_ms = (time.perf_counter() - tic) / reps * 1e3
    k = max(5, reps // 10)
    tic = time.perf_counter()
    for _ in range(k):
        reference.reference_rho(theta, log_q, n, m)
    eig_ms = (time.perf_counter() - tic) / k * 1e3
    return lu_ms, eig_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="override the step cap")
    args = parser.parse_args()
    print(
        f"command: python benchmarks/exp9_sweep.py{f' --steps {args.steps}' if args.steps else ''}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold = sweep(tmp / "cold", tmp / "cache", args.steps)
        warm = sweep(tmp / "warm", tmp / "cache", args.steps)
        verdict = json.loads((tmp / "warm" / "verdict.json").read_text())
        computes = [
            json.loads((d / "summary.json").read_text())["compute_seconds"]
            for d in (tmp / "warm").iterdir()
            if (d / "summary.json").exists()
        ]
    print()
    print("| measurement | seconds | vs seed (1913 s) |")
    print("|---|---:|---:|")
    for label, wall in (("cold", cold), ("warm", warm)):
        print(
            f"| 12-run sweep + verdict, {label} compile cache | {wall:.1f} "
            f"| {SEED_SECONDS / wall:.0f}x faster |"
        )
    print(f"| sum of the 12 runs' compute (warm) | {sum(computes):.1f} | |")
    print(f"\noutcome {verdict['outcome']['number']}: {verdict['outcome']['sentence']}")
    print()
    print(
        "| cell (N states) | training step, solve + grad (ms) | eigen reference rho (ms) | ratio |"
    )
    print("|---|---:|---:|---:|")
    for n, m in ((4, 2), (5, 2), (4, 3), (5, 3)):
        lu, eig = step_costs(n, m)
        print(f"| ({n},{m}) N={2 ** (n + m)} | {lu:.2f} | {eig:.2f} | {eig / lu:.1f}x |")


if __name__ == "__main__":
    main()
