"""The Path-B ladder end to end in each ``ladder.mode``, timed in this one run on this machine.

Each mode runs the real command through ``run.py`` (imports, compilation, training, the two
registered evals per candidate, grades, the verdict and its plots) on the registered variant
and tier, with ``--updates`` updates per candidate (the registered ladder has 1221):

* ``parallel``: ``python run.py -m experiment=ppo_ladder 'candidate=glob(*)'
  ladder.mode=parallel hydra/launcher=local`` (one process per candidate, as many at once
  as there are CPUs);
* ``vmapped``: ``python run.py experiment=ppo_ladder ladder.mode=vmapped`` (one job, every
  candidate in one jitted program);
* ``sequential`` (``--modes`` adds it): the in-process one-at-a-time ladder; candidates after
  the first that passes are skipped, so its time depends on the result.

It prints a Markdown table: wall seconds, env steps over wall seconds, the training rate of one
process (the vmapped program's, or a parallel candidate process's, from ``metrics.csv``), and
each mode's wall time as a ratio of ``parallel``'s measured in the same run, then the verdict
headline of each mode (they must agree).  Measures wall time: run it on an otherwise idle machine.

    python benchmarks/ladder_modes.py [--updates 10] [--tier large] [--modes parallel,vmapped]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = 4


def command(mode: str, out: Path, tier: str, updates: int) -> list[str]:
    """The run.py command line of ``mode`` writing to ``out``."""
    common = [
        "experiment=ppo_ladder", f"tier={tier}", f"ppo.updates={updates}", "ppo.progress=off",
        f"ladder.mode={mode}",
    ]  # fmt: skip
    if mode == "vmapped":
        return [sys.executable, str(REPO / "run.py"), *common, f"hydra.run.dir={out}"]
    launcher = ["hydra/launcher=local"] if mode == "parallel" else []
    return [
        sys.executable, str(REPO / "run.py"), "-m", "candidate=glob(*)", *common, *launcher,
        f"hydra.sweep.dir={out}",
    ]  # fmt: skip


def process_rate(out: Path) -> float:
    """Training env steps/s of one process, the mean over its updates after the first (which
    compiles): the vmapped program's aggregate rate (every member), or the mean over the
    parallel mode's candidate processes of each one's own rate."""
    program = out / "metrics.csv"
    if program.exists():  # vmapped: a row per member and update; sps is the program's rate
        m = pd.read_csv(program)
        return float(m[m["update"] > 1].groupby("update")["sps"].first().mean())
    rates = [
        float(m[m["update"] > 1]["sps"].mean())
        for m in (pd.read_csv(p) for p in sorted(out.glob("*/metrics.csv")))
    ]
    return sum(rates) / len(rates) if rates else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--tier", default="large")
    ap.add_argument("--modes", default="parallel,vmapped")
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    rows, headlines = [], {}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ladder_modes_") as tmp:
        for mode in modes:
            out = Path(tmp) / mode
            cmd = command(mode, out, args.tier, args.updates)
            tic = time.perf_counter()
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=os.environ)
            wall = time.perf_counter() - tic
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            verdict = json.loads((out / "verdict.json").read_text())
            headlines[mode] = verdict["decision"]["sentence"]
            rows.append((mode, wall, process_rate(out)))
    base = {m: w for m, w, _ in rows}.get("parallel", rows[0][1])
    given = argv if argv is not None else sys.argv[1:]
    print(f"Command: `{shlex.join(['python', 'benchmarks/ladder_modes.py', *given])}`")
    print(
        f"\n{CANDIDATES} candidates x {args.updates} updates, tier {args.tier}, "
        f"{os.cpu_count()} CPUs, load average at the start: {load:.2f}\n"
    )
    steps = CANDIDATES * args.updates * 8192  # the registered batch: 64 envs x 128 steps
    print(
        "| ladder.mode | wall s | env steps / wall s | steps/s of one process | wall / parallel's |"
    )
    print("|---|---:|---:|---:|---:|")
    for mode, wall, rate in rows:
        print(f"| {mode} | {wall:.1f} | {steps / wall:,.0f} | {rate:,.0f} | {wall / base:.2f} |")
    print()
    for mode, line in headlines.items():
        print(f"- {mode}: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
