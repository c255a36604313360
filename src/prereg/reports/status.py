"""Status view of a sweep directory, read from the run directories alone."""

from __future__ import annotations

from pathlib import Path

STATES = ("pending", "running", "completed", "failed", "halted", "skipped")


def format_status(sweep_dir: Path) -> str:
    """Placeholder overview: counts of run.json statuses under ``sweep_dir``."""
    from prereg.reports.rundirs import find_runs

    runs = find_runs([sweep_dir])
    counts = {s: 0 for s in STATES}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    return f"{sweep_dir}: " + ", ".join(f"{v} {k}" for k, v in counts.items())
