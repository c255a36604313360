"""How fast is ``python -m prereg compare`` on 1000 run directories?

Writes 1000 synthetic exp9 job dirs (realistic ``run.json``, ``summary.json`` and Hydra's
``.hydra/{config,overrides,hydra}.yaml`` + a ``metrics.csv``) into a temp dir, then times,
best of 3, in-process:

- ``prereg compare``   (reads run.json + summary.json only),
- a naive reader as a notebook would write it (``yaml.safe_load`` of every
  ``.hydra/config.yaml`` and ``overrides.yaml``, ``pd.json_normalize`` of the JSON files,
  one DataFrame, constant columns dropped, ``to_string``) -- the baseline,
- the same naive reader with libyaml's C loader (a fairer baseline),

and the whole CLI once as a subprocess (interpreter start and imports included).

    python benchmarks/compare_speed.py [--runs 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ARMS = {"baseline": 0.0, "primary": 0.01, "secondary": 0.001}
CELLS = {"n4m2": (4, 2), "n5m2": (5, 2), "n4m3": (4, 3), "n5m3": (5, 3)}


def config(arm: str, cell: str, seed: int) -> dict:
    """A composed exp9 config shaped like the real ``.hydra/config.yaml`` (about 1.7 kB)."""
    return {
        "runner": "exp9",
        "registration": {
            "name": "exp9_v1",
            "experiment": "exp9",
            "beta": 1.0,
            "init_scale": 0.1,
            "cells": {
                c: {"n": n, "m": m, "teacher_seed": 1000 + i, "init_seed": 2000 + i + seed}
                for i, (c, (n, m)) in enumerate(CELLS.items())
            },
            "lambdas": dict(ARMS),
            "aux": {"form": "rho"},
            "verdict_arm": "primary",
            "dose_arm": "secondary",
            "baseline_arm": "baseline",
            "lr": 0.02,
            "step_cap": 2000,
            "thresholds": [0.5, 0.1],
            "steering_bar": 2.0,
            "consistency": 7,
            "finals_window": 200,
            "diagnostic_steps": 16,
            "runtime_cap_seconds": 3600,
            "gates": {
                "detailed_balance": 1e-15,
                "row_sum": 1e-14,
                "symmetry": 1e-14,
                "fidelity_abs": 1e-12,
                "fidelity_gap_scale": 1e-14,
                "fidelity_min_gap": 1e-8,
                "cheeger_rel_tol": 1e-9,
                "halt_gap": 1e-10,
                "fd_rel_err": 1e-6,
                "fd_min_grad_norm": 1e-3,
                "fd_directions": 8,
                "fd_seed": 7,
                "fd_steps": [1e-4, 1e-5, 1e-6],
            },
        },
        "arm": {"name": arm},
        "cell": {"name": cell},
        "seed": seed,
        "exp9": {"chunk_steps": 100},
    }


def hydra_yaml(overrides: list[str]) -> dict:
    """A stand-in for ``.hydra/hydra.yaml`` (its size matters, its content does not)."""
    return {
        "hydra": {
            "run": {"dir": "outputs/x"},
            "sweep": {"dir": "outputs/multirun/x", "subdir": "${hydra.job.override_dirname}"},
            "overrides": {"task": overrides},
            "job": {"name": "run", "override_dirname": ",".join(overrides)},
            "runtime": {"version": "1.3.2", "choices": {f"k{i}": f"v{i}" for i in range(60)}},
            "help": {"template": "x" * 1500},
        }
    }


def summary(arm: str, cell: str, rng: random.Random) -> dict:
    kl0 = rng.uniform(0.2, 0.5)
    last = kl0 * rng.uniform(0.01, 0.2)

    def hit(frac: float) -> dict | None:
        if rng.random() < 0.1:
            return None
        return {
            "step": float(rng.randint(10, 1999)),
            "kl": kl0 * frac,
            "rho": rng.random(),
            "signal": rng.random(),
            "noise": rng.uniform(100, 300),
        }

    return {
        "experiment": "exp9",
        "arm": arm,
        "cell": cell,
        "n": CELLS[cell][0],
        "m": CELLS[cell][1],
        "num_states": 2 ** sum(CELLS[cell]),
        "lambda": ARMS[arm],
        "aux_form": "rho",
        "steps": 2000,
        "initial_kl": kl0,
        "crossings": {"0.5": hit(0.5), "0.1": hit(0.1)},
        "last_step": 1999.0,
        "last_kl": last,
        "last_rho": rng.random() * 1e-3,
        "last_signal": rng.random(),
        "last_noise": rng.uniform(100, 300),
        "median_kl": last * 1.1,
        "median_rho": rng.random() * 1e-3,
        "median_signal": rng.random(),
        "median_noise": rng.uniform(100, 300),
        "fidelity": {
            w: {
                "step": 0,
                "rho": 1e-3,
                "rho_reference": 1e-3,
                "rel_err": 1e-15,
                "gap": 0.1,
                "gate": 1e-12,
                "pass": True,
            }
            for w in ("first", "last")
        },
        "fd_check": {
            "worst_rel_err": 4e-10,
            "grad_norm": 0.3,
            "applies": True,
            "gate": 1e-6,
            "pass": True,
        },
        "diagnostics_failed": 0,
        "compute_seconds": rng.uniform(1, 30),
    }


def dump(data: dict) -> str:
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def make_runs(root: Path, count: int) -> Path:
    """``count`` job dirs in one sweep dir: 95% completed, the rest failed/running/pending."""
    rng = random.Random(0)
    sweep = root / "multirun" / "2026-01-01" / "12-00-00"
    jobs = []
    metrics = "step,kl,rho,signal,noise,rho_proj,noise_proj,loss,grad_norm\n" + "".join(
        f"{s},0.3,1e-3,0.1,200,1e-3,100,0.3,0.3\n" for s in range(200)
    )
    for i in range(count):
        arm, cell = list(ARMS)[i % 3], list(CELLS)[(i // 3) % 4]
        seed = i // 12
        overrides = [f"arm={arm}", f"cell={cell}", f"seed={seed}"]
        jobs.append(sorted(overrides))
        d = sweep / ",".join(sorted(overrides))
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "config.yaml").write_text(dump(config(arm, cell, seed)))
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        (d / ".hydra" / "hydra.yaml").write_text(dump(hydra_yaml(overrides)))
        (d / "metrics.csv").write_text(metrics)
        roll = rng.random()
        if roll < 0.01:
            continue  # pending: Hydra made the dir, the job has not started
        status = "completed" if roll < 0.96 else "failed" if roll < 0.98 else "running"
        run = {
            "job": {
                "choices": {
                    "experiment": "exp9",
                    "arm": arm,
                    "cell": cell,
                    "registration": "exp9_v1",
                },
                "overrides": overrides,
            },
            "status": status,
            "reason": "ValueError: something went wrong" if status == "failed" else None,
            "experiment": "exp9",
            "registration": "exp9_v1",
            "registration_hash": "325aea6c",
            "started_at": "2026-01-01T12:00:00+00:00",
            "attempt_started_at": "2026-01-01T12:00:00+00:00",
            "ended_at": None if status == "running" else "2026-01-01T12:00:20+00:00",
            "attempts": 1,
            "wall_seconds": rng.uniform(1, 30),
            "package_version": "0.1.0",
            "git_commit": "c70bd10a4bfd5be32f44a6a45e80d8341defd307",
            "python": "3.11.7",
            "host": "node01",
            "pid": 1000 + i,
            "slurm": {"job_id": str(5000 + i), "array_job_id": "5000", "array_task_id": str(i)},
            "jax_backend": "cpu (jax 0.10.2)",
        }
        (d / "run.json").write_text(json.dumps(run, indent=2))
        if status == "completed":
            (d / "summary.json").write_text(json.dumps(summary(arm, cell, rng), indent=2))
    (sweep / "sweep.json").write_text(json.dumps({"runner": "exp9", "jobs": jobs}))
    return sweep


def naive(sweep: Path, loader: type) -> str:
    """The baseline: parse every config.yaml/overrides.yaml, json_normalize, one DataFrame."""
    import pandas as pd

    rows = []
    for d in sorted(p for p in sweep.iterdir() if p.is_dir()):
        with open(d / ".hydra" / "config.yaml") as fh:
            cfg = yaml.load(fh, Loader=loader)  # noqa: S506 - safe loaders only
        with open(d / ".hydra" / "overrides.yaml") as fh:
            overrides = yaml.load(fh, Loader=loader)  # noqa: S506
        row = {"run": d.name, "overrides": ",".join(overrides)}
        row.update(pd.json_normalize(cfg).iloc[0].to_dict())
        try:
            run = json.loads((d / "run.json").read_text())
        except (OSError, ValueError):
            run = {}
        row.update(status=run.get("status", "pending"), wall_s=run.get("wall_seconds"))
        try:
            row.update(
                pd.json_normalize(json.loads((d / "summary.json").read_text())).iloc[0].to_dict()
            )
        except (OSError, ValueError):
            pass
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame = frame.loc[:, frame.astype(str).nunique() > 1]
    return frame.to_string(index=False)


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from prereg.reports.compare import compare

    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        sweep = make_runs(Path(tmp), args.runs)
        print(f"wrote {args.runs} run dirs in {time.perf_counter() - tic:.1f} s ({sweep})")
        lines = compare([str(sweep)]).splitlines()
        assert len(lines) == args.runs + 1, len(lines)
        grouped = compare([str(sweep)], by="arm").splitlines()
        assert len(grouped) == 4, grouped

        results = [
            ("prereg compare (in-process)", best_of(lambda: compare([str(sweep)]), args.repeat)),
            (
                "prereg compare --by arm",
                best_of(lambda: compare([str(sweep)], by="arm"), args.repeat),
            ),
            (
                "naive yaml.safe_load + pandas (baseline)",
                best_of(lambda: naive(sweep, yaml.SafeLoader), args.repeat),
            ),
            (
                "naive with libyaml CSafeLoader",
                best_of(
                    lambda: naive(sweep, getattr(yaml, "CSafeLoader", yaml.SafeLoader)), args.repeat
                ),
            ),
        ]
        tic = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "prereg", "compare", str(sweep)],
            capture_output=True,
            text=True,
            check=True,
        )
        cli = time.perf_counter() - tic
        assert len(out.stdout.splitlines()) == args.runs + 1
        tic = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import prereg.reports.compare"], check=True)
        startup = time.perf_counter() - tic
        results.append(("CLI subprocess, once (incl. interpreter + imports)", cli))
        results.append(("  of which: python -c 'import prereg.reports.compare'", startup))

    baseline = results[2][1]
    width = max(len(name) for name, _ in results)
    print(f"\n{args.runs} run dirs, best of {args.repeat}:")
    print(f"{'method'.ljust(width)}  {'seconds':>8}  {'vs baseline':>11}")
    for name, seconds in results:
        print(f"{name.ljust(width)}  {seconds:8.3f}  {seconds / baseline:10.3f}x")


if __name__ == "__main__":
    main()
