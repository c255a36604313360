"""``logger=wandb`` (offline): the same figures as metrics.csv, and a resumed run keeps its id.

The offline run files (``<run_dir>/wandb/offline-run-*/run-<id>.wandb``) are read back
record by record (:func:`wandb_records`): W&B's LevelDB-style log of ``Record`` protobufs.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli, sibling_module

from prereg.training import loggers
from prereg.training.wandb_log import run_id

tb = sibling_module(__file__, "test_tensorboard")  # the same small PPO run and crash helper
OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
BLOCK, HEADER = 32768, 7  # LevelDB log: 32 KiB blocks; crc32, length, type before each record


def wandb_records(path: Path) -> list:
    """Every ``Record`` of one ``.wandb`` file, in order (a truncated last record is skipped)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pos, parts = [], 7, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block trailer: zero padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        parts += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4) and pos <= len(data):  # FULL or LAST: a whole record
            record = pb.Record()
            record.ParseFromString(parts)
            out.append(record)
        if kind in (0, 1, 4):
            parts = b""
    return out


def offline_runs(run_dir: Path) -> list[tuple[object, list[dict]]]:
    """``(run record, history rows)`` of each offline W&B run under ``run_dir``, oldest first."""
    runs = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        records = wandb_records(path)
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        history = [
            {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            for r in records
            if r.WhichOneof("record_type") == "history"
        ]
        runs.append((run, history))
    return runs


def series(history: list[dict], key: str) -> list[tuple[int, float]]:
    return [(row["step"], row[key]) for row in history if key in row]


def assert_matches_csv(history: list[dict], metrics: pd.DataFrame) -> None:
    """Every metrics.csv column at every update, exactly (W&B keeps float64)."""
    for col in tb.PPO_METRICS:
        points = dict(series(history, f"metrics/{col}"))
        assert sorted(points) == metrics["update"].tolist(), col
        np.testing.assert_array_equal(
            [points[u] for u in metrics["update"]], metrics[col].to_numpy(float), err_msg=col
        )


@pytest.mark.slow
def test_ppo_streams_metrics_and_evals_and_a_resumed_run_continues_the_same_id(tmp_path):
    out = tmp_path / "ppo"
    proc = run_cli(*tb.PPO, "logger=wandb", f"hydra.run.dir={out}", env=OFFLINE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ((run, history),) = offline_runs(out)
    assert run.run_id == run_id(out) and run.display_name == "ppo" and run.job_type == "ppo"
    config = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in run.config.update}
    record = json.loads((out / "run.json").read_text())
    assert config["registration_hash"] == record["registration_hash"]
    assert config["logger"] == {"name": "wandb"} and config["ppo"]["updates"] == 4
    metrics = pd.read_csv(out / "metrics.csv")
    assert_matches_csv(history, metrics)
    final = json.loads((out / "logs" / "evaluation_seed_10000.json").read_text())
    for name in tb.EVAL:
        steps, values = zip(*series(history, f"eval/{name}"), strict=True)
        assert steps == (2, 4)
        assert values[-1] == final[name], name

    # killed after logging its last chunk, before checkpointing it: resumes from update 2
    tb.crash_after_logging(out, "step_00000004")
    proc = run_cli(*tb.PPO, "logger=wandb", f"hydra.run.dir={out}", env=OFFLINE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (first, _), (second, resumed) = offline_runs(out)
    assert first.run_id == second.run_id == run_id(out)  # one W&B run: `wandb sync` merges
    assert sorted({row["step"] for row in resumed}) == [3, 4]  # what the resume recomputed
    merged = pd.read_csv(out / "metrics.csv")
    for col in (c for c in tb.PPO_METRICS if c != "sps"):  # same values again (sps is timing)
        again = dict(series(resumed, f"metrics/{col}"))
        np.testing.assert_array_equal([again[u] for u in (3, 4)], merged[col].iloc[2:], col)


def test_logger_wandb_without_wandb_is_refused_in_one_line_before_any_job(monkeypatch, capsys):
    from prereg.core.registration import CONF_DIR
    from prereg.sweep import precheck
    from prereg.sweep.app import setup

    setup()
    monkeypatch.setitem(loggers.OPTIONAL_MODULES, "wandb", "wandb_is_not_installed_here")
    status, plan = precheck.check(["experiment=ppo", "logger=wandb"], CONF_DIR)
    assert (status, plan) == (2, None)
    assert capsys.readouterr().err == (
        "error: logger: wandb is not installed: pip install -e '.[wandb]', or use another "
        "(allowed: none, tensorboard)\n"
    )


def test_the_run_id_is_the_job_directorys(tmp_path):
    job = tmp_path / "sweep" / "arm=primary,cell=n4m2"
    assert run_id(job) == run_id(tmp_path / "sweep" / "." / "arm=primary,cell=n4m2")
    assert run_id(job) != run_id(tmp_path / "sweep" / "arm=baseline,cell=n4m2")
    assert len(run_id(job)) == 16 and run_id(job).isalnum()


def test_rows_in_any_order_keep_their_steps(tmp_path, monkeypatch):
    """exp9's order: a chunk's metrics rows, then its diagnostics at earlier steps."""
    from prereg.training.wandb_log import WandbLog

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    kwargs = {"project": "prereg", "dir": str(tmp_path), "id": run_id(tmp_path), "name": "t"}
    with WandbLog(kwargs) as log:
        log.log_frame(pd.DataFrame({"step": [0, 1, 2, 3], "kl": [4.0, 3.0, 2.0, 1.0]}), "step")
        log.log_frame(pd.DataFrame({"step": [0, 2], "gap": [0.5, 0.25]}), "step", "diagnostics")
        log.log_values({"success_rate": 0.5, "note": "text"}, 3, "eval")
    import wandb

    wandb.teardown()  # in-process: wait until W&B's service has written the file (as at exit)
    ((run, history),) = offline_runs(tmp_path)
    assert run.run_id == run_id(tmp_path)
    assert series(history, "metrics/kl") == [(0, 4.0), (1, 3.0), (2, 2.0), (3, 1.0)]
    assert series(history, "diagnostics/gap") == [(0, 0.5), (2, 0.25)]
    assert series(history, "eval/success_rate") == [(3, 0.5)]
    assert not any("eval/note" in row for row in history)  # numbers only
