"""quadratic_sgd: an example prereg study written outside prereg, in one module.

Plain SGD against heavy-ball momentum on a noisy quadratic, pre-registered as
``quadratic_sgd_v1`` (``conf/registration/quadratic_sgd_v1.yaml``, beside this file):

- objective f(x) = 1/2 sum_i h_i x_i^2, curvatures h log-spaced in [curvature_min, curvature_max];
- each step sees the stochastic gradient g_t = h * x_t + noise_scale * xi_t, xi_t ~ N(0, I);
- update x_{t+1} = x_t - lr * g_t + beta * (x_t - x_{t-1}) (beta = 0 is plain SGD);
- x0_i ~ N(0, init_scale^2 / h_i); each registered seed draws x0 and every xi_t once, and both
  arms see the same draws (a paired design); float64 throughout.

The registered gates (the verdict, from the run directories alone):

- **G1 reach**: every arm's f(x_t) falls to ``loss_threshold`` within ``steps`` on every seed;
- **G2 speed-up**: on every seed, the treatment arm's crossing step is at most ``speedup_bar``
  times the baseline arm's.

Outcome 1: G1 and G2 pass (momentum is faster by the registered margin); 2: G1 passes, G2 fails;
3: G1 fails; 0: no verdict (runs missing, failed, or of different registrations).  Reported, not
in the verdict: each arm's final loss against its exact stationary expected loss (the
fixed point of the 2x2 Lyapunov equation of each coordinate's linear recursion).

What this module gives prereg (see :data:`EXPERIMENTS` at the end): the config schema, the
registration schema, ``validate``, ``run``, ``write_verdict`` and ``figures``; ``conf/`` holds
the config groups ``experiment/quadratic_sgd.yaml``, ``registration/quadratic_sgd_v1.yaml`` and
the study's own arm group ``qsgd_arm/{sgd,momentum}.yaml``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import MISSING, DictConfig

from prereg.core.atomic import atomic_write_csv, atomic_write_json
from prereg.core.checks import at_least, non_negative, one_of, positive, typed_registration
from prereg.core.errors import ConfigError
from prereg.core.experiment import Experiment, StudyConfig
from prereg.core.registration import (
    registration_hash,
    registration_line,
    registration_status,
    to_plain,
)
from prereg.core.rundir import RunDir, run_registered
from prereg.core.rundirs import RunInfo, find_runs
from prereg.core.verdict_files import write_verdict_files

NAME = "quadratic_sgd"
ARM_GROUP = "qsgd_arm"
CONF = Path(__file__).resolve().parent / "conf"

# --------------------------------------------------------------------------- config schemas


@dataclass
class ArmConf:
    """The ``qsgd_arm`` group: which registered arm this run is."""

    name: str = MISSING


@dataclass
class ArmSpec:
    momentum: float = 0.0  # heavy-ball beta; 0 is plain SGD


@dataclass
class QuadraticSGDRegistration:
    """Every pre-registered constant (``conf/registration/quadratic_sgd_v1.yaml``)."""

    name: str = MISSING
    experiment: str = NAME
    dim: int = 50
    curvature_min: float = 1e-3
    curvature_max: float = 1.0
    noise_scale: float = 0.01
    init_scale: float = 1.0
    lr: float = 0.5
    steps: int = 3000
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    arms: dict[str, ArmSpec] = field(default_factory=dict)
    baseline_arm: str = "sgd"
    treatment_arm: str = "momentum"
    loss_threshold: float = 0.5
    speedup_bar: float = 0.25
    final_window: int = 200


@dataclass
class QuadraticSGDConfig(StudyConfig):
    """``experiment=quadratic_sgd``: one arm, every registered seed."""

    runner: str = NAME
    registration: QuadraticSGDRegistration | None = None
    qsgd_arm: ArmConf | None = None


# --------------------------------------------------------------------------- checks


def validate(cfg: DictConfig) -> None:
    """Ranges and registered names, before any compute (types were checked by the schema)."""
    reg = typed_registration(cfg, QuadraticSGDRegistration)
    at_least("registration.dim", reg.dim, 1)
    positive("registration.curvature_min", reg.curvature_min)
    positive("registration.curvature_max", reg.curvature_max)
    if reg.curvature_max < reg.curvature_min:
        raise ConfigError(
            "registration.curvature_max",
            f"must be >= curvature_min ({reg.curvature_min}), got {reg.curvature_max}",
        )
    non_negative("registration.noise_scale", reg.noise_scale)
    positive("registration.init_scale", reg.init_scale)
    lr = positive("registration.lr", reg.lr)
    at_least("registration.steps", reg.steps, 1)
    if not reg.seeds:
        raise ConfigError("registration.seeds", "at least one seed is needed")
    for i, seed in enumerate(reg.seeds):
        at_least(f"registration.seeds[{i}]", seed, 0)
    if len(set(reg.seeds)) != len(reg.seeds):
        raise ConfigError("registration.seeds", f"seeds must differ, got {list(reg.seeds)}")
    if not reg.arms:
        raise ConfigError("registration.arms", "no arms registered")
    for arm, spec in reg.arms.items():
        beta = non_negative(f"registration.arms.{arm}.momentum", spec.momentum)
        if beta >= 1:
            raise ConfigError(f"registration.arms.{arm}.momentum", f"must be < 1, got {beta}")
        # heavy ball on curvature h is stable iff 0 < lr * h < 2 (1 + beta)
        if lr * reg.curvature_max >= 2 * (1 + beta):
            limit = 2 * (1 + beta) / reg.curvature_max
            raise ConfigError(
                "registration.lr",
                f"must be < 2 (1 + momentum) / curvature_max = {limit:g} for arm {arm} to be "
                f"stable, got {lr}",
            )
    arms = list(reg.arms)
    one_of("registration.baseline_arm", reg.baseline_arm, arms)
    one_of("registration.treatment_arm", reg.treatment_arm, arms)
    positive("registration.loss_threshold", reg.loss_threshold)
    positive("registration.speedup_bar", reg.speedup_bar)
    at_least("registration.final_window", reg.final_window, 1)
    if reg.final_window > reg.steps:
        raise ConfigError(
            "registration.final_window", f"must be <= steps ({reg.steps}), got {reg.final_window}"
        )
    if cfg.get(ARM_GROUP) is None:
        raise ConfigError(ARM_GROUP, "no arm selected", arms)
    one_of(ARM_GROUP, cfg[ARM_GROUP].name, arms)


# --------------------------------------------------------------------------- the maths


def curvatures(reg: dict[str, Any]) -> np.ndarray:
    """The registered spectrum: ``dim`` curvatures log-spaced over [min, max]."""
    return np.geomspace(float(reg["curvature_min"]), float(reg["curvature_max"]), int(reg["dim"]))


def simulate(reg: dict[str, Any], momentum: float) -> np.ndarray:
    """f(x_t) for t = 0..steps, one column per registered seed (float64)."""
    h = curvatures(reg)
    d, steps = h.size, int(reg["steps"])
    lr, sigma = float(reg["lr"]), float(reg["noise_scale"])
    x0, noise = [], []
    for seed in reg["seeds"]:  # the same draws for every arm: x0, then every step's xi
        rng = np.random.default_rng(int(seed))
        x0.append(rng.normal(0.0, float(reg["init_scale"]), d) / np.sqrt(h))
        noise.append(rng.normal(0.0, 1.0, (steps, d)))
    x = np.stack(x0)  # (seeds, dim)
    xi = np.stack(noise, axis=1)  # (steps, seeds, dim)
    x_prev = x.copy()
    loss = np.empty((steps + 1, x.shape[0]))
    loss[0] = 0.5 * (h * x * x).sum(axis=1)
    for t in range(steps):
        g = h * x + sigma * xi[t]
        x, x_prev = x - lr * g + momentum * (x - x_prev), x
        loss[t + 1] = 0.5 * (h * x * x).sum(axis=1)
    return loss


def stationary_loss(reg: dict[str, Any], momentum: float) -> float:
    """The exact stationary E f(x) of the recursion.

    Per coordinate, z = (x_t, x_{t-1}) follows z' = A z + b xi with
    A = [[1 + beta - lr h, -beta], [1, 0]] and b = (-lr sigma, 0); its stationary covariance C
    solves the Lyapunov equation C = A C A^T + b b^T, here (I - A (x) A) vec C = vec b b^T.
    """
    lr, sigma, beta = float(reg["lr"]), float(reg["noise_scale"]), float(momentum)
    total = 0.0
    for h in curvatures(reg):
        a = np.array([[1.0 + beta - lr * h, -beta], [1.0, 0.0]])
        b = np.array([-lr * sigma, 0.0])
        c = np.linalg.solve(np.eye(4) - np.kron(a, a), np.outer(b, b).ravel()).reshape(2, 2)
        total += 0.5 * h * c[0, 0]
    return float(total)


def crossing_step(loss: np.ndarray, threshold: float) -> int | None:
    """The first step t with loss[t] <= threshold (None: never)."""
    hit = np.flatnonzero(loss <= threshold)
    return int(hit[0]) if hit.size else None


# --------------------------------------------------------------------------- one run


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """One arm over every registered seed: ``metrics.csv`` (seed, step, loss) and
    ``summary.json``, inside prereg's run-directory life (``run.json``, registration hash,
    a completed run is not redone).  A run takes well under a second: there is no checkpoint,
    an interrupted run simply starts again."""
    reg = to_plain(typed_registration(cfg, QuadraticSGDRegistration))
    arm = str(cfg[ARM_GROUP].name)
    return run_registered(run_dir, NAME, reg, registration_hash(reg), lambda rd: _run(reg, arm, rd))


def _run(reg: dict[str, Any], arm: str, rd: RunDir) -> dict[str, Any]:
    import pandas as pd

    momentum = float(reg["arms"][arm]["momentum"])
    seeds = [int(s) for s in reg["seeds"]]
    loss = simulate(reg, momentum)
    steps = np.arange(loss.shape[0])
    frame = pd.DataFrame(
        {
            "seed": np.repeat(seeds, loss.shape[0]),
            "step": np.tile(steps, len(seeds)),
            "loss": loss.T.ravel(),
        }
    )
    bad = ~np.isfinite(loss)
    if bad.any():
        t, s = np.argwhere(bad)[0]
        atomic_write_csv(rd.path / "metrics.csv", frame[frame["step"] < t])
        raise FloatingPointError(f"non-finite loss at step {t} of seed {seeds[s]}")
    atomic_write_csv(rd.path / "metrics.csv", frame)
    threshold, window = float(reg["loss_threshold"]), int(reg["final_window"])
    crossings = {str(s): crossing_step(loss[:, i], threshold) for i, s in enumerate(seeds)}
    finals = {str(s): float(np.median(loss[-window:, i])) for i, s in enumerate(seeds)}
    summary = {
        "experiment": NAME,
        "arm": arm,
        "momentum": momentum,
        "seeds": seeds,
        "initial_loss": {str(s): float(loss[0, i]) for i, s in enumerate(seeds)},
        "crossing_step": crossings,
        "final_loss": finals,
        "stationary_loss": stationary_loss(reg, momentum),
    }
    atomic_write_json(rd.path / "summary.json", summary)
    return summary


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """``prereg compare`` columns: medians over seeds, the slowest crossing, the theory floor."""
    steps = [v for v in (summary.get("crossing_step") or {}).values() if v is not None]
    finals = list((summary.get("final_loss") or {}).values())
    initial = list((summary.get("initial_loss") or {}).values())
    n_seeds = len(summary.get("seeds") or [])
    return {
        "momentum": summary.get("momentum"),
        "median_initial_loss": statistics.median(initial) if initial else None,
        "median_crossing_step": statistics.median(steps) if steps else None,
        "max_crossing_step": max(steps) if len(steps) == n_seeds and steps else None,
        "median_final_loss": statistics.median(finals) if finals else None,
        "stationary_loss": summary.get("stationary_loss"),
    }


# --------------------------------------------------------------------------- the verdict

OUTCOMES = {
    1: "the treatment arm reaches the threshold faster by the registered margin: G1, G2 pass",
    2: "both arms reach the threshold, the treatment arm not faster by the margin: G2 fails",
    3: "an arm does not reach the threshold within the registered steps: G1 fails",
    0: "no verdict: runs missing, not completed, or of different registrations",
}


def _pf(ok: bool | None) -> str:
    return "not evaluated" if ok is None else ("PASS" if ok else "FAIL")


def _num(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _arm_of(run: RunInfo) -> str | None:
    return (run.summary or {}).get("arm") or run.choices.get(ARM_GROUP)


def _crossings(run: RunInfo, threshold: float) -> dict[str, int | None] | None:
    """Each seed's crossing step, recomputed from ``metrics.csv`` (None: unreadable)."""
    import pandas as pd

    try:
        frame = pd.read_csv(run.path / "metrics.csv")
    except (OSError, ValueError):
        return None
    return {
        str(seed): crossing_step(g.sort_values("step")["loss"].to_numpy(), threshold)
        for seed, g in frame.groupby("seed")
    }


def compute_verdict(sweep_dir: Path) -> dict[str, Any]:
    """The verdict as a JSON-able dict, from the run directories alone."""
    runs = [r for r in find_runs([sweep_dir]) if (r.run or {}).get("experiment") == NAME]
    out: dict[str, Any] = {"experiment": NAME, "sweep_dir": str(sweep_dir)}

    def no_verdict(why: str) -> dict[str, Any]:
        out["refused"] = why
        out["outcome"] = {"number": 0, "sentence": f"no verdict: {why}"}
        return out

    hashes = sorted({r.registration_hash for r in runs if r.registration_hash})
    if len(hashes) != 1:
        if not hashes:
            return no_verdict(f"no {NAME} run with a registration hash found")
        return no_verdict(
            "runs of different registrations cannot be pooled: "
            + "; ".join(
                f"hash {h}: "
                + ", ".join(sorted(r.path.name for r in runs if r.registration_hash == h))
                for h in hashes
            )
        )
    chosen = hashes[0]
    runs = [r for r in runs if r.registration_hash == chosen]
    reg = next((x for x in (r.read_json("registration.json") for r in runs) if x), None)
    if not isinstance(reg, dict):
        return no_verdict("registration.json missing from every run")
    out["registration"] = registration_status(reg, chosen, QuadraticSGDRegistration, CONF)
    arms, seeds = list(reg["arms"]), [str(s) for s in reg["seeds"]]
    base, treat = reg["baseline_arm"], reg["treatment_arm"]
    threshold, bar, cap = float(reg["loss_threshold"]), float(reg["speedup_bar"]), reg["steps"]
    by_arm = {_arm_of(r): r for r in runs}
    missing = [a for a in arms if a not in by_arm]
    not_done = {a: f"{r.status}: {r.reason}" for a, r in by_arm.items() if r.status != "completed"}
    out["runs"] = {
        "expected": len(arms),
        "completed": sum(by_arm[a].status == "completed" for a in arms if a in by_arm),
        "missing": missing,
        "not_completed": not_done,
    }
    if missing or not_done:
        return no_verdict(f"{out['runs']['completed']}/{len(arms)} runs completed")
    crossings = {a: _crossings(by_arm[a], threshold) for a in arms}
    unreadable = [a for a, c in crossings.items() if c is None or sorted(c) != sorted(seeds)]
    if unreadable:
        return no_verdict(f"metrics.csv missing or incomplete for {', '.join(unreadable)}")
    out["crossings"] = crossings

    never = [f"{a}/seed {s}" for a in arms for s in seeds if crossings[a][s] is None]
    g1 = not never
    out["G1"] = {
        "gate": f"every arm reaches loss <= {threshold:g} within {cap} steps on every seed",
        "pass": g1,
        "never_crossed": never,
    }
    ratios = {
        s: (crossings[treat][s] / crossings[base][s] if crossings[base][s] else None)
        for s in seeds
        if crossings[treat][s] is not None and crossings[base][s] is not None
    }
    known = [r for r in ratios.values() if r is not None]
    g2 = all(r is not None and r <= bar for r in ratios.values()) if g1 else None
    out["G2"] = {
        "gate": f"{treat}'s crossing step <= {bar:g} x {base}'s on every seed",
        "pass": g2,
        "ratios": ratios,
        "median_ratio": statistics.median(known) if known else None,
        "max_ratio": max(known) if known else None,
        "bar": bar,
    }
    reported = {}
    for a in arms:
        s = by_arm[a].summary or {}
        finals = list((s.get("final_loss") or {}).values())
        reported[a] = {
            "median_final_loss": statistics.median(finals) if finals else None,
            "stationary_loss": s.get("stationary_loss"),
        }
    out["reported"] = {"final_vs_stationary": reported}
    number = 3 if not g1 else (1 if g2 else 2)
    out["outcome"] = {"number": number, "sentence": OUTCOMES[number]}
    return out


def render_verdict(v: dict[str, Any]) -> str:
    """verdict.md: the outcome first, then each gate with its figures."""
    o = v["outcome"]
    lines = [
        f"# {NAME} verdict — {v['sweep_dir']}",
        "",
        f"**Outcome {o['number']}** — {o['sentence']}",
        "",
    ]
    if "registration" in v:
        lines += [registration_line(v["registration"]), ""]
    if "runs" in v:
        r = v["runs"]
        lines.append(f"Runs: {r['completed']}/{r['expected']} completed.")
        if r["missing"]:
            lines.append(f"Missing: {', '.join(r['missing'])}")
        for arm, why in r["not_completed"].items():
            lines.append(f"Not completed: {arm} — {why}")
        lines.append("")
    if "crossings" not in v:
        return "\n".join(lines)
    g1, g2 = v["G1"], v["G2"]
    arms = list(v["crossings"])
    seeds = list(next(iter(v["crossings"].values())))
    lines += [f"## G1 reach — {_pf(g1['pass'])}", "", g1["gate"] + "."]
    if g1["never_crossed"]:
        lines.append(f"Never crossed: {', '.join(g1['never_crossed'])}.")
    lines += ["", f"## G2 speed-up — {_pf(g2['pass'])}", "", g2["gate"] + "."]
    if g2["median_ratio"] is not None:
        lines.append(
            f"Ratios: median {g2['median_ratio']:.3f}, worst {g2['max_ratio']:.3f} "
            f"(bar {g2['bar']:g})."
        )
    lines += ["", "| seed | " + " | ".join(arms) + " | ratio |", "|---" * (len(arms) + 2) + "|"]
    for s in seeds:
        cells = [
            str(v["crossings"][a][s]) if v["crossings"][a][s] is not None else "-" for a in arms
        ]
        ratio = g2["ratios"].get(s)
        lines.append(
            f"| {s} | " + " | ".join(cells) + f" | {'-' if ratio is None else f'{ratio:.3f}'} |"
        )
    lines += [
        "",
        "## Reported, not in the verdict",
        "",
        "Final loss (median of the last registered window, median over seeds) against the exact",
        "stationary expected loss of each arm's recursion (a final loss far above it: the arm",
        "had not settled by the last step; its slowest direction contracts by about",
        "lr x curvature_min / (1 - momentum) per step):",
        "",
        "| arm | final loss | stationary E f |",
        "|---|---|---|",
    ]
    for arm, rep in v["reported"]["final_vs_stationary"].items():
        fin, sta = rep["median_final_loss"], rep["stationary_loss"]
        lines.append(f"| {arm} | {_num(fin)} | {_num(sta)} |")
    return "\n".join(lines) + "\n"


def write_verdict(sweep_dir: Path) -> str:
    """``verdict.json`` and ``verdict.md`` in the sweep dir; returns the markdown."""
    return write_verdict_files(Path(sweep_dir), compute_verdict, render_verdict)


# --------------------------------------------------------------------------- the definition

EXPERIMENTS = [
    Experiment(
        name=NAME,
        description="plain SGD vs heavy-ball momentum on a noisy quadratic (example study)",
        config=QuadraticSGDConfig,
        registration=QuadraticSGDRegistration,
        run=run,
        validate=validate,
        verdict=write_verdict,
        figures=figures,
        conf=str(CONF),
    )
]
