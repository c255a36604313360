"""The exp9 verdict's plots: KL/rho trajectories per cell, and the P2 pair ratios.

Pure drawing functions take the verdict dict and the per-run metrics tables (read once, by the
verdict's own reader, passed in by :func:`prereg.exp9.verdict.write_verdict`); crossings come from
:mod:`prereg.exp9.analysis`, exactly as the verdict computes them.  Files, in ``plots/``:

- ``exp9_trajectories.png`` — KL and rho against step for the three arms of each cell (log y),
  the thresholds eps x initial KL on the KL panels, the matched crossings marked.
- ``exp9_pair_ratios.png`` — the 8 pair ratios r = rho_arm / rho_baseline (primary, and the
  secondary arm's) against the steering bar, and each pair's signal/noise split (log y); for a
  generalised registration (exp9_v2) every augmented arm's ratios and the dose-response.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from prereg.core.plotting import (
    PASS_COLOUR,
    PlotSpec,
    SkipPlot,
    figure,
    log_safe,
    log_y,
    plots_section,
    result_colour,
    titled,
)
from prereg.exp9 import analysis
from prereg.exp9 import arms as arms_mod

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TRAJECTORIES = "exp9_trajectories.png"
PAIR_RATIOS = "exp9_pair_ratios.png"
ARM_COLOURS = {"baseline": "#555555", "secondary": "#0072B2", "primary": "#D55E00",
               "rho0_01": "#D55E00", "rho0_1": "#CC79A7", "rho1": "#882255",
               "noise0_1": "#009E73"}  # fmt: skip
EPS_MARKERS = ["o", "s", "^", "D", "v"]
SIGNAL_COLOUR, NOISE_COLOUR = "#0072B2", "#E69F00"
Tables = Mapping[tuple[str, str], pd.DataFrame]


def _order(names: Sequence[str], preferred: Sequence[str]) -> list[str]:
    return [x for x in preferred if x in names] + sorted(x for x in names if x not in preferred)


def _cell_panels(
    ax_kl: Axes,
    ax_rho: Axes,
    cell: str,
    arms: Sequence[str],
    tables: Tables,
    thresholds: Sequence[float],
) -> set[int]:
    """One cell: KL (top) and rho (bottom) per arm, thresholds and matched crossings.

    Returns the indices of the thresholds whose crossing was drawn (for the legend); a cell
    without runs is one note, no empty axes."""
    present = [a for a in arms if (a, cell) in tables]
    drawn: set[int] = set()
    if not present:
        ax_kl.text(0.5, 0.0, "no run of this cell in the sweep (missing)", ha="center",
                   va="center", transform=ax_kl.transAxes, color="#555555")  # fmt: skip
        for ax in (ax_kl, ax_rho):
            ax.set_axis_off()
        return drawn
    for arm in present:
        m = tables[(arm, cell)]
        colour = ARM_COLOURS.get(arm, "#CC79A7")
        ax_kl.plot(m["step"], log_safe(m["kl"]), color=colour, lw=1.3)
        ax_rho.plot(m["step"], log_safe(m["rho"]), color=colour, lw=1.3)
        for k, hit in enumerate(analysis.crossings(m, thresholds).values()):
            if hit is None:
                continue
            drawn.add(k)
            style = {"marker": EPS_MARKERS[k % len(EPS_MARKERS)], "ms": 6.5, "zorder": 5}
            style |= {"mfc": colour, "mec": "white", "mew": 0.8, "ls": "none"}
            ax_kl.plot([hit["step"]], log_safe([hit["kl"]]), **style)
            ax_rho.plot([hit["step"]], log_safe([hit["rho"]]), **style)
    if present:
        kl0 = float(tables[(present[0], cell)]["kl"].iloc[0])
        for eps in thresholds:
            ax_kl.axhline(eps * kl0, color="black", lw=0.8, ls=(0, (4, 3)))
            ax_kl.annotate(
                f"ε = {eps:g}",
                (1.0, eps * kl0),
                xycoords=("axes fraction", "data"),
                xytext=(-2, 2),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=7,
            )
    for ax in (ax_kl, ax_rho):
        log_y(ax)
    ax_kl.tick_params(labelbottom=False)
    ax_rho.set_xlabel("Adam step")
    ax_kl.set_ylabel("KL(q ‖ p_θ)  [nats]")
    ax_rho.set_ylabel("ρ  (dimensionless)")
    return drawn


def plot_trajectories(
    v: Mapping[str, Any], tables: Tables, registration: Mapping[str, Any]
) -> Figure:
    """A 2 x 2 grid of cells, each with KL over rho against step (log y) for the three arms."""
    if "refused" in v:
        raise SkipPlot(f"verdict refused ({v['refused']})")
    if not tables:
        raise SkipPlot("no run has a readable metrics.csv yet")
    registered = list(registration.get("cells") or {})
    cells = registered + sorted({c for _, c in tables} - set(registered))
    arms = _order({a for a, _ in tables} | set(registration.get("lambdas") or {}), ARM_COLOURS)
    thresholds = list(registration.get("thresholds") or [])
    ncols = 2 if len(cells) > 1 else 1
    nrows = math.ceil(len(cells) / ncols)
    # each cell is a (KL, rho) pair of rows; a thin spacer row separates the cells vertically
    ratios = ([1.0, 1.0, 0.18] * nrows)[:-1]
    fig, grid = figure(
        len(ratios), ncols, layout=None, figsize=(10.5, 4.4 * nrows + 1.1),
        gridspec_kw={"height_ratios": ratios, "hspace": 0.12, "wspace": 0.22}, squeeze=False,
    )  # fmt: skip
    height = 4.4 * nrows + 1.1
    head = 1.05 if v.get("exploratory", {}).get("is") else 0.75  # room for a two-line title
    legend_rows = math.ceil((len({a for a, _ in tables}) + 1 + len(thresholds)) / 3)
    foot = 0.55 + 0.2 * legend_rows  # 0.95 for two legend rows (three arms)
    fig.subplots_adjust(left=0.08, right=0.985, top=1 - head / height, bottom=foot / height)
    for k in range(nrows - 1):
        for ax in grid[3 * k + 2]:
            ax.set_visible(False)
    crossed: set[int] = set()
    for i, cell in enumerate(cells):
        r, c = divmod(i, ncols)
        ax_kl, ax_rho = grid[3 * r, c], grid[3 * r + 1, c]
        ax_rho.sharex(ax_kl)
        ax_kl.set_title(f"cell {cell}", fontweight="bold")
        crossed |= _cell_panels(ax_kl, ax_rho, cell, arms, tables, thresholds)
    for i in range(len(cells), nrows * ncols):
        r, c = divmod(i, ncols)
        grid[3 * r, c].set_visible(False)
        grid[3 * r + 1, c].set_visible(False)
    drawn_arms = {a for a, _ in tables}
    handles: list[Any] = [
        Line2D(
            [],
            [],
            color=ARM_COLOURS.get(a, "#CC79A7"),
            lw=1.5,
            label=arms_mod.label(registration, a),
        )
        for a in arms
        if a in drawn_arms
    ]
    handles.append(Line2D([], [], color="black", lw=0.8, ls=(0, (4, 3)), label="ε × initial KL"))
    handles += [
        Line2D([], [], marker=EPS_MARKERS[k % len(EPS_MARKERS)], color="#444444", ls="none",
               label=f"matched crossing: first step with KL ≤ {eps:g} × initial KL")
        for k, eps in enumerate(thresholds)
        if k in crossed
    ]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    title = "exp9: KL (nats) and ρ = ‖g‖² / tr Σ per arm, thresholds and matched crossings (log y)"
    fig.suptitle(titled(title, v))
    return fig


def _pair_label(p: Mapping[str, Any]) -> str:
    return f"{p['cell']}\nε = {p['eps']:g}"


def _ratio_panel(ax: Axes, v: Mapping[str, Any], prim: list[dict], dose: list[dict]) -> None:
    p2, d = v["P2"], v["reported"]["dose_response"]
    x = np.arange(len(prim))
    bar = float(p2["steering_bar"])
    ax.axhline(bar, color=PASS_COLOUR, lw=1.5, label=f"steering bar r = {bar:g}")
    ax.axhline(1.0, color="black", lw=0.8, ls=":", label="r = 1 (no change)")
    r_p = log_safe([p["ratio"] for p in prim])
    r_s = log_safe([p["ratio"] for p in dose])
    ok = ["#D55E00" if (r or 0) > 1 else "#7F7F7F" for r in (p["ratio"] for p in prim)]
    ax.scatter(x - 0.12, r_p, s=55, c=ok, marker="o", zorder=4, edgecolors="black", lw=0.5)
    ax.scatter(x + 0.12, r_s, s=45, marker="D", zorder=4, facecolors="none",
               edgecolors="#0072B2", lw=1.3)  # fmt: skip
    med = p2["median_ratio"]
    if med is not None and med > 0:
        ax.axhline(med, color="#D55E00", lw=1.0, ls="--", label=f"median r (primary) = {med:.3g}")
    for i, p in enumerate(prim):
        if p["ratio"] is None:
            ax.annotate("no ratio", (i, 0.02), xycoords=("data", "axes fraction"),
                        ha="center", fontsize=7, rotation=90, va="bottom")  # fmt: skip
    log_y(ax)
    lo = min([bar, 1.0, *[r for r in r_p + r_s if not math.isnan(r)]])
    hi = max([bar, 1.0, *[r for r in r_p + r_s if not math.isnan(r)]])
    ax.set_ylim(lo / 1.6, hi * 1.6)
    ax.set_ylabel("r = ρ_arm / ρ_baseline at matched KL")
    verdict = p2.get("result") or ("PASS" if p2["pass"] else "FAIL")
    registered = f"registered consistency count: {p2['consistency_count']}"
    if p2["n_pairs"] != p2["expected_pairs"]:
        registered += f"; {p2['expected_pairs']} pairs registered"
    ax.set_title(
        f"P2 steering: {verdict} — median r {_g(med)} vs bar {bar:g};\n"
        f"{p2['count_gt_1']} of {p2['n_pairs']} pairs have r > 1 ({registered})",
        color=result_colour(verdict),
    )
    handles, _ = ax.get_legend_handles_labels()
    handles.append(
        Line2D(
            [],
            [],
            marker="o",
            ls="none",
            mfc="#D55E00",
            mec="black",
            ms=7,
            label=f"{v['P2'].get('arm', 'primary')} r (grey where r ≤ 1)",
        )
    )
    if any(not math.isnan(r) for r in r_s):  # no legend entry for an arm with no ratio drawn
        handles.append(Line2D([], [], marker="D", ls="none", mfc="none", mec="#0072B2", mew=1.3,
                              ms=6, label=f"{d['arm']} r (reported only)"))  # fmt: skip
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _g(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def _split_panel(ax: Axes, prim: list[dict], dose: list[dict], names: tuple[str, str]) -> None:
    """Signal (numerator) and noise (denominator) ratios per pair, as bars from 1 on log y."""
    x = np.arange(len(prim))
    w = 0.19
    series = [
        (prim, "numerator_ratio", -1.5, SIGNAL_COLOUR, None, f"signal ratio ‖g‖², {names[0]}"),
        (prim, "denominator_ratio", -0.5, NOISE_COLOUR, None, f"noise ratio tr Σ, {names[0]}"),
        (dose, "numerator_ratio", 0.5, SIGNAL_COLOUR, "////", f"signal ratio, {names[1]}"),
        (dose, "denominator_ratio", 1.5, NOISE_COLOUR, "////", f"noise ratio, {names[1]}"),
    ]
    values: list[float] = []
    for rows, key, off, colour, hatch, label in series:
        vals = np.array(log_safe([p[key] for p in rows]), dtype=float)
        if np.isnan(vals).all():
            continue  # nothing to draw: no bars, no legend entry
        values += [float(y) for y in vals if not math.isnan(y)]
        face = colour if hatch is None else "white"
        ax.bar(x + off * w, np.where(np.isnan(vals), 0, vals - 1), w, bottom=1.0, color=face,
               edgecolor=colour, hatch=hatch, lw=1.0, label=label)  # fmt: skip
    ax.axhline(1.0, color="black", lw=0.8)
    log_y(ax)
    if values:
        ax.set_ylim(min([1.0, *values]) / 1.5, max([1.0, *values]) * 1.5)
    ax.set_ylabel("arm / baseline at matched KL")
    ax.set_title("Numerator / denominator split: r = signal ratio / noise ratio")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def plot_pair_ratios(v: Mapping[str, Any]) -> Figure:
    """The P2 pair ratios vs the steering bar (top) and their signal/noise split (bottom)."""
    if "refused" in v:
        raise SkipPlot(f"verdict refused ({v['refused']})")
    if "arms" in v["P2"]:
        return plot_arm_ratios(v)
    prim = list(v["P2"]["pairs"])
    dose = list(v["reported"]["dose_response"]["pairs"])
    if not any(p["ratio"] is not None for p in prim + dose):
        raise SkipPlot("no pair has a matched crossing in both arms yet")
    fig, (ax_r, ax_s) = figure(2, 1, figsize=(10.5, 7.2), sharex=True)
    _ratio_panel(ax_r, v, prim, dose)
    names = ("primary", str(v["reported"]["dose_response"]["arm"]))
    _split_panel(ax_s, prim, dose, names)
    ax_s.set_xticks(np.arange(len(prim)), [_pair_label(p) for p in prim])
    ax_s.set_xlabel("pair (cell, KL threshold ε × initial KL)")
    fig.suptitle(titled("exp9: pair ratios at matched KL crossings (log y)", v))
    return fig


def plot_arm_ratios(v: Mapping[str, Any]) -> Figure:
    """A generalised verdict (exp9_v2): each augmented arm's pair ratios vs the steering bar
    (top), and the dose-response across all lambdas: median r, signal and noise ratios (bottom)."""
    p2s, rows = v["P2"]["arms"], v["reported"]["dose_response"]["rows"]
    if not any(p["ratio"] is not None for p2 in p2s.values() for p in p2["pairs"]):
        raise SkipPlot("no pair has a matched crossing in both arms yet")
    fig, (ax_r, ax_d) = figure(2, 1, figsize=(10.5, 7.6))
    first = next(iter(p2s.values()))
    bar, pairs = float(first["steering_bar"]), first["pairs"]
    x, width = np.arange(len(pairs)), 0.7 / max(len(p2s), 1)
    ax_r.axhline(bar, color=PASS_COLOUR, lw=1.5, label=f"steering bar r = {bar:g}")
    ax_r.axhline(1.0, color="black", lw=0.8, ls=":", label="r = 1 (no change)")
    values = [bar, 1.0]
    for k, (arm, p2) in enumerate(p2s.items()):
        r = log_safe([p["ratio"] for p in p2["pairs"]])
        values += [y for y in r if not math.isnan(y)]
        if all(math.isnan(y) for y in r):
            continue  # no matched pair: no markers, no legend entry (noted below)
        ax_r.scatter(x + (k - (len(p2s) - 1) / 2) * width, r, s=40, zorder=4,
                     color=ARM_COLOURS.get(arm, "#999999"), edgecolors="black", lw=0.4,
                     label=f"{arm}: P2 {p2.get('result')}")  # fmt: skip
    log_y(ax_r)
    ax_r.set_ylim(min(values) / 1.6, max(values) * 1.6)
    ax_r.set_xticks(x, [_pair_label(p) for p in pairs], fontsize=7)
    ax_r.set_ylabel("r = ρ_arm / ρ_baseline at matched KL")
    ax_r.set_title("P2 steering, each augmented arm against the baseline")
    ax_r.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=8)
    xd = np.arange(len(rows))
    series = [
        ("median_ratio", -0.25, "#444444", "median r"),
        ("median_numerator_ratio", 0.0, SIGNAL_COLOUR, "median signal ratio ‖g‖²"),
        ("median_denominator_ratio", 0.25, NOISE_COLOUR, "median noise ratio tr Σ"),
    ]
    dvals = [1.0]
    for key, off, colour, label in series:
        vals = np.array(log_safe([d[key] for d in rows]), dtype=float)
        dvals += [float(y) for y in vals if not math.isnan(y)]
        ax_d.bar(xd + off, np.where(np.isnan(vals), 0, vals - 1), 0.24, bottom=1.0,
                 color=colour, label=label)  # fmt: skip
    for i, d in enumerate(rows):
        if d["median_ratio"] is None:
            ax_d.annotate("no matched pair", (i, 0.04), xycoords=("data", "axes fraction"),
                          ha="center", fontsize=8, color="#555555")  # fmt: skip
    ax_d.axhline(1.0, color="black", lw=0.8)
    log_y(ax_d)
    ax_d.set_ylim(min(dvals) / 1.5, max(dvals) * 1.5)
    ax_d.set_xticks(xd, [f"{d['arm']}\nλ = {d['lambda']:g}, {d['form']}" for d in rows])
    ax_d.set_ylabel("arm / baseline at matched KL")
    ax_d.set_title("Dose-response across all lambdas (reported, not in the verdict)")
    ax_d.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=8)
    fig.suptitle(titled("exp9: pair ratios at matched KL crossings, every arm (log y)", v))
    return fig


#: () -> (metrics table per run key, registration or None)
TablesLoader = Callable[[], tuple[dict[Any, pd.DataFrame], dict[str, Any] | None]]


def write_plots(sweep_dir: Path, v: dict[str, Any], load_tables: TablesLoader) -> str:
    """Draw both exp9 plots into ``<sweep_dir>/plots/``; the Markdown section for verdict.md.

    ``load_tables()`` returns the runs' metrics tables and their registration (the verdict's
    own reader), called only when the trajectories are drawn.
    """

    def trajectories() -> Figure:
        if "refused" in v:
            raise SkipPlot(f"verdict refused ({v['refused']})")
        tables, reg = load_tables()
        return plot_trajectories(v, tables, reg or {})

    specs: list[PlotSpec] = [
        (TRAJECTORIES, "KL and ρ against step per cell and arm, with matched crossings",
         trajectories),
        (PAIR_RATIOS, "P2 pair ratios vs the steering bar, and their signal/noise split",
         lambda: plot_pair_ratios(v)),
    ]  # fmt: skip
    return plots_section(Path(sweep_dir), specs)
