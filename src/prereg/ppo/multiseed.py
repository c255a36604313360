"""The files of a PPO run that trains several seeds in one program (``ppo.num_seeds`` = N > 1).

The run keeps ONE stacked state (a leading axis of N members, seeds ``ppo.seed`` ..
``ppo.seed+N-1``): its periodic checkpoints and ``checkpoints/final`` hold the stack, so resume
and ``ppo.init_from`` work as for one seed.  Each seed also gets its own files, written as a
single-seed run would write them (settings with ``num_seeds=1`` and ``seed=<s>``), so eval-only
and ``best-state`` treat them like any run's::

    checkpoints/seed_<s>/final   checkpoints/seed_<s>/best   policies/seed_<s>/policy.npz

The registered eval (``logs/evaluation_seed_<start>.json``) pools every member's episodes
(:func:`prereg.ppo.evaluate.summarize_episodes` over the N x n_seeds episodes) and adds
``n_train_seeds`` and ``per_seed`` (each seed's own summary, with its ``train_seed``); the
per-episode CSV gains a ``train_seed`` column.  With N = 1 nothing here changes a file.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SEED_DIR = "seed_{}"
_SEED_DIR = re.compile(r"^seed_(\d+)$")


def num_seeds(settings: dict[str, Any]) -> int:
    """N of a run's (or a checkpoint's) settings; 1 for those written before the key existed."""
    return int(settings["ppo"].get("num_seeds", 1) or 1)


def train_seeds(settings: dict[str, Any]) -> list[int]:
    """The training seeds ``ppo.seed .. ppo.seed+N-1`` of ``settings``."""
    first = int(settings["ppo"]["seed"])
    return list(range(first, first + num_seeds(settings)))


def seed_settings(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """The settings of one member as a single-seed run (``num_seeds=1``, ``seed=<seed>``)."""
    out = copy.deepcopy(settings)
    out["ppo"]["num_seeds"] = 1
    out["ppo"]["seed"] = int(seed)
    return out


def position(state: Any) -> tuple[int, int]:
    """(updates, env_steps) of a state, stacked or not (members move in step)."""
    update = np.asarray(state.update).reshape(-1)[0]
    steps = np.asarray(state.env_steps).reshape(-1)[0]
    return int(update), int(steps)


def member_seed_of(checkpoint: Path) -> int | None:
    """The training seed of a per-seed checkpoint ``.../checkpoints/seed_<s>/<name>``."""
    m = _SEED_DIR.match(checkpoint.parent.name)
    if m is None or checkpoint.parent.parent.name != "checkpoints":
        return None
    return int(m.group(1))


def member_rows(metrics: dict[str, np.ndarray], seeds: list[int]) -> pd.DataFrame:
    """One row per (update, seed) from the vmapped chunk's ``(N, n)`` metric arrays, in
    update order then seed order; ``seed`` is the training seed."""
    frames = []
    for k, seed in enumerate(seeds):
        frame = pd.DataFrame({name: np.asarray(v)[k] for name, v in metrics.items()})
        frame.insert(1, "seed", seed)
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    return rows.sort_values(["update", "seed"], kind="stable", ignore_index=True)


class PerSeedLog:
    """A TensorBoard log that files a multi-seed run's rows per seed (``metrics/seed_<s>/...``),
    so each seed is one curve; everything else goes to the wrapped log."""

    def __init__(self, tb: Any) -> None:
        self.tb = tb

    def log_frame(self, frame: pd.DataFrame, step_column: str, prefix: str = "metrics") -> None:
        for seed, rows in frame.groupby("seed", sort=True):
            self.tb.log_frame(rows.drop(columns="seed"), step_column, f"{prefix}/seed_{seed}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tb, name)


def evaluate_state(
    evaluator: Any, state: Any, seeds: list[int], seed_start: int, n_seeds: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(per-episode rows, summary) of a state's deterministic eval at ``seed_start``.

    One seed: the evaluator's own summary and rows.  A stack of ``len(seeds)`` members: each
    member evaluated on the same episodes, the summary pooled over all of them plus
    ``n_train_seeds`` and ``per_seed`` (each member's summary, with its ``train_seed``), and
    the rows with a ``train_seed`` column.
    """
    from prereg.ppo.evaluate import episodes_to_rows, summarize_episodes
    from prereg.ppo.trainer import member

    if len(seeds) == 1:
        episodes, summary = evaluator(state.params, state.normalizer, seed_start, n_seeds)
        return pd.DataFrame(episodes_to_rows(episodes)), summary
    pooled: dict[str, list[np.ndarray]] = {}
    per_seed, frames = [], []
    for k, seed in enumerate(seeds):
        one = member(state, k)
        episodes, summary = evaluator(one.params, one.normalizer, seed_start, n_seeds)
        per_seed.append({"train_seed": seed, **summary})
        frame = pd.DataFrame(episodes_to_rows(episodes))
        frame.insert(0, "train_seed", seed)
        frames.append(frame)
        for key, values in episodes.items():
            pooled.setdefault(key, []).append(np.asarray(values))
    summary = summarize_episodes({k: np.concatenate(v) for k, v in pooled.items()}, seed_start)
    summary.update(n_train_seeds=len(seeds), per_seed=per_seed)
    return pd.concat(frames, ignore_index=True), summary


def member_states(run_path: Path, seed_start: int, n_seeds: int) -> list[dict[str, Any]]:
    """Every per-seed saved state of a multi-seed run with an eval on the given seeds:
    ``{"run", "state", "checkpoint", "update", "env_steps", "evaluation"}`` for each seed's
    final (its share of the pooled eval's ``per_seed``) and best checkpoint (its meta's eval).
    Empty for a single-seed run."""
    from prereg.core.atomic import read_json

    run_path = Path(run_path)
    pooled = _read(run_path / "logs" / f"evaluation_seed_{seed_start}.json", read_json)
    out: list[dict[str, Any]] = []
    for entry in (pooled or {}).get("per_seed") or []:
        if not isinstance(entry, dict) or entry.get("n_seeds") != n_seeds:
            continue
        seed = entry.get("train_seed")
        final = run_path / "checkpoints" / SEED_DIR.format(seed) / "final"
        meta = (_read(final / "checkpoint.json", read_json) or {}).get("meta") or {}
        out.append(
            {
                "run": str(run_path),
                "state": f"final of seed {seed}",
                "checkpoint": str(final),
                "update": meta.get("update"),
                "env_steps": meta.get("env_steps"),
                "evaluation": entry,
            }
        )
    ckpts = run_path / "checkpoints"
    for path in sorted(ckpts.glob("seed_*/best")) if ckpts.is_dir() else []:
        meta = (_read(path / "checkpoint.json", read_json) or {}).get("meta") or {}
        ev = meta.get("evaluation")
        if isinstance(ev, dict) and (ev.get("seed_start"), ev.get("n_seeds")) == (
            seed_start,
            n_seeds,
        ):
            out.append(
                {
                    "run": str(run_path),
                    "state": f"best of {path.parent.name.replace('_', ' ')}",
                    "checkpoint": str(path),
                    "update": meta.get("update"),
                    "env_steps": meta.get("env_steps"),
                    "evaluation": ev,
                }
            )
    return out


def in_run(run_path: Path, pointer: str | None) -> str | None:
    """A path a run's ``summary.json`` records (relative to the run since prereg 0.1; absolute
    before, or when it lies outside the sweep) as a path to open."""
    return None if not pointer else str(Path(run_path) / pointer)


def _read(path: Path, reader: Any) -> Any:
    try:
        return reader(path)
    except (OSError, ValueError):
        return None
