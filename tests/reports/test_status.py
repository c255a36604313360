"""``python -m prereg status`` on sweep directories written by hand (no experiment is run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prereg.reports.status import format_status, sweep_status

CAP = "registration.step_cap=20"


def job(arm: str, cell: str) -> list[str]:
    return sorted([f"arm={arm}", f"cell={cell}", CAP])


def write_job(
    sweep: Path,
    overrides: list[str],
    status: str | None,
    reason: str | None = None,
    slurm: dict | None = None,
    record_job: bool = True,
    name: str | None = None,
) -> Path:
    d = sweep / (name or ",".join(sorted(overrides)))
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if status is not None:
        run = {
            "status": status,
            "reason": reason,
            "experiment": "exp9",
            "wall_seconds": 1.5,
            "attempts": 1,
            "attempt_started_at": "2026-01-01T00:00:00+00:00",
            "slurm": slurm or {},
        }
        if record_job:
            run["job"] = {"choices": {"experiment": "exp9"}, "overrides": overrides}
        (d / "run.json").write_text(json.dumps(run))
    return d


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """sweep.json lists 5 jobs: 2 completed, 1 failed, 1 running, 1 pending (no dir yet)."""
    s = tmp_path / "multirun" / "12-00-00"
    jobs = [
        job("baseline", "n4m2"),
        job("primary", "n4m2"),
        job("secondary", "n4m2"),
        job("baseline", "n5m2"),
        job("primary", "n5m2"),
    ]
    s.mkdir(parents=True)
    (s / "sweep.json").write_text(
        json.dumps(
            {
                "runner": "exp9",
                "command_overrides": ["arm=baseline,primary,secondary"],
                "jobs": jobs,
            }
        )
    )

    def array(task: int) -> dict:
        return {"job_id": str(900 + task), "array_job_id": "4242", "array_task_id": str(task)}

    # run.json overrides in command-line order (unsorted) and a dir not named by them
    # (hydra.sweep.subdir=${hydra.job.num}): matching must sort the recorded overrides
    write_job(s, ["cell=n4m2", "arm=baseline", CAP], "completed", slurm=array(0), name="0")
    write_job(s, ["arm=primary", "cell=n4m2", CAP], "completed", slurm=array(1))
    write_job(
        s,
        ["arm=secondary", "cell=n4m2", CAP],
        "failed",
        reason="ValueError: lambda out of range",
        slurm=array(2),
    )
    write_job(s, ["arm=baseline", "cell=n5m2", CAP], "running", slurm=array(3))
    return s


def test_counts_reasons_and_slurm(sweep: Path) -> None:
    data = sweep_status(sweep)
    assert data["expected_jobs"] == 5 and data["total"] == 5
    assert data["counts"] == {
        "pending": 1,
        "running": 1,
        "completed": 2,
        "failed": 1,
        "halted": 0,
        "skipped": 0,
        "requeued": 0,
    }
    by_name = {j["name"]: j for j in data["jobs"]}
    failed = by_name["arm=secondary,cell=n4m2," + CAP]
    assert (failed["status"], failed["reason"]) == ("failed", "ValueError: lambda out of range")
    assert failed["slurm"] == "4242_2"
    assert by_name["arm=primary,cell=n5m2," + CAP]["status"] == "pending"
    assert data["slurm"]["arrays"] == {"4242": "0-3"}

    text = format_status(sweep)
    lines = text.splitlines()
    assert lines[0].endswith("(exp9): 5 jobs listed in sweep.json")
    assert lines[1].strip() == (
        "1 pending, 1 running, 2 completed, 1 failed, 0 halted, 0 skipped, 0 requeued"
    )
    assert "SLURM: ran under array job 4242 (tasks 0-3)" in lines
    row = next(line for line in lines if "arm=secondary" in line)
    assert "failed" in row and "ValueError: lambda out of range" in row and "4242_2" in row
    assert lines[lines.index("pending:") + 1].strip() == "arm=primary,cell=n5m2," + CAP
    assert "arm=baseline,cell=n5m2" in lines[lines.index("running:") + 1]


def test_dir_without_run_json_and_name_fallback(sweep: Path) -> None:
    # the pending job's dir appears (Hydra made it) but run.json is not written yet
    pending = write_job(sweep, job("primary", "n5m2"), None)
    data = sweep_status(sweep)
    assert data["counts"]["pending"] == 1 and data["total"] == 5
    assert any(j["path"] == pending.name for j in data["jobs"])

    # no overrides anywhere (no job in run.json, no overrides.yaml): matched by dir name
    for d in sweep.iterdir():
        if d.is_dir() and d.name != "0":  # "0" is not named by its overrides
            (d / ".hydra" / "overrides.yaml").unlink()
            run = json.loads((d / "run.json").read_text()) if (d / "run.json").exists() else None
            if run:
                run.pop("job")
                (d / "run.json").write_text(json.dumps(run))
    again = sweep_status(sweep)
    assert again["counts"] == data["counts"] and again["total"] == 5
    assert all(j["listed"] for j in again["jobs"])


def test_without_sweep_json_and_with_extra_dirs(sweep: Path) -> None:
    write_job(
        sweep,
        ["arm=primary", "cell=n4m3", CAP],
        "halted",
        reason="P4 check(s) gap out of tolerance at step 5",
    )
    (sweep / "corrupt").mkdir()
    (sweep / "corrupt" / "run.json").write_text("{")
    data = sweep_status(sweep)
    assert data["total"] == 7 and data["counts"]["halted"] == 1
    assert data["counts"]["pending"] == 2  # the listed job with no dir + the corrupt run.json
    assert "2 run directories not listed in sweep.json" in format_status(sweep)
    (sweep / "sweep.json").unlink()
    data = sweep_status(sweep)
    assert data["expected_jobs"] is None and data["total"] == 6
    assert "no sweep.json, 6 run directories found" in format_status(sweep)


def test_cli_text_and_json(sweep: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "prereg", "status", str(sweep), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr  # the sweep is not complete
    data = json.loads(out.stdout)
    assert data["not_done"]["failed"] == ["arm=secondary,cell=n4m2," + CAP]
    assert data["counts"]["completed"] == 2 and data["counts"]["pending"] == 1
    assert {j["reason"] for j in data["jobs"] if j["status"] == "failed"} == {
        "ValueError: lambda out of range"
    }
    from prereg.__main__ import main

    assert main(["status", str(sweep)]) == 1  # incomplete: failed, running, pending jobs


def test_held_runs_name_their_owner_and_only_a_complete_sweep_exits_0(
    sweep: Path, capsys: pytest.CaptureFixture
) -> None:
    from prereg.__main__ import main
    from prereg.core import lease

    running = sweep / ("arm=baseline,cell=n5m2," + CAP)
    unrecorded = sweep / ("arm=primary,cell=n5m2," + CAP)  # its run.json not written yet
    with lease.lease(running), lease.lease(unrecorded):
        data = sweep_status(sweep)
        text = format_status(sweep)
    by_name = {j["name"]: j for j in data["jobs"]}
    me = f"host {lease.platform.node()}, pid {lease.os.getpid()}"
    assert me in by_name[running.name]["owner"] and me in by_name[unrecorded.name]["owner"]
    assert data["counts"]["running"] == 2 and data["counts"]["pending"] == 0
    assert f"{running.name}  held by {me}" in text
    last = text.splitlines()[-1]
    assert last.startswith("incomplete: 3 of 5 jobs did not complete: 1 failed (arm=secondary")
    assert f"2 running elsewhere ({running.name} ({me}" in last

    # released (the owner's process gone, run.json still 'running'): no live owner
    text = format_status(sweep)
    assert "no live owner" in text and "running, no live owner" in text.splitlines()[-1]
    for d in sweep.iterdir():
        if (d / "run.json").exists():
            (d / "run.json").write_text(json.dumps({"status": "completed", "experiment": "exp9"}))
    write_job(sweep, job("primary", "n5m2"), "skipped", reason="an earlier candidate passed")
    capsys.readouterr()
    assert main(["status", str(sweep)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "complete: every job completed (or was skipped)"
    )


def test_the_closing_line_counts_the_sweeps_own_jobs_not_another_commands_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prereg.sweep.callbacks import closing_check

    s = tmp_path / "ladder"
    s.mkdir()
    jobs = [job("baseline", "n4m2"), job("primary", "n4m2")]
    (s / "sweep.json").write_text(json.dumps({"runner": "exp9", "jobs": jobs}))
    for overrides in jobs:
        write_job(s, overrides, "completed")
    # a run another command put in the sweep dir (the ladder's control), not done yet
    write_job(s, ["ladder.control=true"], "failed", reason="RunInterrupted", name="control")
    assert closing_check(s) == 0
    assert capsys.readouterr().out.strip() == "all 2 jobs completed (or were skipped)"
    assert "control" in format_status(s)  # `status` still shows it
    # a listed job that did not complete still fails the sweep; the line counts listed jobs
    write_job(s, job("secondary", "n4m2"), "failed", reason="boom")
    manifest = {"runner": "exp9", "jobs": [*jobs, job("secondary", "n4m2")]}
    (s / "sweep.json").write_text(json.dumps(manifest))
    assert closing_check(s) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: 1 of 3 jobs did not complete: 1 failed (")
    assert "control" not in err
    (s / "sweep.json").unlink()  # no manifest: every run directory found counts, as before
    assert closing_check(s) == 1 and "2 failed" in capsys.readouterr().err
