"""The Path-B ladder verdict's plots: learning curves per candidate and the stage table.

Pure drawing functions take the verdict dict and each candidate's metrics table (read once by
the verdict's own reader, passed in by the verdict).  Files, in ``plots/``:

- ``ladder_curves.png`` — success_rate, entropy, log_std and value_loss (``ppo_pathb_v2``:
  explained_variance, its gate) against env steps per candidate, the Stage-2 window (the final
  ``window`` updates) shaded, the thresholds drawn; each Stage-1 eval a star with its Wilson 95%
  interval.  A multi-seed run is drawn as its mean over seeds in a band from the lowest to the
  highest seed.
- ``ladder_stages.png`` — the stage table: candidates x stages, PASS / FAIL / not reached, each
  figure with the comparison that holds (``Δ log_std 0.046 > 0``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from prereg.core.plotting import (
    FAIL_COLOUR,
    PALETTE,
    PASS_COLOUR,
    UNDECIDED_COLOUR,
    PlotSpec,
    SkipPlot,
    dodge,
    exploratory_note,
    figure,
    log_y,
    plots_section,
    titled,
)
from prereg.core.stats import wilson_interval
from prereg.ppo.ladder import NEGATED

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CURVES = "ladder_curves.png"
STAGES = "ladder_stages.png"
WINDOW_COLOUR = "#999999"
CELL_COLOURS = {
    "PASS": "#B8E0C8",
    "FAIL": "#F6C3A8",
    "not reached": "#E4E4E4",
    "not graded": "#F7F7F7",
    "not run": "#FFFFFF",
}
SHORT_RUN = 20  # a run of at most this many updates gets markers on its curves
SHORT_LABELS = {1: ["success_rate"], 2: ["entropy[-1]", "Δ log_std", "max value_loss"], 3: ["gap"]}
Tables = Mapping[str, pd.DataFrame]


def _name(row: Mapping[str, Any]) -> str:
    change = ", ".join(f"{k}={v:g}" for k, v in row["set"].items())
    return f"{row['order']}. {row['candidate']} ({change})"


def _x(m: pd.DataFrame) -> np.ndarray:
    return (m["env_steps"] if "env_steps" in m else m["update"]).to_numpy(dtype=float)


def _by_update(m: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """A run's table per update: itself, or (multi-seed) the mean over seeds, min and max."""
    m = m.sort_values("update")
    if "seed" not in m or m["seed"].nunique() < 2:
        return m, None, None
    g = m.drop(columns="seed").groupby("update", as_index=False)
    return g.mean(), g.min(), g.max()


def _star(row: Mapping[str, Any]) -> tuple[float, tuple[float, float] | None] | None:
    """The Stage-1 eval's success rate and its Wilson 95% interval, from the verdict row."""
    stage1 = ((row.get("grade") or {}).get("stages") or [{}])[0]
    check = (stage1.get("checks") or [{}])[0]
    count = check.get("count")
    if count and count[1]:
        k, n = int(count[0]), int(count[1])
        return k / n, wilson_interval(k, n)
    figure_ = check.get("figure")
    if figure_ is None or not np.isfinite(figure_):
        return None
    return float(figure_), None


def plot_curves(v: Mapping[str, Any], tables: Tables, registration: Mapping[str, Any]) -> Figure:
    """success_rate, entropy, log_std, value_loss vs env steps; Stage-2 window and gates drawn."""
    if "refused" in v:
        raise SkipPlot(f"verdict refused ({v['refused']})")
    rows = [r for r in v["candidates"] if r["candidate"] in tables]
    if not rows:
        raise SkipPlot("no candidate has a readable metrics.csv yet")
    s1, s2 = registration["stage1"], registration["stage2"]
    window = int(s2["window"])
    pooled = "num_seeds" in registration  # ppo_pathb_v2: explained variance is the 4th gate
    last = "explained_variance" if pooled else "value_loss"
    fig, axes = figure(2, 2, figsize=(11, 7.4), sharex=True)
    ax_s, ax_e, ax_l, ax_v = axes.ravel()
    spans: set[tuple[float, float]] = set()
    stars: list[tuple[float, float, str, Any]] = []  # (x, y, colour, CI) of each Stage-1 eval
    success_drawn = False
    for row in rows:
        m, lo, hi = _by_update(tables[row["candidate"]])
        colour = PALETTE[(int(row["order"]) - 1) % len(PALETTE)]
        x = _x(m)
        style = {"marker": "o", "ms": 3.5} if len(m) <= SHORT_RUN else {}
        for ax, col in ((ax_s, "success_rate"), (ax_e, "entropy"), (ax_l, "log_std"),
                        (ax_v, last)):  # fmt: skip
            if col in m:
                y = m[col].to_numpy(dtype=float)
                ax.plot(x, y, color=colour, lw=1.2, **style)
                if lo is not None and hi is not None:  # the seeds' range
                    ax.fill_between(x, lo[col].to_numpy(float), hi[col].to_numpy(float),
                                    color=colour, alpha=0.15, lw=0)  # fmt: skip
                success_drawn |= col == "success_rate" and bool(np.isfinite(y).any())
        if len(m) >= window:
            spans.add((float(x[-window]), float(x[-1])))
        star = _star(row)
        if star is not None:
            stars.append((float(x[-1]), star[0], colour, star[1]))
    _stars(ax_s, stars)
    if not success_drawn:
        ax_s.text(0.5, 0.62, "no training episode ended:\nsuccess_rate of training episodes "
                  "undefined", ha="center", va="center", transform=ax_s.transAxes,
                  color=UNDECIDED_COLOUR, fontsize=8.5)  # fmt: skip
    for lo, hi in sorted(spans):
        for ax in axes.ravel():
            ax.axvspan(lo, hi, color=WINDOW_COLOUR, alpha=0.18, lw=0, zorder=0)
    gate_style = {"color": "black", "lw": 1.0, "ls": (0, (5, 3))}
    ax_s.axhline(float(s1["min_success_rate"]), **gate_style)
    ax_e.axhline(float(s2["max_final_entropy"]), **gate_style)
    last_gate = float(s2["min_explained_variance" if pooled else "max_value_loss"])
    ax_v.axhline(last_gate, **gate_style)
    _gate_note(
        ax_s,
        float(s1["min_success_rate"]),
        "Stage 1 (eval" + (", Wilson lower bound" if pooled else "") + ") ≥ {:g}",
    )
    _gate_note(ax_e, float(s2["max_final_entropy"]), "Stage 2: entropy[-1] < {:g}")
    _gate_note(ax_v, last_gate, "Stage 2: window mean ≥ {:g}" if pooled
               else "Stage 2: ≤ {:g} in the window", right=True)  # fmt: skip
    ax_s.set_ylabel("success_rate (training episodes)")
    ax_s.set_ylim(-0.02, 1.02)
    ax_e.set_ylabel("policy entropy  [nats]")
    ax_l.set_ylabel("log_std (mean over action dims)")
    ax_v.set_ylabel("explained_variance (critic)" if pooled else "value_loss  [return²]")
    losses = np.concatenate([tables[r["candidate"]][last].to_numpy(dtype=float)
                             for r in rows if last in tables[r["candidate"]]] or [[]])  # fmt: skip
    losses = losses[np.isfinite(losses) & (losses > 0)]
    if not pooled and len(losses) and losses.max() / losses.min() > 100:
        log_y(ax_v)
    for ax in (ax_l, ax_v):
        ax.set_xlabel("env steps")
        ax.xaxis.set_major_formatter(ticker.EngFormatter(sep=""))
    handles: list[Any] = [
        Line2D([], [], color=PALETTE[(int(r["order"]) - 1) % len(PALETTE)], lw=1.5,
               label=f"{_name(r)} — {r['result']}")
        for r in rows
    ]  # fmt: skip
    if spans:  # a run shorter than the window has none: no legend entry for it
        handles.append(Patch(color=WINDOW_COLOUR, alpha=0.35,
                             label=f"Stage-2 window (final {window} updates)"))  # fmt: skip
    handles.append(Line2D([], [], **gate_style, label="registered gate"))
    if stars:
        label = (f"Stage-1 eval success, Wilson 95% interval (seed_start {s1['seed_start']}; "
                 "side by side if equal)")  # fmt: skip
        handles.append(Line2D([], [], marker="*", ms=11, color="#777777", mec="black", mew=0.6,
                              ls="none", label=label))  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=2)
    fig.suptitle(titled("PPO Path-B ladder: learning curves per candidate", v))
    return fig


def _stars(ax: Axes, stars: Sequence[tuple[float, float, str, Any]]) -> None:
    """Stage-1 eval markers at each run's last x, each with its Wilson 95% interval as a
    vertical bar; coinciding ones dodged side by side."""
    if not stars:
        return
    from matplotlib.transforms import offset_copy

    xs = [x for x, _, _, _ in stars]
    span = (max(xs) - min(xs)) or max(abs(max(xs)), 1.0)
    offsets = dodge([(x, y) for x, y, _, _ in stars], (0.01 * span, 0.015), step=11.0)
    for (x, y, colour, ci), dx in zip(stars, offsets, strict=True):
        where = offset_copy(ax.transData, fig=ax.figure, x=dx, y=0, units="points")
        if ci is not None:
            ax.plot([x, x], list(ci), color=colour, lw=1.6, zorder=4, clip_on=False,
                    solid_capstyle="butt", transform=where)  # fmt: skip
        ax.plot([x], [y], marker="*", ms=13, color=colour, mec="black", mew=0.6, ls="none",
                zorder=5, clip_on=False, transform=where)  # fmt: skip


def _gate_note(ax: Axes, y: float, fmt: str, right: bool = False) -> None:
    """Label a gate line just above it, at the left (or right) end of the panel."""
    ax.annotate(fmt.format(y), (0.99 if right else 0.01, y), xycoords=("axes fraction", "data"),
                xytext=(0, 3), textcoords="offset points", fontsize=7.5, va="bottom",
                ha="right" if right else "left")  # fmt: skip


def _stage_text(stage: Mapping[str, Any]) -> str:
    if stage["result"] == "not reached":
        return "not reached"
    labels = SHORT_LABELS.get(int(stage["number"]), [])
    lines = [stage["result"]]
    for i, c in enumerate(stage["checks"]):
        label = c.get("name") or (labels[i] if i < len(labels) else c["label"])
        fig_ = "—" if c["figure"] is None else f"{c['figure']:.3g}"
        if c.get("interval") and all(np.isfinite(v) for v in c["interval"]):
            fig_ += " [{:.2f}, {:.2f}]".format(*c["interval"])
        if c.get("op") and c.get("threshold") is not None:  # the comparison that holds
            finite = c["figure"] is not None and np.isfinite(c["figure"])
            op = c["op"] if c["passed"] else NEGATED[c["op"]] if finite else f"not {c['op']}"
            lines.append(f"{label} {fig_} {op} {c['threshold']:g}")
        else:
            lines.append(f"{label} {fig_} ({c['gate']})")
    if stage.get("reason"):
        lines.append(textwrap.shorten(stage["reason"], 40))
    return "\n".join(lines)


def _cells(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(text, result key) for Stage 1-3 of a candidate; a not-graded row is one wide cell."""
    if not row["graded"]:
        key = "not run" if row.get("result") == "not run" else "not graded"
        reason = textwrap.fill(f"{key}: {row['not_graded_reason']}", 90)
        return [(reason, key)]
    return [(_stage_text(s), s["result"]) for s in row["grade"]["stages"]]


def plot_stage_table(v: Mapping[str, Any]) -> Figure:
    """The stage table as a figure: candidates x stages, cells coloured by PASS/FAIL/not reached."""
    if "refused" in v:
        raise SkipPlot(f"verdict refused ({v['refused']})")
    rows: Sequence[Mapping[str, Any]] = v["candidates"]
    if not rows:
        raise SkipPlot("no registered candidate")
    widths = [2.3, 2.9, 3.3, 2.9, 1.6]
    header = ["candidate", "Stage 1", "Stage 2", "Stage 3", "result"]
    row_h = 0.95
    note = exploratory_note(v)
    head = 0.85 if note else 0.55  # room for a two-line title
    fig, ax = figure(figsize=(sum(widths) + 0.3, row_h * len(rows) + 0.8 + head), layout=None)
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - head / fig.get_figheight(), bottom=0.02)
    used: set[str] = set()
    ax.set_axis_off()
    edges = np.concatenate([[0.0], np.cumsum(widths)])
    ax.set_xlim(0, edges[-1])
    ax.set_ylim(len(rows) * row_h + 0.45, 0)
    for j, h in enumerate(header):
        ax.text((edges[j] + edges[j + 1]) / 2, 0.22, h, ha="center", va="center",
                fontweight="bold", fontsize=9)  # fmt: skip
    for i, row in enumerate(rows):
        top = 0.45 + i * row_h
        cells: list[tuple[float, float, str, str]] = [
            (edges[0], edges[1], _name(row).replace(" (", "\n("), "label")
        ]
        stage_cells = _cells(row)
        if len(stage_cells) == 1:
            cells.append((edges[1], edges[4], *stage_cells[0]))
        else:
            cells += [(edges[1 + k], edges[2 + k], *c) for k, c in enumerate(stage_cells)]
        result = str(row["result"])
        key = ("PASS" if result in ("PASS", "ADOPTED") else "FAIL" if result.startswith("FAIL")
               else "not run" if result == "not run" else "not graded")  # fmt: skip
        cells.append((edges[4], edges[5], result.replace(" (", "\n("), key))
        for lo, hi, text, key in cells:
            used.add(key)
            face = CELL_COLOURS.get(key, "white")
            ax.add_patch(Rectangle((lo, top), hi - lo, row_h, facecolor=face, edgecolor="white",
                                   lw=2))  # fmt: skip
            bold = key in ("PASS", "FAIL") and hi == edges[5]
            ax.text(lo + 0.08 if key == "label" else (lo + hi) / 2, top + row_h / 2, text,
                    ha="left" if key == "label" else "center", va="center", fontsize=7.5,
                    fontweight="bold" if bold or result == "ADOPTED" and hi == edges[5]
                    else "normal", linespacing=1.25)  # fmt: skip
    legend = [Patch(facecolor=c, edgecolor="#BBBBBB", label=k) for k, c in CELL_COLOURS.items()
              if k in used]  # fmt: skip
    ax.legend(handles=legend, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=4,
              frameon=False, fontsize=7.5, borderaxespad=0.1)  # fmt: skip
    colour = PASS_COLOUR if v["decision"]["outcome"] == "adopted" else FAIL_COLOUR
    title = textwrap.shorten(v["decision"]["sentence"], 110)
    if note:  # the stage results, under the exploratory note: neither adopted nor rejected
        colour = UNDECIDED_COLOUR
        title = f"{note}\n{_stage_results(v['decision'])}"
    fig.suptitle(title, x=0.01, ha="left", fontsize=10, color=colour)
    return fig


def _stage_results(d: Mapping[str, Any]) -> str:
    if d["outcome"] == "adopted":
        return f"stage results: {d['adopted']} is the first candidate to pass all three stages"
    if d["outcome"] == "rejected":
        return "stage results: no candidate passed all three stages"
    return "stage results: not graded yet: " + ", ".join(d.get("ungraded") or [])


#: () -> (metrics table per candidate, registration or None)
TablesLoader = Callable[[], tuple[dict[str, pd.DataFrame], dict[str, Any] | None]]


def write_plots(sweep_dir: Path, v: dict[str, Any], load_tables: TablesLoader) -> str:
    """Draw both ladder plots into ``<sweep_dir>/plots/``; the Markdown section for verdict.md.

    ``load_tables()`` returns each candidate run's metrics and the registration (the verdict's
    own reader, :func:`prereg.ppo.ladder_verdict.load_tables`).
    """

    def curves() -> Figure:
        if "refused" in v:
            raise SkipPlot(f"verdict refused ({v['refused']})")
        tables, reg = load_tables()
        if reg is None:
            raise SkipPlot("no candidate run has a registration.json")
        return plot_curves(v, tables, reg)

    specs: list[PlotSpec] = [
        (CURVES, "Learning curves per candidate, Stage-2 window shaded, gates drawn", curves),
        (STAGES, "Stage table: PASS / FAIL / not reached per candidate and stage",
         lambda: plot_stage_table(v)),
    ]  # fmt: skip
    return plots_section(Path(sweep_dir), specs)
