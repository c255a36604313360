"""Shared plumbing for the verdict plots: one style, safe atomic PNG writes.

Figures are ``matplotlib.figure.Figure`` objects made directly, never through pyplot, so
importing or drawing selects no backend and opens no window (nothing global is changed).

A verdict's plots live in ``<sweep dir>/plots/``; :func:`plots_section` draws each one
independently and returns the Markdown appended to ``verdict.md`` (an image link per PNG, or a
note saying why a plot was skipped).  A plot that cannot be drawn never breaks the verdict.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import matplotlib
from matplotlib import ticker
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PLOTS_DIR = "plots"
DPI = 110
#: Result colours shared by every plot (colour-blind safe: Okabe-Ito).
PASS_COLOUR, FAIL_COLOUR, NEUTRAL_COLOUR = "#009E73", "#D55E00", "#BBBBBB"
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


class SkipPlot(Exception):
    """Raised by a plot function when its inputs are not there (the message says what)."""


def figure(
    nrows: int = 1,
    ncols: int = 1,
    layout: Literal["constrained", "compressed", "tight"] | None = "constrained",
    **kwargs: Any,
) -> tuple[Figure, Any]:
    """A figure and its axes (like ``plt.subplots``, in the shared style, without pyplot).

    ``layout=None`` (then place with ``subplots_adjust``) is several times faster to save than
    the default constrained layout for figures with many log axes.
    """
    figsize = kwargs.pop("figsize", None)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=figsize, layout=layout)
        return fig, fig.subplots(nrows, ncols, **kwargs)


def styled(ax: Axes) -> Axes:
    """Apply the shared style to axes made outside :func:`figure` (grid, no top/right spines)."""
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


class PowerOfTenFormatter(ticker.LogFormatter):
    """Log-axis labels in plain Unicode, no mathtext (much faster to draw).

    Plain decimals (0.02, 0.1, 50) when the whole view lies in [1e-3, 1e4], else powers of ten
    (10⁻⁵, 2×10⁻⁵), so the labels of one axis always share one style.
    """

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        if min(vmin, vmax) >= 1e-3 and max(vmin, vmax) <= 1e4:
            return f"{x:g}"
        exponent = math.floor(math.log10(x) + 1e-9)
        coeff = x / 10.0**exponent
        power = "10" + str(exponent).translate(_SUPERSCRIPT)
        return power if abs(coeff - 1) < 1e-6 else f"{coeff:.2g}×{power}"


def log_y(ax: Axes) -> Axes:
    """A log y axis: decades labelled, and the 2s and 5s too when it spans <= 2 decades."""
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))  # fewer ticks: faster, calmer
    ax.yaxis.set_major_formatter(PowerOfTenFormatter())
    ax.yaxis.set_minor_formatter(PowerOfTenFormatter(labelOnlyBase=False, minor_thresholds=(2, 2)))
    return ax


def save_png(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically (unchanged bytes are not rewritten)."""
    from prereg.core.atomic import atomic_write_bytes

    buf = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, dpi=DPI, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path


PlotSpec = tuple[str, str, Callable[[], "Figure"]]
"""(file name in ``plots/``, caption, a function drawing the figure or raising)."""


def plots_section(sweep_dir: Path, specs: Sequence[PlotSpec]) -> str:
    """Draw each spec into ``<sweep_dir>/plots/`` and return the ``## Plots`` Markdown.

    A spec that raises is skipped with a one-line note (and any stale PNG of that name is
    removed, so ``verdict.md`` never shows a plot from an earlier verdict).
    """
    lines = ["## Plots", ""]
    for name, caption, draw in specs:
        path = Path(sweep_dir) / PLOTS_DIR / name
        try:
            save_png(draw(), path)
        except Exception as exc:  # noqa: BLE001 - a plot must never break the verdict
            path.unlink(missing_ok=True)
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            kind = "" if isinstance(exc, SkipPlot) else f"{type(exc).__name__}: "
            lines += [f"- {caption}: *not drawn* — {kind}{why}", ""]
            continue
        lines += [f"![{caption}]({PLOTS_DIR}/{name})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def log_safe(values: Sequence[float | None]) -> list[float]:
    """Values for a log axis: None, non-finite or non-positive become NaN (not drawn)."""
    out = []
    for x in values:
        ok = x is not None and x == x and 0 < x < float("inf")
        out.append(float(x) if ok and x is not None else float("nan"))
    return out


#: Result colours for text (titles): PASS, FAIL, and a dark grey for incomplete/undecided.
UNDECIDED_COLOUR = "#555555"


def exploratory_note(v: Any, width: int = 120) -> str | None:
    """``exploratory: not the registered set-up (tier small, 3 updates)`` for a verdict dict
    whose ``exploratory.is`` is true (shortened to ``width``), None for a registered one."""
    import textwrap

    e = (v.get("exploratory") if isinstance(v, dict) else None) or {}
    if not e.get("is"):
        return None
    text = f"exploratory: not the registered set-up ({e.get('why') or 'see verdict.md'})"
    return textwrap.shorten(text, width, placeholder=" ...)")


def titled(title: str, v: Any) -> str:
    """A figure title with the verdict's exploratory note as its first line (if any)."""
    note = exploratory_note(v)
    return title if note is None else f"{note}\n{title}"


def result_colour(result: str) -> str:
    """Title colour of a gate result: PASS green, FAIL/NOT red, anything else (incomplete) grey."""
    if result.startswith(("PASS", "verified", "ADOPTED", "Adopted")):
        return PASS_COLOUR
    if result.startswith(("FAIL", "NOT")):
        return FAIL_COLOUR
    return UNDECIDED_COLOUR


def dodge(points: Sequence[tuple[float, float]], tol: tuple[float, float], step: float = 9.0
          ) -> list[float]:  # fmt: skip
    """Horizontal offsets (points) that spread markers drawn at (nearly) the same place.

    Points within ``tol`` (x, y data units) of the first of a cluster share it; a cluster of k
    markers gets offsets ``step * (i - (k - 1) / 2)``, a lone marker 0.
    """
    clusters: list[list[int]] = []
    for i, (x, y) in enumerate(points):
        for cluster in clusters:
            x0, y0 = points[cluster[0]]
            if abs(x - x0) <= tol[0] and abs(y - y0) <= tol[1]:
                cluster.append(i)
                break
        else:
            clusters.append([i])
    out = [0.0] * len(points)
    for cluster in clusters:
        for k, i in enumerate(cluster):
            out[i] = step * (k - (len(cluster) - 1) / 2)
    return out
