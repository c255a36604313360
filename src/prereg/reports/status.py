"""``python -m prereg status``: where a sweep stands, read from its run directories alone.

The expected jobs come from ``<sweep dir>/sweep.json`` (written at sweep start).  A run
directory is matched to its job by the sorted overrides recorded in ``run.json``
(``job.overrides``), else in ``.hydra/overrides.yaml``, else by its directory name
(Hydra's ``override_dirname``).  A listed job without a directory, or a directory without
``run.json``, is ``pending``.  Works during a sweep (local or SLURM) and after it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prereg.core import dirnames as resolvers
from prereg.core.lease import current_owner
from prereg.core.rundirs import RunInfo, find_runs
from prereg.reports.compare import (
    Table,
    job_overrides,
    override_key,
    render_text,
    status_reason,
)

STATES = ("pending", "running", "completed", "failed", "halted", "skipped", "requeued")
REASON_WIDTH = 160  # characters of a reason in the text view (--json keeps it all)
LIST_LIMIT = 20  # running/pending jobs listed by name in the text view (the rest counted)


def _read_manifest(sweep_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        return None
    return data


def job_dirname(overrides: list[str]) -> str:
    """The directory Hydra gives a job (override_dirname: sorted, some keys excluded)."""
    kept = sorted(
        o for o in overrides if override_key(o)[0] not in resolvers.dirname_excluded_keys()
    )
    return resolvers.job_dirname(",".join(kept))


def slurm_id(run: dict[str, Any] | None) -> str | None:
    """``ARRAYJOB_TASK`` for an array task, the job id otherwise, None off SLURM."""
    slurm = (run or {}).get("slurm")
    if not isinstance(slurm, dict) or not slurm:
        return None
    if slurm.get("array_job_id") not in (None, ""):
        return f"{slurm['array_job_id']}_{slurm.get('array_task_id', '?')}"
    job = slurm.get("job_id")
    return None if job in (None, "") else str(job)


def _ranges(values: list[str]) -> str:
    """``['0','1','2','5']`` -> ``'0-2,5'`` (non-numeric values listed as they are)."""
    nums = sorted({int(v) for v in values if v.isdigit()})
    out, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    out += sorted({v for v in values if not v.isdigit()})
    return ",".join(out)


def _job_record(
    name: str, overrides: list[str] | None, run: RunInfo | None, sweep_dir: Path
) -> dict[str, Any]:
    if run is None:
        return {
            "name": name,
            "status": "pending",
            "reason": None,
            "overrides": overrides,
            "path": None,
            "wall_seconds": None,
            "attempts": None,
            "started_at": None,
            "ended_at": None,
            "slurm": None,
            "owner": None,
        }
    status, reason = status_reason(run)
    record = run.run or {}
    owner = current_owner(run.path) if status == "running" else None
    try:
        path = os.path.relpath(run.path, sweep_dir)
    except ValueError:
        path = str(run.path)
    return {
        "name": name,
        "status": status,
        "reason": reason,
        "overrides": overrides,
        "path": path,
        "wall_seconds": record.get("wall_seconds"),
        "attempts": record.get("attempts"),
        "started_at": record.get("attempt_started_at") or record.get("started_at"),
        "ended_at": record.get("ended_at"),
        "slurm": slurm_id(run.run),
        "owner": owner.describe() if owner is not None else None,
    }


def sweep_status(sweep_dir: Path) -> dict[str, Any]:
    """Counts and per-job records of a sweep (JSON-serialisable)."""
    sweep_dir = Path(sweep_dir).resolve()
    manifest = _read_manifest(sweep_dir)
    runs = find_runs([sweep_dir])
    expected = [
        sorted(str(o) for o in job)
        for job in (manifest or {}).get("jobs", [])
        if isinstance(job, list)
    ]
    by_key: dict[tuple[str, ...], int] = {}
    by_name: dict[str, int] = {}
    for i, job in enumerate(expected):
        by_key.setdefault(tuple(job), i)
        by_name.setdefault(job_dirname(job), i)
        by_name.setdefault(",".join(job), i)

    matched: dict[int, tuple[RunInfo, list[str] | None]] = {}
    extra: list[tuple[RunInfo, list[str] | None]] = []
    for run in runs:
        overrides = job_overrides(run)
        idx = by_key.get(tuple(sorted(overrides))) if overrides is not None else None
        if idx is None:
            idx = by_name.get(run.path.name)
        if idx is not None and idx not in matched:
            matched[idx] = (run, overrides)
        else:
            extra.append((run, overrides))

    jobs = []
    for i, job in enumerate(expected):
        run, _ = matched.get(i, (None, None))
        name = run.path.name if run is not None else job_dirname(job)
        record = _job_record(name, job, run, sweep_dir)
        if run is None and (owner := current_owner(sweep_dir / name)) is not None:
            record.update(status="running", owner=owner.describe(), path=name)  # not recorded yet
        jobs.append({**record, "listed": True})
    for run, overrides in extra:
        name = os.path.relpath(run.path, sweep_dir) if run.path != sweep_dir else run.path.name
        jobs.append({**_job_record(name, overrides, run, sweep_dir), "listed": False})

    counts = {s: 0 for s in STATES}
    for job in jobs:
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    arrays: dict[str, list[str]] = {}
    plain: list[str] = []
    for job in jobs:
        sid = job["slurm"]
        if sid is None:
            continue
        if "_" in sid:
            array, task = sid.split("_", 1)
            arrays.setdefault(array, []).append(task)
        else:
            plain.append(sid)
    return {
        "sweep_dir": str(sweep_dir),
        "runner": (manifest or {}).get("runner"),
        "manifest": manifest is not None,
        "expected_jobs": len(expected) if manifest is not None else None,
        "total": len(jobs),
        "counts": counts,
        "slurm": {
            "arrays": {a: _ranges(t) for a, t in arrays.items()},
            "job_ids": sorted(set(plain)),
        },
        "verdict": str(sweep_dir / "verdict.md") if (sweep_dir / "verdict.md").exists() else None,
        "jobs": jobs,
    }


def _clip(reason: str | None, width: int = REASON_WIDTH) -> str | None:
    if reason is None or len(reason) <= width:
        return reason
    return reason[: width - 3] + "..."


def _names(jobs: list[dict[str, Any]], extra: str = "") -> list[str]:
    lines = []
    for job in jobs[:LIST_LIMIT]:
        bits = [job["name"]]
        if extra == "running":
            bits.append(
                f"held by {job['owner']}"
                if job["owner"]
                else "no live owner (its process ended unrecorded; run the command again)"
            )
            if job["started_at"] and not job["owner"]:
                bits.append(f"since {job['started_at']}")
        if job["slurm"]:
            bits.append(f"slurm {job['slurm']}")
        lines.append("  " + "  ".join(bits))
    if len(jobs) > LIST_LIMIT:
        lines.append(f"  ... and {len(jobs) - LIST_LIMIT} more")
    return lines


def render_status(data: dict[str, Any]) -> str:
    """The human view of :func:`sweep_status`."""
    head = f"sweep {data['sweep_dir']}"
    if data["runner"]:
        head += f" ({data['runner']})"
    if data["manifest"]:
        head += f": {data['expected_jobs']} jobs listed in sweep.json"
    else:
        head += f": no sweep.json, {data['total']} run directories found"
    lines = [head]
    counts = data["counts"]
    lines.append("  " + ", ".join(f"{counts[s]} {s}" for s in counts))
    unlisted = sum(not j["listed"] for j in data["jobs"])
    if data["manifest"] and unlisted:
        lines.append(
            f"  ({unlisted} run director{'y' if unlisted == 1 else 'ies'} "
            "not listed in sweep.json counted too)"
        )
    slurm = data["slurm"]
    if slurm["arrays"] or slurm["job_ids"]:
        parts = [f"array job {a} (tasks {t})" for a, t in slurm["arrays"].items()]
        if slurm["job_ids"]:
            parts.append("job ids " + ", ".join(slurm["job_ids"]))
        lines.append("SLURM: ran under " + "; ".join(parts))

    jobs = data["jobs"]
    bad = [j for j in jobs if j["status"] in ("failed", "halted", "skipped")]
    if bad:
        show_slurm = any(j["slurm"] for j in bad)
        cols = ["job", "status", "reason"] + (["slurm"] if show_slurm else [])
        rows = [
            [j["name"], j["status"], _clip(j["reason"])] + ([j["slurm"]] if show_slurm else [])
            for j in bad
        ]
        lines.append("failed, halted or skipped:")
        lines += ["  " + line for line in render_text(Table(cols, rows)).splitlines()]
    running = [j for j in jobs if j["status"] == "running"]
    if running:
        lines.append("running:")
        lines += _names(running, "running")
    requeued = [j for j in jobs if j["status"] == "requeued"]
    if requeued:  # stopped while SLURM requeued them: they start again from their checkpoint
        lines.append("requeued (SLURM starts them again; they resume from their checkpoints):")
        lines += _names(requeued)
    pending = [j for j in jobs if j["status"] == "pending"]
    if pending:
        lines.append("pending:")
        lines += _names(pending)
    if data["verdict"]:
        lines.append(f"verdict: {data['verdict']}")
    return "\n".join(lines)


#: statuses of a job that did its part: a sweep of only these is complete (exit status 0)
DONE = ("completed", "skipped")


def not_done(data: dict[str, Any]) -> dict[str, list[str]]:
    """The jobs of :func:`sweep_status` that did not complete, by what they are: ``failed``,
    ``halted``, ``running elsewhere (<owner>)``, ``running`` (no live owner) or ``not run``."""
    groups: dict[str, list[str]] = {}
    for job in data["jobs"]:
        status = job["status"]
        if status in DONE:
            continue
        if status == "pending":
            status = "not run"
        elif status == "running" and job.get("owner"):
            status = "running elsewhere"
            groups.setdefault(status, []).append(f"{job['name']} ({job['owner']})")
            continue
        elif status == "running":
            status = "running, no live owner"
        groups.setdefault(status, []).append(job["name"])
    return groups


def own_jobs(data: dict[str, Any]) -> dict[str, Any]:
    """:func:`sweep_status` narrowed to the jobs its ``sweep.json`` lists (unchanged without
    one): what a sweep's own exit status is about.  A run another command put in the sweep
    directory (the ladder's control, ``hydra.run.dir=<sweep>/control``) is its own command's
    business: ``status`` shows it, the sweep's closing line does not count it."""
    if not data.get("manifest"):
        return data
    jobs = [j for j in data["jobs"] if j.get("listed")]
    return {**data, "jobs": jobs, "total": len(jobs)}


def incomplete_line(data: dict[str, Any]) -> str | None:
    """``N of M jobs did not complete: 1 failed (a), 2 not run (b, c)``; None if all did."""
    groups = not_done(data)
    if not groups:
        return None
    count = sum(len(v) for v in groups.values())
    parts = [f"{len(names)} {what} ({', '.join(names)})" for what, names in groups.items()]
    return f"{count} of {data['total']} jobs did not complete: " + "; ".join(parts)


def format_status(sweep_dir: Path, as_json: bool = False) -> str:
    """Status of a sweep directory as text (or JSON with ``as_json``)."""
    return render(sweep_status(Path(sweep_dir)), as_json)


def render(data: dict[str, Any], as_json: bool = False) -> str:
    """:func:`render_status`'s text (with the incomplete line last) or the JSON of ``data``."""
    if as_json:
        return json.dumps({**data, "not_done": not_done(data)}, indent=2)
    text = render_status(data)
    line = incomplete_line(data)
    return text + (
        f"\nincomplete: {line}" if line else "\ncomplete: every job completed (or was skipped)"
    )
