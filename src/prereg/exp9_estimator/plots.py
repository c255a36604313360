"""The estimator verdict's plots: SNR_emp against SNR_pred, and MSE against T."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from prereg.core.plotting import PALETTE, PlotSpec, SkipPlot, figure, plots_section
from prereg.exp9_estimator.checks import load

SNR_PLOT, MSE_PLOT = "snr_emp_vs_pred.png", "mse_vs_T.png"


def _tables(v: dict[str, Any]) -> dict[str, Any]:
    if "refused" in v or "run_dir" not in v:
        raise SkipPlot(f"no estimates ({v.get('refused', 'verdict incomplete')})")
    return load(Path(v["run_dir"]))


def _titled(title: str, v: dict[str, Any]) -> str:
    return f"(exploratory) {title}" if (v.get("exploratory") or {}).get("is") else title


def plot_snr(v: dict[str, Any]) -> Figure:
    """Log-log SNR_emp (95% intervals) against rho T at every (B, T); y = x and the factor band."""
    est = _tables(v)["estimates"]
    fig, ax = figure(figsize=(5.5, 4.5))
    factor = float(v["E3"]["factor"])
    b_prac, t_prac = v["practical"]
    for i, ((b, t), g) in enumerate(est.groupby(["burn_in", "length"])):
        strong = (b, t) == (b_prac, t_prac)
        yerr = [g["snr_emp"] - g["snr_lo"], g["snr_hi"] - g["snr_emp"]]
        ax.errorbar(g["snr_pred"], g["snr_emp"], yerr=yerr, fmt="o" if strong else ".",
                    ms=5 if strong else 3, alpha=1.0 if strong else 0.5,
                    color=PALETTE[i % len(PALETTE)], label=f"B={b}, T={t}")  # fmt: skip
    lo = float(min(est["snr_pred"].min(), est["snr_emp"].min()))
    hi = float(max(est["snr_pred"].max(), est["snr_emp"].max()))
    xs = np.geomspace(lo / 2, hi * 2, 50)
    ax.plot(xs, xs, color="black", lw=1, label="y = x")
    ax.fill_between(xs, xs / factor, xs * factor, color="grey", alpha=0.2, label=f"x{factor:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("SNR_pred = rho T")
    ax.set_ylabel("SNR_emp = ||g||^2 / MSE_emp")
    ax.set_title(_titled(f"SNR_emp vs rho T (bold: practical B={b_prac}, T={t_prac})", v))
    ax.legend(fontsize=6, ncol=2)
    return fig


def plot_mse(v: dict[str, Any]) -> Figure:
    """Exact MSE(T) curves (and T MSE = tr Sigma asymptote) with empirical points, a few thetas."""
    tables = _tables(v)
    est, curves = tables["estimates"], tables["curves"]
    b_prac = v["practical"][0]
    prac = est[est["burn_in"] == b_prac].drop_duplicates("theta_id").sort_values("rho")
    count = min(int(v["curve_thetas"]), len(prac))
    picks = prac["theta_id"].to_numpy()[np.unique(np.linspace(0, len(prac) - 1, count).round())
                                        .astype(int)]  # fmt: skip
    fig, ax = figure(figsize=(6, 4.5))
    for i, tid in enumerate(picks):
        colour = PALETTE[i % len(PALETTE)]
        c = curves[(curves["theta_id"] == tid) & (curves["burn_in"] == b_prac)]
        e = est[(est["theta_id"] == tid) & (est["burn_in"] == b_prac)]
        row = e.iloc[0]
        ax.plot(c["length"], c["mse_exact"], color=colour,
                label=f"{row['arm']}/{row['cell']} {row['label']}")  # fmt: skip
        ax.plot(c["length"], row["noise"] / c["length"], color=colour, ls=":", lw=1)
        mse_lo, mse_hi = row["signal"] / e["snr_hi"], row["signal"] / e["snr_lo"]
        ax.errorbar(e["length"], e["mse_emp"], yerr=[e["mse_emp"] - mse_lo, mse_hi - e["mse_emp"]],
                    fmt="o", ms=4, color=colour)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("T (kernel steps averaged)")
    ax.set_ylabel("MSE of the sampled gradient")
    ax.set_title(_titled(f"MSE vs T, B={b_prac}: exact, chains (points), tr Sigma / T (dotted)", v))
    ax.legend(fontsize=7)
    return fig


def write_plots(sweep_dir: Path, v: dict[str, Any]) -> str:
    """Draw both plots into ``<sweep_dir>/plots/``; the Markdown section for verdict.md."""
    specs: list[PlotSpec] = [
        (SNR_PLOT, "SNR_emp vs SNR_pred = rho T (log-log), y = x and the factor-2 band",
         lambda: plot_snr(v)),
        (MSE_PLOT, "MSE vs T for a few thetas: exact and empirical", lambda: plot_mse(v)),
    ]  # fmt: skip
    return plots_section(Path(sweep_dir), specs)
