"""Recompute whichever verdict a sweep directory calls for, from disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prereg.core.rundirs import find_runs
from prereg.sweep.callbacks import verdict_function


def sweep_experiment(sweep_dir: Path) -> str | None:
    """The experiment recorded by the runs of a sweep (the first run.json that names one)."""
    for run in find_runs([sweep_dir]):
        exp = (run.run or {}).get("experiment")
        if exp:
            return exp
    return None


def write_any_verdict(sweep_dir: Path) -> str:
    """Write verdict.json/verdict.md for the sweep's experiment and return the markdown."""
    exp = sweep_experiment(sweep_dir)
    writer = verdict_function(exp or "")
    if writer is None:
        return f"{sweep_dir}: no verdict for experiment {exp!r} (no run.json naming one found)"
    return writer(sweep_dir)


def write_verdict_files(
    sweep_dir: Path,
    compute: Callable[[Path], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    plots: Callable[[Path, dict[str, Any]], str] | None = None,
) -> str:
    """``compute`` the verdict, write ``verdict.json`` and ``render``'s ``verdict.md``; the text.

    ``plots`` (optional) draws the verdict's PNGs into the sweep dir and returns the Markdown
    appended to ``verdict.md``; if it raises, a note replaces the plots and the verdict stands.
    """
    from prereg.core.atomic import atomic_write_json, atomic_write_text

    sweep_dir = Path(sweep_dir)
    v = compute(sweep_dir)
    text = render(v)
    if plots is not None:
        try:
            section = plots(sweep_dir, v)
        except Exception as exc:  # noqa: BLE001 - plots must never break the verdict
            section = f"## Plots\n\n*Plots not drawn* — {type(exc).__name__}: {exc}\n"
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    atomic_write_json(sweep_dir / "verdict.json", v)
    atomic_write_text(sweep_dir / "verdict.md", text)
    return text
