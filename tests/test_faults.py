"""Faults a real run meets, injected for real and checked from what the user sees.

- SIGTERM, SIGINT and SIGKILL at seeded random points of an exp9 run and a PPO run (a chain:
  kill, check the directory, start the same command again, ...), plus a truncated and a
  byte-flipped newest checkpoint: the finished run equals an uninterrupted one exactly.
- A finished sweep run again changes nothing; a changed registration is refused up front.
- Two sweeps at once sharing one empty JAX compilation cache; a truncated cache entry.
- A disk that fills mid-run, and a read-only output directory: one ``error:`` line.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, run_cli

from prereg.training.checkpoints import is_checkpoint, load_checkpoint

pytestmark = pytest.mark.slow

# exp9: 25 chunks of 0.1-0.15 s on the largest cell and PPO: 12 chunks of 4 updates, so that
# kill points land in start-up, between checkpoints and near the end
EXP9 = ["arm=primary", "cell=n5m3", "registration.step_cap=500", "exp9.chunk_steps=20"]
PPO = [
    "experiment=ppo", "tier=small", "ppo.num_envs=16", "ppo.num_steps=32",
    "ppo.num_minibatches=4", "ppo.update_epochs=8", "ppo.chunk_updates=4", "ppo.eval_every=4",
    "ppo.eval_seeds=8", "ppo.updates=48",
]  # fmt: skip
SWEEP = ["-m", "arm=baseline,primary", "cell=n4m2", "registration.step_cap=30"]
SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGKILL]
STEP_DIR = re.compile(r"^step_(\d+)$")
LEFTOVER = re.compile(r"^\..+\.([a-z0-9_]{8}\.tmp|(tmp|old|del)-[A-Za-z0-9_]+)$")
FAULTS: Counter = Counter()  # kind -> injected, printed at the end of each test


# ----------------------------------------------------------------------------- helpers
def launch(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """``python run.py <args>`` in the background, stdout and stderr to ``log``(.err)."""
    return subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), *args],
        cwd=REPO,
        stdout=open(log, "w"),  # noqa: SIM115 - closed with the process
        stderr=open(log.with_suffix(".err"), "w"),  # noqa: SIM115
        env={**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})},
    )


def periodic_steps(run_dir: Path) -> list[int]:
    ckpts = run_dir / "checkpoints"
    if not ckpts.is_dir():
        return []
    return sorted(int(m.group(1)) for p in ckpts.iterdir() if (m := STEP_DIR.match(p.name)))


def assert_every_file_whole(root: Path, damaged: frozenset[str] = frozenset()) -> list[Path]:
    """Every result file under ``root`` parses completely (but the checkpoints the test
    ``damaged`` itself, until a resume replaces them); returns the temp leftovers."""
    leftovers = []
    for path in sorted(root.rglob("*")):
        if LEFTOVER.match(path.name):
            leftovers.append(path)
            continue
        if any(LEFTOVER.match(part) for part in path.relative_to(root).parts):
            continue  # inside a leftover checkpoint directory
        if "checkpoints" in path.relative_to(root).parts[:-1]:
            if path.parent.name == "checkpoints" and path.name not in damaged:
                assert is_checkpoint(path), f"checkpoint does not verify: {path}"
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            assert len(pd.read_csv(path).columns) > 0, path
        elif path.suffix == ".yaml":
            assert yaml.safe_load(path.read_text()) is not None, path
        elif path.suffix == ".npz":
            with np.load(path) as z:
                [z[k] for k in z.files]
    return leftovers


def assert_no_leftovers(root: Path) -> None:
    left = [p for p in root.rglob("*") if LEFTOVER.match(p.name)]
    assert not left, f"temporary files left: {left}"


@dataclass
class Fault:
    """A signal sent ``delay`` seconds after a point of the process: its ``start``, the
    ``run`` start (its pid in run.json: compile, finite differences, first steps) or its
    ``checkpoints``-th new periodic checkpoint; then optionally damage the newest one."""

    sig: signal.Signals
    after: str  # "start" | "run" | "checkpoint"
    delay: float
    checkpoints: int = 0
    damage: str | None = None  # "truncate" | "flip"


def inject(args: list[str], run_dir: Path, fault: Fault, log: Path, damaged: frozenset[str]) -> str:
    """Start the command, send the fault's signal at its point; the phase the signal hit."""
    target = max(periodic_steps(run_dir), default=0) + fault.checkpoints * _chunk(args)
    proc = launch(args, log)
    deadline = time.monotonic() + 120

    def reached() -> bool:
        if fault.after == "run":
            return (_read_json(run_dir / "run.json") or {}).get("pid") == proc.pid
        return max(periodic_steps(run_dir), default=0) >= target

    while fault.after != "start" and time.monotonic() < deadline and proc.poll() is None:
        if reached():  # run.json is read whole or not at all (atomic writes)
            break
        time.sleep(0.005)
    time.sleep(fault.delay)
    finished_first = proc.poll() is not None
    proc.send_signal(fault.sig)
    rc = proc.wait(timeout=120)
    if finished_first:  # it ended by itself: only a completed run may
        assert rc == 0, (rc, _tail(log))
    record = _read_json(run_dir / "run.json") or {}
    status = record.get("status")
    if finished_first or status == "completed":
        phase = "after the end (not injected)"
        FAULTS["too late (run already finished)"] += 1
    elif record.get("pid") != proc.pid:
        phase = "start-up (before the run started)"
        FAULTS[f"{fault.sig.name} in start-up"] += 1
        # before run.py's first line (Python's own start-up: `site`, slow under load) the
        # default action applies: SIGTERM/SIGUSR2 end it by the signal, SIGINT is Python's own
        # KeyboardInterrupt (exit 1); after it, one line and 128 + signal
        if rc == 1 and fault.sig == signal.SIGINT and "KeyboardInterrupt" in _tail(log):
            FAULTS["SIGINT in Python's own start-up"] += 1
            return phase
        assert rc in (-fault.sig, 128 + fault.sig), (rc, _tail(log))
        if rc == 128 + fault.sig:
            assert _stderr_lines(log) == [_interrupted(fault.sig)], _tail(log)
    else:
        FAULTS[f"{fault.sig.name} in the run"] += 1
        steps = periodic_steps(run_dir)
        phase = f"the run ({f'newest checkpoint step {steps[-1]}' if steps else 'no checkpoint'})"
        if fault.sig == signal.SIGKILL:
            assert rc == -signal.SIGKILL and status == "running", (rc, record)
        else:  # recorded in run.json, and one line for the user, no traceback
            assert status == "failed", record
            assert record["reason"] == f"RunInterrupted: interrupted by signal {fault.sig.name}"
            assert rc == 128 + fault.sig, (rc, _tail(log))
            assert _stderr_lines(log) == [_interrupted(fault.sig)], _tail(log)
    leftovers = assert_every_file_whole(run_dir, damaged)  # hidden; the next start clears them
    return phase + (f", {len(leftovers)} temporary file(s) left" if leftovers else "")


def _interrupted(sig: signal.Signals) -> str:
    return f"error: interrupted by signal {sig.name}; run the same command again to resume"


def _stderr_lines(log: Path) -> list[str]:
    return [line for line in log.with_suffix(".err").read_text().splitlines() if line.strip()]


def _tail(log: Path) -> str:
    return log.with_suffix(".err").read_text()[-2000:]


def _chunk(args: list[str]) -> int:
    for a in args:
        if a.startswith(("exp9.chunk_steps=", "ppo.chunk_updates=")):
            return int(a.split("=")[1])
    raise AssertionError(args)


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def damage_newest(run_dir: Path, how: str) -> tuple[str, str]:
    """Truncate or flip bytes in the newest periodic checkpoint; (its name, the previous)."""
    steps = periodic_steps(run_dir)
    assert len(steps) >= 2, steps
    newest = run_dir / "checkpoints" / f"step_{steps[-1]:08d}"
    npz = newest / "state.npz"
    data = npz.read_bytes()
    if how == "truncate":
        npz.write_bytes(data[: len(data) // 2])
    else:
        flipped = bytearray(data)
        for i in range(len(flipped) // 3, len(flipped) // 3 + 8):
            flipped[i] ^= 0xFF
        npz.write_bytes(bytes(flipped))
    FAULTS["checkpoint " + {"truncate": "truncated", "flip": "bytes flipped"}[how]] += 1
    return newest.name, f"step_{steps[-2]:08d}"


def plan(rng: random.Random, signals: list[signal.Signals], damages: list[str]) -> list[Fault]:
    """Per signal (seeded): a kill in start-up (0.3-1.5 s after start: imports, checks,
    Hydra) or 0-0.2 s after the run starts (compile, finite differences, first chunk), and
    one 0-0.05 s after the 1st or 2nd new checkpoint; damage after the latter."""
    faults = []
    for sig in signals:
        if rng.random() < 0.5:
            faults.append(Fault(sig, "start", round(rng.uniform(0.3, 1.5), 2)))
        else:
            faults.append(Fault(sig, "run", round(rng.uniform(0.0, 0.2), 3)))
        faults.append(
            Fault(sig, "checkpoint", round(rng.uniform(0.0, 0.05), 3), rng.choice([1, 2]))
        )
    rng.shuffle(faults)
    for fault, how in zip([f for f in faults if f.checkpoints], damages, strict=False):
        fault.damage, fault.checkpoints = how, 2  # two new ones: a previous one to fall back on
    return faults


def run_chain(args: list[str], victim: Path, faults: list[Fault], logs: Path) -> str:
    """Inject every fault in turn, then finish the run; all output, for the resume checks."""
    logs.mkdir()
    command = [*args, f"hydra.run.dir={victim}"]
    damaged: list[tuple[str, str]] = []
    for i, fault in enumerate(faults):
        bad = frozenset(name for name, _ in damaged)
        phase = inject(command, victim, fault, logs / f"{i}.log", bad)
        print(f"  fault {i}: {fault.sig.name} at {_point(fault)} -> hit {phase}")
        if fault.after == "checkpoint":
            assert phase.startswith("the run"), phase
        elif fault.after == "run":  # a resumed run near its end may finish inside the delay
            assert phase.startswith(("the run", "after the end")), phase
        if fault.damage:
            damaged.append(damage_newest(victim, fault.damage))
            assert not is_checkpoint(victim / "checkpoints" / damaged[-1][0])
    done = run_cli(*command)
    assert done.returncode == 0, done.stderr[-3000:]
    (logs / "final.log").write_text(done.stdout + done.stderr)
    text = (
        "".join(
            (logs / f"{i}{suffix}").read_text()
            for i in range(len(faults))
            for suffix in (".log", ".err")
        )
        + (logs / "final.log").read_text()
    )
    for bad, previous in damaged:
        skip = re.search(
            rf"skipping unusable checkpoint: checkpoint \S+/{bad}: state\.npz fails its sha256",
            text,
        )
        assert skip, f"the damaged {bad} was not reported as skipped"
        assert re.search(rf"resuming \S+ from {previous} ", text[skip.end() :]), previous
    assert_no_leftovers(victim)
    return text


def _point(fault: Fault) -> str:
    after = {"start": "start", "run": "the run started"}.get(
        fault.after, f"the {fault.checkpoints}. new checkpoint"
    )
    extra = f", then {fault.damage} the newest" if fault.damage else ""
    return f"{fault.delay:.3g} s after {after}{extra}"


def assert_checkpoints_equal(a: Path, b: Path) -> None:
    fa, _ = load_checkpoint(a)
    fb, _ = load_checkpoint(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)


def file_states(root: Path) -> dict[str, tuple[str, int]]:
    """``{relative path: (sha256, mtime_ns)}`` of every file under ``root``."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def results(sweep: Path) -> dict[str, object]:
    """What a sweep computed: every run's metrics, diagnostics and summary, and the verdict."""
    out: dict[str, object] = {}
    for run in sorted(p for p in sweep.iterdir() if (p / "run.json").exists()):
        assert json.loads((run / "run.json").read_text())["status"] == "completed"
        out[f"{run.name}/metrics"] = pd.read_csv(run / "metrics.csv").to_dict("list")
        out[f"{run.name}/diagnostics"] = pd.read_csv(run / "diagnostics.csv").to_dict("list")
        summary = json.loads((run / "summary.json").read_text())
        summary.pop("compute_seconds")
        out[f"{run.name}/summary"] = summary
    verdict = json.loads((sweep / "verdict.json").read_text())
    verdict.pop("sweep_dir")
    out["verdict"] = verdict
    return out


# -------------------------------------------------------------------------- references
@pytest.fixture(scope="module")
def exp9_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exp9") / "reference"
    proc = run_cli(*EXP9, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def ppo_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ppo") / "reference"
    proc = run_cli(*PPO, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "sweep"
    proc = run_cli(*SWEEP, f"hydra.sweep.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


# ------------------------------------------------------------------------ interruption
def test_exp9_killed_at_random_points_and_with_damaged_checkpoints_ends_exactly(
    exp9_reference, tmp_path
):
    FAULTS.clear()
    faults = plan(random.Random(6), SIGNALS, ["truncate", "flip"])
    victim = tmp_path / "victim"
    print(f"\nexp9: {len(faults)} faults")
    run_chain(EXP9, victim, faults, tmp_path / "logs")
    record = json.loads((victim / "run.json").read_text())
    assert record["status"] == "completed" and record["attempts"] >= 2
    for name in ("metrics.csv", "diagnostics.csv"):
        a, b = pd.read_csv(exp9_reference / name), pd.read_csv(victim / name)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    for name in ("summary.json", "fd_check.json"):
        a, b = _read_json(exp9_reference / name), _read_json(victim / name)
        a.pop("compute_seconds", None), b.pop("compute_seconds", None)
        assert a == b, name
    print(f"exp9 faults injected: {dict(FAULTS)}; final results identical to the reference")


def test_ppo_killed_at_random_points_and_with_damaged_checkpoints_ends_exactly(
    ppo_reference, tmp_path
):
    FAULTS.clear()
    rng = random.Random(3)
    sigs = rng.sample(SIGNALS, 3)  # one kill per signal: PPO's start-up is the slow part
    faults = [
        Fault(sigs[0], "checkpoint", round(rng.uniform(0.0, 0.05), 3), 2, "truncate"),
        Fault(sigs[1], "run", round(rng.uniform(0.0, 0.2), 3)),
        Fault(sigs[2], "checkpoint", round(rng.uniform(0.0, 0.05), 3), 2, "flip"),
    ]
    victim = tmp_path / "victim"
    print(f"\nPPO: {len(faults)} faults")
    run_chain(PPO, victim, faults, tmp_path / "logs")
    assert json.loads((victim / "run.json").read_text())["status"] == "completed"
    a = pd.read_csv(ppo_reference / "metrics.csv").drop(columns="sps")
    b = pd.read_csv(victim / "metrics.csv").drop(columns="sps")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for name in ("final", "best"):
        assert_checkpoints_equal(
            ppo_reference / "checkpoints" / name, victim / "checkpoints" / name
        )
    ev = "logs/evaluation_seed_10000.json"
    assert _read_json(ppo_reference / ev) == _read_json(victim / ev)
    sa, sb = _read_json(ppo_reference / "summary.json"), _read_json(victim / "summary.json")
    for key in ("updates", "env_steps", "segment", "final", "evaluation", "hparams"):
        assert sa[key] == sb[key], key
    print(f"PPO faults injected: {dict(FAULTS)}; final results identical to the reference")


# ------------------------------------------------------------ re-runs and registrations
def test_a_finished_sweep_run_again_changes_nothing_and_redoes_nothing(finished_sweep):
    before = file_states(finished_sweep)
    logs = {p: p.read_bytes() for p in finished_sweep.rglob("run.log")}
    proc = run_cli(*SWEEP, f"hydra.sweep.dir={finished_sweep}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = file_states(finished_sweep)
    assert after.keys() == before.keys()
    for path, (digest, mtime) in before.items():
        name = Path(path)
        if name.name == "run.log":  # the log says "already completed", appended
            assert (finished_sweep / name).read_bytes().startswith(logs[finished_sweep / name])
            continue
        assert after[path][0] == digest, f"{path} changed"
        # Hydra rewrites its own records (same bytes) before every job
        rewritten = ".hydra" in name.parts or name.name == "multirun.yaml"
        if not rewritten:
            assert after[path][1] == mtime, f"{path} was rewritten"
    for run in (p for p in finished_sweep.iterdir() if (p / "run.json").exists()):
        assert json.loads((run / "run.json").read_text())["attempts"] == 1
    assert (proc.stdout + proc.stderr).count("already completed; not redone") == 2


def test_a_changed_registration_is_refused_naming_the_constant_and_writes_nothing(
    finished_sweep, exp9_reference
):
    for args, where in [
        ([*SWEEP, f"hydra.sweep.dir={finished_sweep}"], finished_sweep),
        ([*EXP9, f"hydra.run.dir={exp9_reference}"], exp9_reference),
    ]:
        before = file_states(where)
        proc = run_cli(*args, "registration.lr=0.02")
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: registration: {where} holds ")
        assert "differs in lr (0.01 -> 0.02); use a new output directory" in lines[0]
        assert file_states(where) == before


# ------------------------------------------------------------------ concurrent sweeps
def assert_same_results(a: Path, b: Path) -> None:
    """Two sweep dirs computed the same: every run's files, exactly, and the verdict."""
    runs = sorted(p.name for p in a.iterdir() if (p / "run.json").exists())
    assert runs and runs == sorted(p.name for p in b.iterdir() if (p / "run.json").exists())
    for run in runs:
        for x in (a, b):
            assert json.loads((x / run / "run.json").read_text())["status"] == "completed"
        for name in ("metrics.csv", "diagnostics.csv"):
            pd.testing.assert_frame_equal(
                pd.read_csv(a / run / name), pd.read_csv(b / run / name), check_exact=True
            )
        sa, sb = _read_json(a / run / "summary.json"), _read_json(b / run / "summary.json")
        sa.pop("compute_seconds"), sb.pop("compute_seconds")
        assert sa == sb, run
    va, vb = _read_json(a / "verdict.json"), _read_json(b / "verdict.json")
    va.pop("sweep_dir"), vb.pop("sweep_dir")
    assert va == vb


def cache_entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*-cache"))


def decompresses(entry: Path) -> bool:
    from jax._src.compilation_cache import decompress_executable

    try:
        decompress_executable(entry.read_bytes())
    except Exception:  # noqa: BLE001 - a truncated entry
        return False
    return True


@pytest.fixture(scope="module")
def concurrent_sweeps(tmp_path_factory) -> Path:
    """Two sweeps started together, sharing one fresh, empty compilation cache."""
    root = tmp_path_factory.mktemp("concurrent")
    env = {"PREREG_JAX_CACHE": str(root / "cache")}
    procs = {
        name: launch([*SWEEP, f"hydra.sweep.dir={root / name}"], root / f"{name}.log", env)
        for name in ("a", "b")
    }
    for name, proc in procs.items():
        assert proc.wait(timeout=600) == 0, (root / f"{name}.err").read_text()[-3000:]
    return root


def test_two_sweeps_at_once_share_a_cache_without_interfering(concurrent_sweeps, finished_sweep):
    root = concurrent_sweeps
    for name in ("a", "b"):
        assert_same_results(finished_sweep, root / name)  # = the sweep run on its own
        for suffix in (".log", ".err"):
            text = (root / f"{name}{suffix}").read_text()
            assert "compilation cache" not in text and "is damaged" not in text
    entries = cache_entries(root / "cache")
    assert entries and all(decompresses(e) for e in entries)
    assert_no_leftovers(root / "cache")


def test_a_truncated_cache_entry_is_compiled_again_and_repaired(concurrent_sweeps, tmp_path):
    cache = concurrent_sweeps / "cache"
    for entry in cache_entries(cache):  # as a process killed mid-write used to leave them
        entry.write_bytes(entry.read_bytes()[:100])
    run = "arm=primary,cell=n4m2,registration.step_cap=30"
    out = tmp_path / "run"
    proc = run_cli(
        "arm=primary",
        "cell=n4m2",
        "registration.step_cap=30",
        f"hydra.run.dir={out}",
        env={"PREREG_JAX_CACHE": str(cache)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert "Error reading persistent compilation cache" not in text  # JAX's warning
    assert "is damaged; it is compiled again" in text
    repaired = [e for e in cache_entries(cache) if decompresses(e)]
    assert repaired, "no damaged entry was written again"
    for name in ("metrics.csv", "diagnostics.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(concurrent_sweeps / "a" / run / name),
            pd.read_csv(out / name),
            check_exact=True,
        )


# ------------------------------------------------------------- full and read-only disks
@pytest.fixture
def mount_tmpfs(tmp_path):
    """``mount_tmpfs(name, options)`` -> a fresh tmpfs under tmp_path; unmounted after."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        try:
            r = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                capture_output=True,
                text=True,
            )
            problem = (r.stderr.strip() or f"exit status {r.returncode}") if r.returncode else None
        except OSError as exc:
            problem = str(exc)
        if problem:
            reason = f"cannot mount a tmpfs (needs root): {problem}"
            print(reason)
            pytest.skip(reason)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=False)


def assert_one_error_line(proc: subprocess.CompletedProcess, expected: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.fullmatch(expected, lines[0]), proc.stderr


def test_a_disk_that_fills_mid_sweep_stops_it_with_one_line_and_no_half_written_file(
    mount_tmpfs,
):
    full = mount_tmpfs("full", "size=96k")
    sweep = full / "sweep"
    proc = run_cli(  # one job after another: the second never starts (the pool runs both)
        "-m", "arm=baseline,primary", "cell=n5m3", "registration.step_cap=400",
        "exp9.chunk_steps=40", f"hydra.sweep.dir={sweep}", "hydra/launcher=basic",
    )  # fmt: skip
    first = sweep / "arm=baseline,cell=n5m3,registration.step_cap=400"
    assert_one_error_line(
        proc, rf"error: cannot write to {re.escape(str(first))}/\S+: No space left on device"
    )
    assert_every_file_whole(full)
    assert_no_leftovers(full)
    record = json.loads((first / "run.json").read_text())
    assert record["status"] == "failed" and "No space left on device" in record["reason"]
    assert not (sweep / "arm=primary,cell=n5m3,registration.step_cap=400").exists()  # stopped
    assert not (sweep / "verdict.json").exists()


def test_a_disk_that_fills_mid_pool_sweep_stops_it_with_one_line(mount_tmpfs):
    """The pool's worker hands the full disk back to the sweep process, which stops the other
    worker's job and prints the same one line (no worker traceback)."""
    full = mount_tmpfs("full", "size=96k")
    sweep = full / "sweep"
    proc = run_cli(
        "-m", "arm=baseline,primary", "cell=n5m3", "registration.step_cap=400",
        "exp9.chunk_steps=40", f"hydra.sweep.dir={sweep}", "hydra/launcher=pool",
        "hydra.launcher.workers=2",
    )  # fmt: skip
    assert_one_error_line(
        proc, rf"error: cannot write to {re.escape(str(sweep))}/arm=\S+: No space left on device"
    )
    assert_every_file_whole(full)
    assert_no_leftovers(full)
    assert not (sweep / "verdict.json").exists()


def test_a_read_only_output_directory_is_one_line_before_any_compute(mount_tmpfs):
    ro = mount_tmpfs("ro", "ro,size=1m")
    for args in (
        ["arm=primary", "cell=n4m2", f"hydra.run.dir={ro / 'run'}"],
        ["-m", "arm=baseline,primary", "cell=n4m2", f"hydra.sweep.dir={ro / 'sweep'}"],
    ):
        proc = run_cli(*args)
        where = re.escape(str(ro / ("sweep" if args[0] == "-m" else "run")))
        assert_one_error_line(proc, rf"error: cannot write to {where}: Read-only file system")
        assert not list(ro.iterdir())
