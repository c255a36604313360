"""exp9 speed: the 12-run registered sweep end to end through run.py, against the bare computation.

Prints a table of wall times measured in this run, each against the bare 12-run computation
(the same 12 trainings in one process with no Hydra, I/O, diagnostics or verdict: one jitted
chunk of ``step_cap`` steps per run, single-threaded BLAS, one after another):
the sweep through ``run.py`` with ``hydra/launcher=pool`` (worker processes that live for the
sweep, one per CPU; exp9's default when more than one CPU is free) and with
``hydra/launcher=basic`` (every job in the sweep process), each with a warm JAX compilation cache (a
cold run fills it first); ``--local`` adds ``hydra/launcher=local`` (one process per job).
Beside each wall time, the CPU seconds (user + system) of all its processes: the sweep's whole
processes (start-up and imports included), the bare computation's loop only; on a machine others
keep busy these say more about the work done than the wall times.
The pool is also measured with its workers spawned (``hydra.launcher.start=spawn``: fresh
interpreters that each import JAX, not forks of a server that imported it once).
Each row is also measured with the traced-program cache off (``PREREG_TRACE_CACHE=0``: every
process traces and lowers its JAX programs again, as before that cache). ``--repeat N`` runs
every measurement N times, round-robin, and prints the median and the range (this VM's timings
vary by 10-20 % from run to run).
Then the cost of one training step against the eigendecomposition reference, as before.
The machine's load (``os.getloadavg``) is printed: figures from a busy machine are not a
quiet machine's.

    python benchmarks/exp9_sweep.py                 # full registered sweep (2000 steps)
    python benchmarks/exp9_sweep.py --steps 200     # quicker, not the registered cap
    python benchmarks/exp9_sweep.py --cache ~/.cache/prereg/jax --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED_SECONDS = 1913.0
ARMS = ("baseline", "primary", "secondary")


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sweep(
    out: Path,
    cache: Path,
    steps: int | None,
    launcher: str | None = None,
    traced: bool = True,
    *extra: str,
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all its processes) of the whole multirun (verdict
    included) in a fresh process."""
    args = [sys.executable, str(REPO / "run.py"), "-m", f"arm={','.join(ARMS)}",
            "cell=glob(*)", f"hydra.sweep.dir={out}"]  # fmt: skip
    if launcher is not None:
        args.append(f"hydra/launcher={launcher}")
    if steps is not None:
        args.append(f"registration.step_cap={steps}")
    args += extra
    env = {**os.environ, "PREREG_JAX_CACHE": str(cache), "PREREG_TRACE_CACHE": str(int(traced))}
    shutil.rmtree(out, ignore_errors=True)
    cpu, tic = _children_cpu(), time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - tic, _children_cpu() - cpu
    if proc.returncode != 0 or not (out / "verdict.json").exists():
        raise SystemExit(f"sweep failed:\n{proc.stderr[-3000:]}")
    return wall, cpu


def bare(cache: Path, steps: int | None, traced: bool = True) -> tuple[float, float]:
    """(wall, CPU) seconds of the bare 12-run computation in a fresh process (imports excluded,
    the warm compilation cache's loads included, as the sweep's jobs pay them)."""
    args = [sys.executable, __file__, "--bare"] + ([f"--steps={steps}"] if steps else [])
    env = {**os.environ, "PREREG_JAX_CACHE": str(cache), "OPENBLAS_NUM_THREADS": "1",
           "PREREG_TRACE_CACHE": str(int(traced))}  # fmt: skip
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bare computation failed:\n{proc.stderr[-3000:]}")
    wall, cpu = proc.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def _bare(steps: int | None) -> tuple[float, float]:
    """The 12 registered trainings one after another in this process; their (wall, CPU)
    seconds."""
    from prereg.core.registration import load_registered
    from prereg.training.jaxcache import enable_compilation_cache

    enable_compilation_cache()
    from prereg.exp9 import enable_x64

    enable_x64()
    import jax.numpy as jnp
    import numpy as np

    from prereg.exp9 import arms, model, train

    reg = load_registered("exp9_v1")
    cap = int(steps if steps is not None else reg["step_cap"])
    lr = float(reg["lr"])
    tic, cpu = time.perf_counter(), time.process_time()
    for arm in ARMS:
        for cell in reg["cells"].values():
            n, m = int(cell["n"]), int(cell["m"])
            lam, form = arms.arm_spec(reg, arm)
            log_q = model.make_teacher(n, float(reg["beta"]), int(cell["teacher_seed"]))
            theta = model.init_theta(n, m, int(cell["init_seed"]), float(reg["init_scale"]))
            run_chunk = train.make_chunk_runner(log_q, n, m, lam, form, lr)
            _, met = run_chunk(train.init_state(jnp.asarray(theta), lr), cap)
            np.asarray(met["kl"])
    return time.perf_counter() - tic, time.process_time() - cpu


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
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as prereg's runs (before numpy loads)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="override the step cap")
    parser.add_argument("--local", action="store_true", help="also time hydra/launcher=local")
    parser.add_argument(
        "--cache", type=Path, default=None, help="a warm compilation cache to use (no cold run)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each row (median shown)")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)  # for bare()
    args = parser.parse_args()
    if args.bare:
        print(*_bare(args.steps))
        return
    flags = (f" --steps {args.steps}" if args.steps else "") + (" --local" if args.local else "")
    flags += f" --cache {args.cache}" if args.cache else ""
    flags += f" --repeat {args.repeat}" if args.repeat > 1 else ""
    print(f"command: python benchmarks/exp9_sweep.py{flags}")
    load = os.getloadavg()
    print(f"CPUs available: {len(os.sched_getaffinity(0))}; load average before: "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = args.cache or tmp / "cache"
        cold = None if args.cache else sweep(tmp / "cold", cache, args.steps)  # fills the cache
        if not args.cache:  # the programs jax.jit compiles when the traced-program cache is off
            sweep(tmp / "cold-off", cache, args.steps, traced=False)
        for traced in (True, False):  # the bare computation's own programs
            bare(cache, args.steps, traced)
        launchers = ("pool", "basic") + (("local",) if args.local else ())
        runs: dict[str, Callable[[], tuple[float, float]]] = {
            "bare 12-run computation, one process (baseline)": lambda: bare(cache, args.steps),
            "bare, traced-program cache off": lambda: bare(cache, args.steps, traced=False),
        }
        for launcher in launchers:
            label = f"run.py sweep + verdict, hydra/launcher={launcher}"
            runs[label] = partial(sweep, tmp / launcher, cache, args.steps, launcher)
            runs[f"{label}, traced-program cache off"] = partial(
                sweep, tmp / f"{launcher}-off", cache, args.steps, launcher, False
            )
            if launcher == "pool":  # the workers as fresh interpreters, not forks of a server
                runs[f"{label}, workers spawned"] = partial(
                    sweep, tmp / "pool-spawn", cache, args.steps, launcher, True,
                    "hydra.launcher.start=spawn",
                )  # fmt: skip
        seen: dict[str, list[tuple[float, float]]] = {label: [] for label in runs}
        for _ in range(args.repeat):  # round-robin: a slow spell of the machine hits every row
            for label, run in runs.items():
                seen[label].append(run())
        verdict = json.loads((tmp / "pool" / "verdict.json").read_text())
        same = all(
            (d / "metrics.csv").read_bytes() == (tmp / other / d.name / "metrics.csv").read_bytes()
            for other in ("basic", "pool-off", "pool-spawn")
            for d in (tmp / "pool").iterdir()
            if (d / "metrics.csv").exists()
        )
    load = os.getloadavg()
    print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print()
    base = statistics.median(w for w, _ in seen["bare 12-run computation, one process (baseline)"])
    n = args.repeat
    print(f"| measurement (warm compile cache{f'; median of {n}, range' if n > 1 else ''}) "
          "| seconds | / bare | CPU s | vs seed (1913 s) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for label, figures in seen.items():
        wall = statistics.median(w for w, _ in figures)
        cpu = statistics.median(c for _, c in figures)
        spread = f" ({min(w for w, _ in figures):.1f}-{max(w for w, _ in figures):.1f})"
        print(
            f"| {label} | {wall:.1f}{spread if n > 1 else ''} | {wall / base:.2f} | {cpu:.1f} "
            f"| {SEED_SECONDS / wall:.0f}x faster |"
        )
    if cold is not None:
        wall, cpu = cold
        print(f"| run.py sweep, cold compile cache (pool) | {wall:.1f} | {wall / base:.2f} "
              f"| {cpu:.1f} | |")  # fmt: skip
    print("\nmetrics.csv byte-identical, pool vs basic, vs pool with the cache off and vs pool "
          f"spawned: {same}")  # fmt: skip
    print(f"outcome {verdict['outcome']['number']}: {verdict['outcome']['sentence']}")
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
