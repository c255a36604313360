"""Write a sweep's verdict files: ``verdict.json``, ``verdict.md`` and its plots (atomically)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


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


def terminal_text(markdown: str, sweep_dir: Path | str) -> str:
    """A verdict's Markdown for a terminal: its ``## Plots`` section (image links) replaced by
    one line naming the plots folder and ``verdict.md``, which shows them."""
    head, sep, _ = markdown.partition("\n## Plots")
    if not sep:
        return markdown.rstrip("\n")
    plots = Path(sweep_dir) / "plots"
    return f"{head.rstrip()}\n\nPlots: {plots}/ (shown in {Path(sweep_dir) / 'verdict.md'})"
