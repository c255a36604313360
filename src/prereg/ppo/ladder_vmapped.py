"""``ladder.mode=vmapped``: every Path-B candidate (x ``ppo.num_seeds``) in ONE jitted program.

``python run.py experiment=ppo_ladder ladder.mode=vmapped`` is a single job.  The candidates
differ only in the knobs a candidate may change (lr, value_coef, entropy_coef, clip_range),
which the trainer takes as traced values (:class:`prereg.ppo.trainer.Hypers`), so one vmapped
program trains them all: member ``c * S + s`` is candidate ``c`` (registered order, then the
control with ``ladder.control=true``) at training seed ``ppo.seed + s``; every candidate gets
the seeds a separate run of it would use, so member ``c`` follows that run to float tolerance.

Files.  The job's own directory (the *program*) holds the stacked state's periodic checkpoints
(a killed job resumes from them), every member's rows in ``metrics.csv`` (columns
``candidate`` and ``seed``), ``summary.json`` and the verdict (``verdict.md``/``.json``,
``plots/``).  Each candidate gets the run directory a ladder sweep gives it,
``<job dir>/candidate=<name>/``, with the files a separate run writes: ``run.json`` (its own
status), ``registration.json``, ``metrics.csv``, ``checkpoints/best`` and ``final`` (per seed
when S > 1), both stage evaluations, ``policies/`` and ``summary.json`` with its grade, so
``verdict``, ``compare``, ``best-state`` and eval-only treat it like any ladder run.  Its
``sps`` column is the program's aggregate rate.

A candidate whose figures go non-finite fails alone (its rows end before that update, its
``run.json`` says why) while the others train on, as in a sweep.  Sequential mode's early stop
cannot apply (every candidate trains at once); the verdict says so.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from prereg.core.atomic import atomic_write_csv, atomic_write_json
from prereg.core.checks import typed_registration
from prereg.core.errors import ConfigError
from prereg.core.registration import registration_hash, to_plain
from prereg.core.rundir import RunDir, record_failure, record_interrupted
from prereg.core.signals import RunInterrupted
from prereg.ppo import ladder_runner
from prereg.ppo import runner as ppo_runner
from prereg.ppo.candidates import CONTROL, apply_candidate, registered_names
from prereg.ppo.config import PPORegistration
from prereg.ppo.multiseed import position
from prereg.training import tensorboard_log
from prereg.training.loop import Chunk, ChunkedStudy, Stop, train_in_chunks
from prereg.training.nonfinite import (
    NonFiniteError,
    first_nonfinite,
    nonfinite_error,
    nonfinite_leaf,
)

log = logging.getLogger("prereg.ppo")

CANDIDATE_DIR = "candidate={}"


@dataclass
class Member:
    """One candidate of the program: its config, run directory and per-run bookkeeping."""

    name: str
    cfg: DictConfig  #: the job's config with ``candidate=<name>`` applied
    rd: RunDir
    view: Any  #: a :class:`prereg.ppo.runner._PPOTraining` over this candidate's members
    failed: str | None = None  #: why it stopped (non-finite), else None
    failed_at: int | None = None  #: the update that went non-finite

    @property
    def metrics_path(self) -> Path:
        return self.rd.path / "metrics.csv"


def member_names(cfg: DictConfig, reg: dict[str, Any]) -> list[str]:
    """The program's candidates: registered order, then the control if asked for."""
    return [*registered_names(reg), *([CONTROL] if bool(cfg.ladder.control) else [])]


def candidate_cfg(cfg: DictConfig, name: str) -> DictConfig:
    """The job's config as a separate ladder job of candidate ``name`` would have it."""
    return apply_candidate(OmegaConf.merge(cfg, {"candidate": {"name": name}}))  # type: ignore[arg-type]


class _Program(ChunkedStudy):
    """The stacked state of every member, plugged into the shared chunk loop; after each chunk
    each candidate's own files (metrics, periodic eval, best) are written by its view."""

    index, checked, first_index = "update", (), 1  # non-finite is checked per candidate
    steps_per_call = 1  # a signal stops the program, checkpointed, at the update it lands in

    def __init__(self, cfg: DictConfig, rd: RunDir, members: list[Member], s: int) -> None:
        from prereg.ppo.trainer import Hypers

        self.p, self.rd, self.members, self.s = cfg.ppo, rd, members, s
        self.chunk_size, self.checkpoint_every = ppo_runner.chunking(self.p)
        self.settings = ppo_runner.ppo_settings(cfg)  # the default hparams: Hypers vary them
        self.settings["ppo"]["num_seeds"] = len(members) * s
        self.trainer = ppo_runner.build(self.settings).trainer
        self.seeds = [int(self.p.seed) + k for k in range(s)] * len(members)
        self.hypers = Hypers(
            *(
                np.repeat(np.asarray([m.cfg.ppo[f] for m in members], np.float32), s)
                for f in Hypers._fields
            )
        )
        self.labels = [m.name for m in members for _ in range(s)]
        self.columns = ["update", "candidate", "seed", *ppo_runner.METRIC_COLUMNS[1:]]
        self.batch = int(self.p.num_envs) * int(self.p.num_steps) * len(self.seeds)
        self.progress: ppo_runner.Progress | None = None

    # -- state
    def start(self) -> Any:
        state = self.trainer.init_members(self.seeds)
        for i, m in enumerate(self.members):
            m.view.segment = m.view.new_segment(self.part(state, i))
        return self._begin(state)

    def restore(self, flat: dict[str, Any], meta: dict[str, Any]) -> Any:
        held = list(meta["member_order"])  # (JSON sorts the keys of "members")
        if held != [m.name for m in self.members]:
            raise ConfigError(
                "ladder.control",
                f"{self.rd.path} holds a program of {', '.join(held)}; resume it with the same "
                "ladder.control, or use a new output directory",
            )
        for m in self.members:
            m.view.segment = meta["members"][m.name]
            m.failed, m.failed_at = (meta.get("failed") or {}).get(m.name) or (None, None)
        return self._begin(self.trainer.restore(flat))

    def _begin(self, state: Any) -> Any:
        for m in self.members:  # the program reports progress, not each candidate
            m.view.progress = ppo_runner.Progress("off", 0, 0, m.name)
        name = self.rd.path.name
        self.progress = ppo_runner.Progress(
            str(self.p.progress), self.target(), self.position(state), name
        )
        return state

    def part(self, state: Any, i: int) -> Any:
        """Candidate ``i``'s members: one state (S = 1) or a stack of S."""
        import jax

        s = self.s
        if s == 1:
            return jax.tree_util.tree_map(lambda x: x[i], state)
        return jax.tree_util.tree_map(lambda x: x[i * s : (i + 1) * s], state)

    def position(self, state: Any) -> int:
        return position(state)[0]

    def target(self) -> int:
        return int(self.p.updates)

    # -- training
    def run_chunk(self, state: Any, k: int) -> Chunk:
        tic = time.perf_counter()
        state, met = self.trainer.run_chunk(state, k, self.hypers)
        elapsed = time.perf_counter() - tic
        frames = []
        for j, (name, seed) in enumerate(zip(self.labels, self.seeds, strict=True)):
            cols = {c: np.asarray(met[c])[j] for c in ppo_runner.METRIC_COLUMNS if c != "sps"}
            frame = pd.DataFrame(cols)
            frame.insert(1, "candidate", name)
            frame.insert(2, "seed", seed)
            frames.append(frame)
        rows = pd.concat(frames, ignore_index=True)
        rows = rows.sort_values("update", kind="stable", ignore_index=True)  # members in order
        rows["update"] = rows["update"].astype(int)
        rows["sps"] = k * self.batch / elapsed
        return Chunk(state, rows)

    def check(self, chunk: Chunk) -> Stop | None:
        """A candidate whose rows or state went non-finite fails alone (the others go on)."""
        for i, m in enumerate(self.members):
            if m.failed is not None:
                continue
            rows = chunk.rows[chunk.rows["candidate"] == m.name]
            quantities = {c: rows[c] for c in ppo_runner.FINITE_COLUMNS}
            bad = first_nonfinite(rows["update"].to_numpy(), quantities)
            if bad is None:
                sub = self.part(chunk.state, i)
                for prefix, tree in (("params/", sub.params), ("normalizer/", sub.normalizer)):
                    if (leaf := nonfinite_leaf(tree, prefix)) is not None:
                        bad = (self.position(chunk.state), leaf)
                        break
            if bad is not None:
                m.failed = str(nonfinite_error(*bad, self.rd.path / "checkpoints"))
                m.failed_at = bad[0]
                log.error("%s: candidate %s failed: %s", self.rd.path.name, m.name, m.failed)
        if all(m.failed is not None for m in self.members):  # nothing left to train
            return Stop(
                self.position(chunk.state), NonFiniteError("every candidate went non-finite")
            )
        return None

    def after_chunk(self, state: Any, rows: pd.DataFrame) -> None:
        """Each live candidate's metrics.csv, periodic eval and best checkpoint; progress."""
        self.write_member_metrics()
        for i, m in enumerate(self.members):
            if m.failed is None:
                mine = rows[rows["candidate"] == m.name].drop(columns="candidate")
                m.view.after_chunk(self.part(state, i), mine[list(m.view.columns)])
        assert self.progress is not None
        last = rows[rows["update"] == rows["update"].iloc[-1]]
        self.progress.update(
            self.position(state),
            len(rows) // len(self.seeds),
            last.mean(numeric_only=True).to_dict(),
        )

    def write_member_metrics(self) -> dict[str, pd.DataFrame]:
        """Every candidate's ``metrics.csv``: its rows of the program's (a failed one's end
        before the update that went non-finite)."""
        frame = pd.read_csv(self.rd.path / "metrics.csv")
        out = {}
        for m in self.members:
            mine = frame[frame["candidate"] == m.name].drop(columns="candidate")
            if m.failed_at is not None:
                mine = mine[mine["update"] < m.failed_at]
            mine = mine.reset_index(drop=True)[list(m.view.columns)]
            atomic_write_csv(m.metrics_path, mine)
            out[m.name] = mine
        return out

    def trees(self, state: Any) -> dict[str, Any]:
        return {}  # checked per candidate in :meth:`check`

    def meta(self, state: Any) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "member_order": [m.name for m in self.members],
            "members": {m.name: m.view.segment for m in self.members},
            "failed": {m.name: [m.failed, m.failed_at] for m in self.members if m.failed},
            "update": position(state)[0],
            "env_steps": position(state)[1],
        }

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


def _members(
    cfg: DictConfig, rd: RunDir, reg: dict[str, Any], stack: contextlib.ExitStack
) -> list[Member]:
    """Each candidate's config, run directory (claimed like a sweep job's) and view."""
    record = rd.read() or {}
    job = record.get("job") or {"choices": {}, "overrides": []}
    out = []
    for name in member_names(cfg, reg):
        c_cfg = candidate_cfg(cfg, name)
        c_rd = RunDir(rd.path / CANDIDATE_DIR.format(name))
        c_rd.update(
            job={
                "choices": {**job.get("choices", {}), "candidate": name},
                "overrides": [*job.get("overrides", []), f"candidate={name}"],
            },
            **{k: record[k] for k in ("exploratory",) if k in record},
        )
        built = ppo_runner.build(ppo_runner.ppo_settings(c_cfg))
        tb = stack.enter_context(tensorboard_log.for_run(c_cfg, c_rd.path))
        view = ppo_runner._PPOTraining(c_cfg, c_rd, built, tb)
        out.append(Member(name, c_cfg, c_rd, view))
    for m in out[1:]:  # the knobs do not enter the eval: one evaluator, compiled once
        m.view.built.evaluator = out[0].view.built.evaluator
    return out


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The ``ppo_ladder`` job: with ``ladder.mode=vmapped`` every candidate in one program
    (:func:`train_all`), else one candidate (:func:`prereg.ppo.ladder_runner.run`)."""
    if cfg.ladder.mode != "vmapped":
        return ladder_runner.run(cfg, run_dir)
    return ppo_runner.run_ppo(cfg, run_dir, "ppo_ladder", train_all)


def train_all(cfg: DictConfig, rd: RunDir) -> dict[str, Any]:
    """The vmapped ladder job's body: train every member, then write each candidate's end
    files and grade, then the verdict (see the module docstring)."""
    from prereg.core.atomic import read_json
    from prereg.ppo.ladder_verdict import LADDER, compute_verdict, write_verdict
    from prereg.training.jaxcache import enable_compilation_cache

    enable_compilation_cache()
    reg = to_plain(typed_registration(cfg, PPORegistration))
    reg_hash = registration_hash(reg)
    tic = time.perf_counter()
    with contextlib.ExitStack() as stack:
        members = _members(cfg, rd, reg, stack)
        todo = [m for m in members if (m.rd.read() or {}).get("status") != "completed"]
        for m in todo:
            atomic_write_json(m.rd.path / "registration.json", reg)
            m.rd.start(LADDER, reg["name"], reg_hash)
        program = _Program(cfg, rd, members, int(cfg.ppo.num_seeds))
        try:
            tb = stack.enter_context(tensorboard_log.for_run(cfg, rd.path))
            try:
                state, metrics = train_in_chunks(program, rd.path, tb)
            finally:
                program.close()
            per_member = program.write_member_metrics()
            for i, m in enumerate(members):
                if m not in todo:
                    continue
                if m.failed is not None:
                    record_failure(m.rd, NonFiniteError(m.failed), time.perf_counter() - tic)
                    continue
                summary = ppo_runner.finish_training(
                    m.cfg, m.rd, m.view, program.part(state, i), per_member[m.name]
                )
                summary["program"] = ".."  # the job that trained it, relative to this run
                ladder_runner.grade_and_record(m.cfg, m.rd, summary)
                m.rd.finish("completed", None, time.perf_counter() - tic)
        except RunInterrupted as exc:  # the program has checkpointed the interrupted update
            try:
                exc.hand_on()  # first: submitit's SIGUSR2 handler requeues (then SystemExit)
            finally:
                for m in todo:
                    if (m.rd.read() or {}).get("status") == "running":
                        record_interrupted(m.rd, exc, time.perf_counter() - tic)
            raise
        except BaseException as exc:
            for m in todo:
                if (m.rd.read() or {}).get("status") == "running":
                    own = NonFiniteError(m.failed) if m.failed is not None else exc
                    record_failure(m.rd, own, time.perf_counter() - tic)
            raise
    write_verdict(rd.path)
    verdict = compute_verdict(rd.path)
    summary = {
        "experiment": LADDER,
        "ladder_mode": "vmapped",
        "candidates": {
            m.name: {
                "run": CANDIDATE_DIR.format(m.name),
                "status": (m.rd.read() or {}).get("status"),
                "grade": (read_json(m.rd.path / "summary.json") or {}).get("grade"),
            }
            for m in members
        },
        "members": len(program.seeds),
        "train_seeds": sorted(set(program.seeds)),
        "updates": int(metrics["update"].max()),
        "env_steps": int(metrics["env_steps"].max()) * len(program.seeds),
        "mean_sps": float(metrics["sps"].mean()),
        "device": ppo_runner.device_used(),
        "verdict": verdict["decision"]["sentence"],
        "verdict_file": "verdict.md",
    }
    atomic_write_json(rd.path / "summary.json", summary)
    failed = [m.name for m in members if m.failed is not None]
    if failed:  # the job did not do all it was asked: it fails (exit 1), the verdict written
        raise NonFiniteError(
            f"{len(failed)} of {len(members)} candidates went non-finite ({', '.join(failed)}; "
            f"their run.json says where); the others are graded in {rd.path / 'verdict.md'}"
        )
    return summary
