"""Find and read run directories: the one reader every report, verdict and CLI uses.

A run directory is any directory holding ``run.json`` (or Hydra's ``.hydra/`` for a job
that has not written one yet).  Missing or unreadable files are reported as missing,
never as a crash, so half-finished sweeps and results copied back from a cluster work.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class RunInfo:
    """What a run directory says about itself (each part None when its file is missing)."""

    path: Path
    run: dict[str, Any] | None
    summary: dict[str, Any] | None = None
    job: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """run.json status, or ``pending`` for a job directory without run.json yet."""
        return (self.run or {}).get("status") or "pending"

    @property
    def reason(self) -> str | None:
        return (self.run or {}).get("reason")

    @property
    def registration_hash(self) -> str | None:
        return (self.run or {}).get("registration_hash")

    @property
    def choices(self) -> dict[str, str]:
        """Hydra's config-group choices of this job (arm, cell, tier, ...)."""
        return dict(self.job.get("choices") or {})

    @property
    def overrides(self) -> list[str]:
        return list(self.job.get("overrides") or [])

    def read_json(self, name: str) -> Any:
        return _read(self.path / name)


def load_run(path: Path) -> RunInfo:
    """Read one run directory (run.json, summary.json)."""
    run = _read(path / "run.json")
    if not isinstance(run, dict):  # valid JSON but not an object counts as unreadable
        run = None
    job = (run or {}).get("job")
    return RunInfo(
        path=path,
        run=run,
        summary=_read(path / "summary.json"),
        job=job if isinstance(job, dict) else {},
    )


def _is_run_dir(path: Path) -> bool:
    return (path / "run.json").is_file() or (path / ".hydra").is_dir()


def _nested_runs(run: Path) -> list[Path]:
    """Run directories directly inside a run directory (a vmapped ladder job's candidates)."""
    return [c.resolve() for c in sorted(run.iterdir()) if c.is_dir() and (c / "run.json").is_file()]


def find_runs(paths: list[str | Path], max_depth: int = 3) -> list[RunInfo]:
    """Run directories under each path (a run dir, a sweep dir, or a glob), sorted by path;
    a run directory's own run directories too (``ladder.mode=vmapped``'s candidates)."""
    found: dict[Path, None] = {}
    for raw in paths:
        matches = [Path(p) for p in glob.glob(str(raw))] or [Path(raw)]
        for root in matches:
            if not root.is_dir():
                continue
            if _is_run_dir(root):
                found[root.resolve()] = None
                found.update(dict.fromkeys(_nested_runs(root)))
                continue
            frontier = [root]
            for _ in range(max_depth):
                nxt = []
                for d in frontier:
                    for child in sorted(p for p in d.iterdir() if p.is_dir()):
                        if child.name.startswith("."):
                            continue
                        if _is_run_dir(child):
                            found[child.resolve()] = None
                            found.update(dict.fromkeys(_nested_runs(child)))
                        else:
                            nxt.append(child)
                frontier = nxt
    return [load_run(p) for p in sorted(found)]


def by_registration(runs: list[RunInfo]) -> dict[str | None, list[RunInfo]]:
    """Runs grouped by the registration hash in their run.json (None: not started yet)."""
    groups: dict[str | None, list[RunInfo]] = {}
    for r in runs:
        groups.setdefault(r.registration_hash, []).append(r)
    return groups


def flatten(data: Any, prefix: str = "", lists: bool = False) -> dict[str, Any]:
    """Scalar leaves of nested dicts with dotted keys; lists skipped (or indexed if ``lists``)."""
    out: dict[str, Any] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            if not node and key:
                out[key] = {}
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            if lists:
                if not node:
                    out[key] = []
                for i, v in enumerate(node):
                    walk(v, f"{key}.{i}" if key else str(i))
        else:
            out[key] = node

    walk(data, prefix)
    return out


# ------------------------------------------------------------------------------ what a folder is
def is_sweep_dir(path: Path) -> bool:
    """A sweep directory: it has ``sweep.json``, or an immediate child is a run directory."""
    path = Path(path)
    if (path / "sweep.json").is_file():
        return True
    try:
        children = [c for c in path.iterdir() if c.is_dir() and not c.name.startswith(".")]
    except OSError:
        return False
    return any(_is_run_dir(c) for c in children)


def folder_kind(path: str | Path) -> str | None:
    """``"run"``, ``"sweep"`` or None (a folder holding no prereg sweep or run itself)."""
    path = Path(path)
    if not path.is_dir():
        return None
    if _is_run_dir(path):
        return "run"
    return "sweep" if is_sweep_dir(path) else None


def sweep_dirs_under(path: str | Path, max_depth: int = 4, limit: int = 50) -> list[Path]:
    """Sweep directories below ``path`` (breadth first, not below a sweep, at most ``limit``)."""
    found: list[Path] = []
    frontier = [Path(path)]
    for _ in range(max_depth):
        nxt = []
        for d in frontier:
            try:
                children = sorted(c for c in d.iterdir() if c.is_dir())
            except OSError:
                continue
            for child in children:
                if child.name.startswith(".") or _is_run_dir(child):
                    continue
                if is_sweep_dir(child):
                    found.append(child)
                    if len(found) >= limit:
                        return found
                else:
                    nxt.append(child)
        frontier = nxt
    return found


def not_a_sweep_message(arg: str, path: str | Path, shown: int = 4) -> str | None:
    """None when ``path`` is a sweep or run directory; else the one-line refusal (no prefix).

    ``<arg>: <path> holds no prereg sweep or run (hint: the sweep dirs under it are A, B, ...)``
    """
    if folder_kind(path) is not None:
        return None
    path = Path(path)
    if not path.is_dir():
        return f"{arg}: {path} is not a directory"
    sweeps = sweep_dirs_under(path)
    if not sweeps:
        hint = "no run.json or sweep.json found under it"
    else:
        names = [str(s) for s in sweeps[:shown]]
        more = len(sweeps) - shown
        if more > 0:
            total = f"{len(sweeps)}+" if len(sweeps) >= 50 else str(len(sweeps))
            names.append(f"... ({total} in all)")
        what = "the sweep dir under it is" if len(sweeps) == 1 else "the sweep dirs under it are"
        hint = f"hint: {what} {', '.join(names)}"
    return f"{arg}: {path} holds no prereg sweep or run ({hint})"
