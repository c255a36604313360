"""The pre-registered checks E1-E5 and the outcome, from a job directory's files alone.

Shared by the runner (``summary.json``) and the verdict, so both always agree.

- E1 chain fidelity: at every theta and registered (B, T), the exact finite-chain MSE lies in the
  family-wise interval of the empirical one: |log MSE_exact - log MSE_emp| <= z se_log, with
  z = Phi^-1(1 - (1 - level) / (2 M)) over all M comparisons (Bonferroni), se_log the bootstrap
  standard error; a faithful sampler passes with probability >= level.  The count of exact
  values outside the per-estimate 95% percentile intervals is reported beside it.
- E2 ranking: Spearman(rho, SNR_emp) over all thetas at the practical (B, T) >= the bar.
- E3 calibration: SNR_pred / SNR_emp within [1/f, f] for >= the registered fraction of thetas
  at the practical (B, T); reported: the T from which the exact ratio stays within the factor.
- E4 steering, estimator form: median over the matched-crossing pairs of SNR_emp(primary) /
  SNR_emp(baseline) at the practical (B, T) >= exp9's steering bar (beside exp9's P2 ratios).
- E5 sampled-gradient training (reported): crossing steps and final KL of every retrained run;
  the registered prediction is that the primary arm crosses strictly earlier than baseline in
  at most ``predicted_earlier_at_most`` pairs.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

OUTCOMES = {
    1: "rho predicts the sampled gradient's SNR: E1, E2 and E3 pass",
    2: "rho ranks the sampled gradient's SNR but is not calibrated at the practical T: "
    "E1 and E2 pass, E3 fails",
    3: "rho does not rank the sampled gradient's SNR at the practical T: E1 passes, E2 fails",
    0: "no verdict: the chains and the exact finite-chain formula disagree (E1 fails)",
}


def _csvs(folder: Path) -> pd.DataFrame | None:
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True) if files else None


def load(run_dir: Path) -> dict[str, Any]:
    """The job's tables: thetas, estimates (joined with their thetas), curves, E5 runs."""
    run_dir = Path(run_dir)
    thetas = pd.read_csv(run_dir / "thetas.csv") if (run_dir / "thetas.csv").exists() else None
    est, curves = _csvs(run_dir / "estimates"), _csvs(run_dir / "curves")
    if thetas is not None and est is not None:
        est = est.merge(thetas, on="theta_id", how="left")
    if thetas is not None and curves is not None:
        curves = curves.merge(thetas, on="theta_id", how="left")
    e5 = {}
    if (run_dir / "e5").is_dir():
        for f in sorted((run_dir / "e5").glob("*__*.csv")):
            arm, _, cell = f.stem.partition("__")
            e5[(arm, cell)] = pd.read_csv(f)
    return {"thetas": thetas, "estimates": est, "curves": curves, "e5": e5}


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _e1(est: pd.DataFrame, level: float) -> dict[str, Any]:
    from scipy.stats import norm

    count = len(est)
    z = float(norm.ppf(1.0 - (1.0 - level) / (2 * count)))
    dev = np.abs(np.log(est["mse_exact"]) - np.log(est["mse_emp"])) / est["se_log"]
    bad = est[~(dev <= z)]
    outside = ~((est["snr_exact"] >= est["snr_lo"]) & (est["snr_exact"] <= est["snr_hi"]))
    return {
        "comparisons": count,
        "family_level": level,
        "z": z,
        "worst_z": float(dev.max()),
        "failures": [
            f"{r.arm}/{r.cell} {r.label} B={r.burn_in} T={r.length}" for r in bad.itertuples()
        ],
        "outside_95": int(outside.sum()),
        "worst_ratio": float((est["mse_emp"] / est["mse_exact"]).max()),
        "best_ratio": float((est["mse_emp"] / est["mse_exact"]).min()),
        "pass": bool(len(bad) == 0),
    }


def _e5(
    e5: dict[tuple[str, str], pd.DataFrame], reg: dict[str, Any], src: dict[str, Any]
) -> dict[str, Any]:
    thresholds, window = list(src["thresholds"]), int(src["finals_window"])
    runs = {}
    for (arm, cell), frame in e5.items():
        kl0 = float(frame["kl"].iloc[0])
        cross = {}
        for eps in thresholds:
            hit = np.flatnonzero(frame["kl"].to_numpy() <= eps * kl0)
            cross[str(eps)] = int(frame["step"].iloc[hit[0]]) if hit.size else None
        runs[f"{arm}/{cell}"] = {
            "arm": arm,
            "cell": cell,
            "crossings": cross,
            "final_kl": float(frame["kl"].iloc[-window:].median()),
            "last_kl": float(frame["kl"].iloc[-1]),
            "median_sample_err2": float(frame["sample_err2"].median()),
        }
    prim, base = src["verdict_arm"], src["baseline_arm"]
    pairs = []
    for cell in dict.fromkeys(c for _, c in e5):
        p, b = runs.get(f"{prim}/{cell}"), runs.get(f"{base}/{cell}")
        if p is None or b is None:
            continue
        for eps in thresholds:
            tp, tb = p["crossings"][str(eps)], b["crossings"][str(eps)]
            pairs.append({"cell": cell, "eps": eps, "t_primary": tp, "t_baseline": tb})
    earlier = sum(
        1
        for x in pairs
        if x["t_primary"] is not None
        and (x["t_baseline"] is None or x["t_primary"] < x["t_baseline"])
    )
    later = sum(
        1
        for x in pairs
        if x["t_baseline"] is not None
        and (x["t_primary"] is None or x["t_primary"] > x["t_baseline"])
    )
    at_most = int(reg["e5"]["predicted_earlier_at_most"])
    return {
        "runs": runs,
        "pairs": pairs,
        "earlier": earlier,
        "later": later,
        "ties_or_neither": len(pairs) - earlier - later,
        "prediction": f"{prim} crosses strictly earlier than {base} in at most {at_most} of "
        f"{len(pairs)} pairs",
        "prediction_held": bool(earlier <= at_most),
        "never_crossed": [
            f"{k}@{e}" for k, r in runs.items() for e, t in r["crossings"].items() if t is None
        ],
    }


def evaluate(run_dir: Path, reg: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    """E1-E5 and the outcome number from the job directory (see the module docstring)."""
    tables = load(run_dir)
    est = tables["estimates"]
    if est is None or est.empty:
        return {"outcome": {"number": 0, "sentence": "no verdict: no estimates written"}}
    checks = reg["checks"]
    bp, tp = int(reg["practical"]["burn_in"]), int(reg["practical"]["length"])
    prac = est[(est["burn_in"] == bp) & (est["length"] == tp)]
    out: dict[str, Any] = {
        "thetas": int(est["theta_id"].nunique()),
        "practical": [bp, tp],
        "curve_thetas": int(reg["curve_thetas"]),
    }
    out["E1"] = _e1(est, float(checks["e1_family_level"]))

    from scipy.stats import spearmanr

    corr = float(spearmanr(prac["rho"], prac["snr_emp"]).statistic)
    bar = float(checks["e2_spearman_bar"])
    out["E2"] = {"spearman": corr, "bar": bar, "n": len(prac), "pass": bool(corr >= bar)}

    factor, need = float(checks["e3_factor"]), float(checks["e3_fraction"])
    ratio = prac["snr_pred"] / prac["snr_emp"]
    within = (ratio <= factor) & (ratio >= 1.0 / factor)
    settle = prac["t_within_factor"]
    settled = settle.dropna()
    out["E3"] = {
        "factor": factor,
        "fraction_bar": need,
        "fraction": float(within.mean()),
        "within": int(within.sum()),
        "n": len(prac),
        "median_ratio": float(ratio.median()),
        "min_ratio": float(ratio.min()),
        "max_ratio": float(ratio.max()),
        "t_within_median": float(settled.median()) if len(settled) else None,
        "t_within_max": float(settled.max()) if len(settled) else None,
        "t_within_never": int(settle.isna().sum()),
        "t_within_by_label": {
            str(lab): float(g["t_within_factor"].dropna().median())
            if g["t_within_factor"].notna().any()
            else None
            for lab, g in prac.groupby("label")
        },
        "exact_t_max": int(reg["exact_t_max"]),
        "pass": bool(within.mean() >= need),
    }

    steer = checks.get("e4_steering_bar")
    steer = float(src["steering_bar"] if steer is None else steer)
    prim, base = src["verdict_arm"], src["baseline_arm"]
    pairs = []
    for cell in src["cells"]:
        for eps in src["thresholds"]:
            lab = f"eps={eps}"
            a = prac[(prac["arm"] == prim) & (prac["cell"] == cell) & (prac["label"] == lab)]
            b = prac[(prac["arm"] == base) & (prac["cell"] == cell) & (prac["label"] == lab)]
            if a.empty or b.empty:
                continue
            a, b = a.iloc[0], b.iloc[0]
            pairs.append(
                {
                    "cell": cell,
                    "eps": eps,
                    "ratio_emp": float(a["snr_emp"] / b["snr_emp"]),
                    "ratio_exact": float(a["snr_exact"] / b["snr_exact"]),
                    "ratio_rho_p2": float(a["rho"] / b["rho"]),
                }
            )
    med = _median([p["ratio_emp"] for p in pairs])
    out["E4"] = {
        "pairs": pairs,
        "median_ratio_emp": med,
        "median_ratio_p2": _median([p["ratio_rho_p2"] for p in pairs]),
        "count_gt_1": sum(p["ratio_emp"] > 1 for p in pairs),
        "steering_bar": steer,
        "pass": bool(med is not None and med >= steer),
    }
    out["E5"] = _e5(tables["e5"], reg, src)

    e1, e2, e3 = out["E1"]["pass"], out["E2"]["pass"], out["E3"]["pass"]
    number = 0 if not e1 else (1 if e2 and e3 else 2 if e2 else 3)
    out["outcome"] = {"number": number, "sentence": OUTCOMES[number]}
    return out
