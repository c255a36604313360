"""The exp9_estimator job: thetas of the source sweep, finite-chain estimates, E5 retraining.

One job does the whole registered set (a few minutes on two cores), writing as it goes so that
a re-run resumes and never redoes or overwrites finished parts:

- ``source.json``: the source sweep (path, registration, hash); a re-run with another refuses;
- ``thetas.csv`` / ``thetas.npz``: every theta (run, label, step, logged kl/rho/signal/noise)
  and its parameters, replayed (:mod:`prereg.exp9_estimator.replay`) and checked against the
  source's ``metrics.csv``;
- ``estimates/<cell>.csv``: per theta and registered (B, T): empirical MSE and SNR with its
  bootstrap interval, the exact MSE and SNR, SNR_pred = rho * T, and the T from which
  SNR_pred / SNR_exact stays within the registered factor;
- ``curves/<cell>.csv``: the exact MSE on a log grid of T (for the MSE-vs-T plot);
- ``e5/<arm>__<cell>.csv``: the sampled-gradient retraining, one row per step;
- ``summary.json``: the checks (:mod:`prereg.exp9_estimator.checks`), as the verdict has them.
"""

from __future__ import annotations

import io
import logging
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from prereg.core.atomic import atomic_write_bytes, atomic_write_csv, atomic_write_json, read_json
from prereg.core.checks import typed_registration
from prereg.core.errors import ConfigError
from prereg.core.registration import registration_hash, to_plain
from prereg.core.rundir import RunDir, run_registered
from prereg.exp9_estimator.config import NAME, Exp9EstRegistration
from prereg.exp9_estimator.source import KEY, SourceSweep, check_source

log = logging.getLogger("prereg.exp9_estimator")
#: the replayed KL and rho must equal the source's metrics.csv to this relative tolerance
REPLAY_TOL = 1e-12


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run (or resume, or skip if completed) the study in ``run_dir``; returns its summary."""
    reg = to_plain(typed_registration(cfg, Exp9EstRegistration))
    src = check_source(cfg.get(KEY), reg["source_registration"])
    return run_registered(run_dir, NAME, reg, registration_hash(reg), lambda rd: _run(reg, src, rd))


def _source_record(src: SourceSweep, rd: RunDir) -> None:
    record = {
        "path": str(src.path.resolve()),
        "registration": src.registration["name"],
        "registration_hash": src.registration_hash,
        "status": src.status,
        "constants": src.registration,
    }
    old = read_json(rd.path / "source.json")
    if old is not None and old.get("registration_hash") != record["registration_hash"]:
        raise ConfigError(
            KEY,
            f"{rd.path} holds results from source sweep {old.get('path')} "
            f"(hash {old.get('registration_hash')}); use a new sweep dir for {src.path}",
        )
    if old is None:
        atomic_write_json(rd.path / "source.json", record)


def _thetas(src: SourceSweep, rd: RunDir) -> tuple[pd.DataFrame, np.ndarray]:
    """Every theta of the source sweep (replayed once, then read back)."""
    from prereg.exp9_estimator import replay

    csv, npz = rd.path / "thetas.csv", rd.path / "thetas.npz"
    if csv.exists() and npz.exists():
        with np.load(npz) as z:
            return pd.read_csv(csv), z["theta"]
    rows, params = [], []
    thresholds = list(src.registration["thresholds"])
    for (arm, cell), info in src.runs.items():
        metrics = pd.read_csv(info.path / "metrics.csv")
        want = replay.targets(metrics, thresholds)
        got = replay.replay(info.path, src.registration, arm, cell, sorted(set(want.values())))
        for label, step in want.items():
            logged = metrics.loc[metrics["step"] == step].iloc[0]
            rep = got[step]
            dev = max(abs(rep[k] - logged[k]) / abs(logged[k]) for k in ("kl", "rho"))
            if not dev <= REPLAY_TOL:
                raise RuntimeError(
                    f"replay of {arm}/{cell} does not reproduce its metrics.csv at step {step} "
                    f"(relative deviation {dev:.3g} > {REPLAY_TOL:g})"
                )
            spec = src.registration["cells"][cell]
            rows.append(
                {
                    "theta_id": len(rows),
                    "arm": arm,
                    "cell": cell,
                    "n": int(spec["n"]),
                    "m": int(spec["m"]),
                    "label": label,
                    "step": step,
                    **{k: float(logged[k]) for k in ("kl", "rho", "signal", "noise")},
                    "replay_deviation": dev,
                }
            )
            params.append(rep["theta"])
        log.info("replayed %s/%s at steps %s", arm, cell, sorted(set(want.values())))
    frame = pd.DataFrame(rows)
    width = max(len(p) for p in params)
    theta = np.full((len(params), width), np.nan)
    for i, p in enumerate(params):
        theta[i, : len(p)] = p
    buf = io.BytesIO()
    np.savez(buf, theta=theta)
    atomic_write_bytes(npz, buf.getvalue())
    atomic_write_csv(csv, frame)
    return frame, theta


def _cell_key(seed: int, cell: str) -> Any:
    import jax

    return jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(cell.encode()))


def _estimates(
    reg: dict[str, Any], cell: str, rows: pd.DataFrame, theta: np.ndarray, rd: RunDir
) -> None:
    """estimates/<cell>.csv and curves/<cell>.csv for the cell's thetas (skipped when present)."""
    import jax.numpy as jnp

    from prereg.exp9_estimator import chains, exact, stats

    est_path, curve_path = rd.path / "estimates" / f"{cell}.csv", rd.path / "curves" / f"{cell}.csv"
    if est_path.exists() and curve_path.exists():
        return
    n, m = int(rows["n"].iloc[0]), int(rows["m"].iloc[0])
    k = n * m + n + m
    thetas = theta[rows["theta_id"].to_numpy(), :k]
    burn_ins, lengths = [int(b) for b in reg["burn_in"]], [int(t) for t in reg["lengths"]]
    t_max = max(int(reg["exact_t_max"]), max(lengths))
    factor = float(reg["checks"]["e3_factor"])
    means = exact.model_means(thetas, n, m)
    errors = chains.chain_errors(
        thetas,
        n,
        m,
        int(reg["chains"]),
        burn_ins,
        lengths,
        means,
        _cell_key(int(reg["seed"]), cell),
    )
    weights = stats.bootstrap_weights(
        int(reg["chains"]), int(reg["bootstrap"]["resamples"]), int(reg["bootstrap"]["seed"])
    )
    settings = [(b, t) for b in burn_ins for t in lengths]
    grid = stats.log_grid(t_max)
    est_rows, curve_rows = [], []
    curves = {
        b: [np.asarray(a) for a in exact.mse_curves(jnp.asarray(thetas), n, m, b, t_max)]
        for b in burn_ins
    }
    for i, row in enumerate(rows.itertuples(index=False)):
        err = np.stack([errors[bt][i] for bt in settings], axis=1)  # [chains, J]
        emp = stats.snr_estimates(err, row.signal, weights)
        for b in burn_ins:
            mse, bias2 = curves[b][0][i], curves[b][1][i]
            settle = stats.t_within_factor(mse, row.noise, factor)
            for tt in grid:
                curve_rows.append(
                    {
                        "theta_id": row.theta_id,
                        "burn_in": b,
                        "length": int(tt),
                        "mse_exact": mse[tt - 1],
                        "bias2_exact": bias2[tt - 1],
                    }
                )
            for j, (bb, t) in enumerate(settings):
                if bb != b:
                    continue
                est_rows.append(
                    {
                        "theta_id": row.theta_id,
                        "burn_in": b,
                        "length": t,
                        **{key: float(val[j]) for key, val in emp.items()},
                        "mse_exact": float(mse[t - 1]),
                        "bias2_exact": float(bias2[t - 1]),
                        "snr_exact": row.signal / float(mse[t - 1]),
                        "snr_pred": row.rho * t,
                        "t_within_factor": settle,
                    }
                )
    for path, table in ((curve_path, curve_rows), (est_path, est_rows)):
        if not path.exists():  # the other one was written before an interruption: kept
            atomic_write_csv(path, pd.DataFrame(table))


def _e5(reg: dict[str, Any], src: SourceSweep, arm: str, cell: str, rd: RunDir) -> None:
    """e5/<arm>__<cell>.csv: the sampled-gradient retraining of one exp9 run (skipped if done)."""
    import jax.numpy as jnp

    from prereg.exp9 import model
    from prereg.exp9_estimator import sampled

    path = rd.path / "e5" / f"{arm}__{cell}.csv"
    if path.exists():
        return
    sreg, e5 = src.registration, reg["e5"]
    spec = sreg["cells"][cell]
    n, m = int(spec["n"]), int(spec["m"])
    lam = float(sreg["lambdas"][arm])
    out = sampled.train(
        jnp.asarray(model.init_theta(n, m, int(spec["init_seed"]), float(sreg["init_scale"]))),
        jnp.asarray(model.make_teacher(n, float(sreg["beta"]), int(spec["teacher_seed"]))),
        jnp.asarray(lam),
        _cell_key(int(e5["seed"]), cell),
        n=n,
        m=m,
        num_steps=int(sreg["step_cap"]),
        chains=int(e5["chains"]),
        chain_steps=int(e5["steps_per_update"]),
        form=str(sreg["aux"]["form"]),
        lr=float(sreg["lr"]),
        augmented=lam > 0,
    )
    frame = pd.DataFrame({c: np.asarray(out[c]) for c in sampled.COLUMNS})
    if not np.isfinite(frame.to_numpy(dtype=float)).all():
        raise FloatingPointError(f"E5 {arm}/{cell}: non-finite values in the sampled training")
    atomic_write_csv(path, frame)
    log.info("E5 %s/%s: KL at the last step %.4g", arm, cell, frame["kl"].iloc[-1])


def e5_runs(reg: dict[str, Any], src_reg: dict[str, Any]) -> list[tuple[str, str]]:
    """The (arm, cell) pairs E5 retrains: every arm, on the registered cells (default: all)."""
    cells = list(reg["e5"]["cells"]) or list(src_reg["cells"])
    return [(a, c) for c in cells for a in src_reg["lambdas"]]


def _run(reg: dict[str, Any], src: SourceSweep, rd: RunDir) -> dict[str, Any]:
    from prereg.training.jaxcache import enable_compilation_cache

    enable_compilation_cache()
    from prereg.exp9 import enable_x64

    enable_x64()
    from prereg.exp9_estimator import checks

    tic = time.perf_counter()
    _source_record(src, rd)
    rows, theta = _thetas(src, rd)
    for cell, group in rows.groupby("cell", sort=False):
        tc = time.perf_counter()
        _estimates(reg, str(cell), group, theta, rd)
        log.info("estimates for %s: %.1f s", cell, time.perf_counter() - tc)
    for arm, cell in e5_runs(reg, src.registration):
        _e5(reg, src, arm, cell, rd)
    summary = checks.evaluate(rd.path, reg, src.registration)
    summary["compute_seconds"] = time.perf_counter() - tic
    atomic_write_json(rd.path / "summary.json", summary)
    return summary
