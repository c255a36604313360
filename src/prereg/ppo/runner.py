"""PPO runner: train (or continue, or resume) one PPO run and write the run-directory contract.

I/O only; the maths is in :mod:`prereg.ppo.trainer`, the chunk loop (resume, ``metrics.csv``,
non-finite check, TensorBoard, periodic checkpoints) in :mod:`prereg.training.loop`.  Training
runs in jitted chunks of ``ppo.chunk_updates`` updates; after each chunk this runner adds the
periodic eval (keeping ``checkpoints/best``) and reports progress.  At the end it writes
``checkpoints/final``, the registered eval (``logs/evaluation_seed_<start>.json`` + a
per-episode CSV), the exported policy in ``policies/`` and ``summary.json``, whose paths are
relative to the run directory (a sweep copied elsewhere still points into itself).  With
``ppo.num_seeds`` > 1 the seeds train as one stacked state; :mod:`prereg.ppo.multiseed` says
which files each seed gets.

Why one file of ~580 lines: train, the ladder's registered evals and eval-only share the build,
the eval and the file placement of one run directory; the per-seed bookkeeping, device choice
and chunk loop already live in their own modules.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from prereg.core.atomic import atomic_write_csv, atomic_write_json
from prereg.core.checks import typed_registration
from prereg.core.registration import registration_hash, to_plain
from prereg.core.rundir import RunDir, guarded_run, run_registered
from prereg.ppo.candidates import KNOBS, apply_candidate, candidate_name
from prereg.ppo.config import PPORegistration
from prereg.ppo.multiseed import (
    SEED_DIR,
    PerSeedLog,
    evaluate_state,
    member_rows,
    member_seed_of,
    position,
    seed_settings,
    train_seeds,
)
from prereg.training import checkpoints as ck
from prereg.training import tensorboard_log
from prereg.training.loop import Chunk, ChunkedStudy, train_in_chunks

log = logging.getLogger("prereg.ppo")

METRIC_COLUMNS = [
    "update", "env_steps", "mean_reward", "episode_return", "success_rate", "entropy",
    "log_std", "value_loss", "policy_loss", "approx_kl", "clipfrac", "explained_variance", "sps",
]  # fmt: skip
FINITE_COLUMNS = ("mean_reward", "entropy", "log_std", "value_loss", "policy_loss")


@dataclass
class Built:
    """Everything needed to train and evaluate one PPO configuration."""

    trainer: Any
    evaluator: Any
    settings: dict[str, Any]


def ppo_settings(cfg: DictConfig) -> dict[str, Any]:
    """The plain settings that define a trainer; stored in checkpoints to rebuild it."""
    p = cfg.ppo
    return {
        "ppo": OmegaConf.to_container(p, resolve=True),
        "tier": cfg.tier.name,
        "hidden": list(cfg.tier.hidden),
        "env_id": cfg.env.id,
    }


def chunking(p: DictConfig) -> tuple[int, int | None]:
    """The chunk loop's ``chunk_size`` and ``checkpoint_every`` (None: a checkpoint after every
    chunk) from ``cfg.ppo``, for a separate run and the vmapped ladder alike."""
    every = p.checkpoint_every
    return int(p.chunk_updates), None if every is None else int(every)


def build(settings: dict[str, Any]) -> Built:
    """Construct the trainer and the deterministic evaluator for ``settings``."""
    from prereg.ppo.evaluate import Evaluator
    from prereg.ppo.trainer import make_trainer, trainer_config

    p = settings["ppo"]
    pcfg = trainer_config(p, settings["tier"])  # keys newer than a checkpoint: their defaults
    if p["backend"] == "gymnasium":
        from prereg.ppo.gym_backend import make_gym_trainer

        kwargs = (
            {"mixed_lambda": float(p["mixed_lambda"])}
            if settings["env_id"].startswith("prereg/")
            else {}
        )
        trainer = make_gym_trainer(settings["env_id"], pcfg, **kwargs)
        evaluator = getattr(trainer, "evaluator", None)
        return Built(trainer, evaluator, settings)
    from prereg.ppo.env import MesaDockFuncEnv
    from prereg.ppo.env.mesadock import DEFAULT_PARAMS

    env = MesaDockFuncEnv()
    env_params = DEFAULT_PARAMS.replace(mixed_lambda=float(p["mixed_lambda"]))
    evaluator = Evaluator(env, env_params, obs_clip=pcfg.obs_clip)
    return Built(make_trainer(env, env_params, pcfg), evaluator, settings)


def evaluate(built: Built, state: Any, seed_start: int, n_seeds: int) -> tuple[pd.DataFrame, dict]:
    """(per-episode rows, summary) of ``state``'s deterministic eval; pooled over the members
    of a multi-seed state (:func:`prereg.ppo.multiseed.evaluate_state`)."""
    if built.evaluator is None:
        raise RuntimeError(f"no deterministic evaluator for env {built.settings['env_id']}")
    seeds = train_seeds(built.settings)
    return evaluate_state(built.evaluator, state, seeds, seed_start, n_seeds)


def write_eval(run_dir: Path, built: Built, state: Any, seed_start: int, n_seeds: int) -> dict:
    """Deterministic eval -> ``logs/evaluation_seed_<start>.json`` and its per-episode CSV."""
    rows, summary = evaluate(built, state, seed_start, n_seeds)
    logs = run_dir / "logs"
    atomic_write_json(logs / f"evaluation_seed_{seed_start}.json", summary)
    atomic_write_csv(logs / f"evaluation_seed_{seed_start}_episodes.csv", rows)
    return summary


def relative(path: Path | None, run_dir: Path) -> str | None:
    """``path`` relative to ``run_dir`` (as ``summary.json`` records it), else absolute."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(Path(run_dir).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def in_run(path: str | None, run_dir: Path) -> Path | None:
    """A path read from a summary: relative ones are under ``run_dir``, absolute ones kept."""
    return None if path is None else Path(run_dir) / path


class Progress:
    """A tqdm bar on a terminal; one log line per chunk otherwise (SLURM, CI, pipes)."""

    def __init__(self, mode: str, total: int, done: int, name: str) -> None:
        self.bar = None
        self.name = name
        self.total = total
        use_bar = mode == "bar" or (mode == "auto" and sys.stderr.isatty())
        self.quiet = mode == "off"
        if use_bar and not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="upd", desc=name, dynamic_ncols=True)

    def update(self, done: int, n: int, row: dict[str, float]) -> None:
        text = (
            f"env_steps={int(row['env_steps']):,} success={row['success_rate']:.3f} "
            f"entropy={row['entropy']:.3f} value_loss={row['value_loss']:.3g} "
            f"sps={row['sps']:,.0f}"
        )
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix_str(text, refresh=False)
        elif not self.quiet:
            log.info("%s: update %d/%d %s", self.name, done, self.total, text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train (or resume, or skip if completed) one PPO run in ``run_dir``; returns its summary."""
    return run_ppo(cfg, run_dir, "ppo", train)


def run_ppo(
    cfg: DictConfig,
    run_dir: Path,
    experiment: str,
    body: Callable[[DictConfig, RunDir], dict[str, Any]],
) -> dict[str, Any]:
    """The run-dir life of a PPO-trained run: candidate applied, registration checked, guarded.

    ``body(cfg, rd)`` does the work (:func:`train`, or the ladder's train + grade); a run
    already completed in ``run_dir`` is not redone.
    """
    from prereg.training.device import select_device

    cfg = apply_candidate(cfg)
    reg = to_plain(typed_registration(cfg, PPORegistration))
    select_device(str(cfg.ppo.device))  # before any compute: ppo.device=gpu without one refuses
    return run_registered(
        run_dir, experiment, reg, registration_hash(reg), lambda rd: body(cfg, rd)
    )


class _PPOTraining(ChunkedStudy):
    """One PPO segment's maths and figures, plugged into the shared chunk loop: periodic eval
    (``checkpoints/best``) and progress after each chunk; checkpoint meta with the segment."""

    index, columns, checked, first_index = "update", METRIC_COLUMNS, FINITE_COLUMNS, 1
    steps_per_call = 1  # a signal stops the run, checkpointed, at the update it lands in

    def __init__(self, cfg: DictConfig, rd: RunDir, built: Built, tb: Any) -> None:
        self.p, self.built, self.trainer, self.tb = cfg.ppo, built, built.trainer, tb
        self.chunk_size, self.checkpoint_every = chunking(self.p)
        self.log = log
        self.seeds = train_seeds(built.settings)
        self.many = len(self.seeds) > 1  # rows per (update, seed); a stacked state
        if self.many:
            self.columns = [METRIC_COLUMNS[0], "seed", *METRIC_COLUMNS[1:]]
        # env steps of one update of every member (sps is the program's aggregate rate)
        self.batch = int(self.p.num_envs) * int(self.p.num_steps) * len(self.seeds)
        self.ckpt_dir, self.name = rd.path / "checkpoints", rd.path.name
        self.segment: dict[str, Any] = {}
        self.progress: Progress | None = None

    def start(self) -> Any:
        """A new segment: from ``ppo.init_from`` (env steps counted on) or from scratch."""
        p = self.p
        if p.init_from:
            flat, _ = ck.load_checkpoint(p.init_from)
            state = self.trainer.restore(flat)
            origin = str(Path(p.init_from).resolve())
            log.info("new segment from %s (update %d)", origin, position(state)[0])
        else:
            state = self.trainer.init(int(p.seed))
            origin = None
        self.segment = self.new_segment(state, origin)
        return self._begin(state)

    def new_segment(self, state: Any, origin: str | None = None) -> dict[str, Any]:
        """The record of a segment starting at ``state`` (``origin``: its ``init_from``)."""
        update, env_steps = position(state)
        n = len(self.seeds)
        return {
            "init_from": origin,
            "start_update": update,
            "start_env_steps": env_steps,
            "target_update": update + int(self.p.updates),
            "best_success_rate": [None] * n if self.many else None,  # per seed when many
            "best_update": [None] * n if self.many else None,
        }

    def restore(self, flat: dict[str, Any], meta: dict[str, Any]) -> Any:
        self.segment = meta["segment"]
        return self._begin(self.trainer.restore(flat))

    def _begin(self, state: Any) -> Any:
        self.progress = Progress(str(self.p.progress), self.target(), position(state)[0], self.name)
        return state

    def position(self, state: Any) -> int:
        return position(state)[0]

    def target(self) -> int:
        return int(self.segment["target_update"])

    def run_chunk(self, state: Any, k: int) -> Chunk:
        tic = time.perf_counter()
        state, met = self.trainer.run_chunk(state, k)
        elapsed = time.perf_counter() - tic
        met = {c: met[c] for c in METRIC_COLUMNS if c != "sps"}
        frame = member_rows(met, self.seeds) if self.many else pd.DataFrame(met)
        frame["update"] = frame["update"].astype(int)
        frame["sps"] = k * self.batch / elapsed
        return Chunk(state, frame)

    def trees(self, state: Any) -> dict[str, Any]:
        return {"params/": state.params, "normalizer/": state.normalizer}

    def after_chunk(self, state: Any, rows: pd.DataFrame) -> None:
        """The periodic eval (keeping ``checkpoints/best``), then progress."""
        from prereg.ppo.evaluate import SUMMARY_FIELDS

        p, done = self.p, position(state)[0]
        k = len(rows) // len(self.seeds)
        every = int(p.eval_every)
        if self.built.evaluator is not None and (
            done // every > (done - k) // every or done == self.target()
        ):
            _, ev = evaluate(self.built, state, int(p.eval_seed_start), int(p.eval_seeds))
            self.tb.log_values({f: ev[f] for f in SUMMARY_FIELDS}, done, "eval")
            if int(p.video_every) > 0 and (
                (done // every) % int(p.video_every) == 0 or done == self.target()
            ):
                self._record_videos(state, done)
            if self.many:
                self._keep_best_members(state, ev["per_seed"], done)
            else:
                best = self.segment["best_success_rate"]
                if best is None or ev["success_rate"] > best:
                    self.segment["best_success_rate"] = ev["success_rate"]
                    self.segment["best_update"] = done
                    ck.save_checkpoint(self.ckpt_dir / "best", state, self.meta(state, ev))
        assert self.progress is not None
        last = rows[rows["update"] == rows["update"].iloc[-1]]
        self.progress.update(done, k, last.mean(numeric_only=True).to_dict())

    def _record_videos(self, state: Any, done: int) -> None:
        """``ppo.video_every``: one deterministic episode (seed ``ppo.eval_seed_start``) of the
        policy at update ``done``, as ``videos/[seed_<s>/]policy_update_<done>_seed_<start>_x1
        .mp4`` beside that policy's export (changes no result; see ``prereg video``)."""
        from prereg.ppo.trainer import member
        from prereg.ppo.video import record_video

        folder = self.ckpt_dir.parent / "videos"
        members = (
            [(folder / SEED_DIR.format(s), member(state, i)) for i, s in enumerate(self.seeds)]
            if self.many
            else [(folder, state)]
        )
        for where, one in members:
            policy = export_run_policy(
                self.built.settings, one.params, one.normalizer, where / f"policy_update_{done:08d}"
            )
            out, _ = record_video(policy, seed_start=int(self.p.eval_seed_start), episodes=1)
            self.log.info("update %d: video %s", done, out)

    def _keep_best_members(self, state: Any, per_seed: list[dict], done: int) -> None:
        """Each seed's ``checkpoints/seed_<s>/best``: its member at its best periodic eval."""
        seg = self.segment
        for i, ev in enumerate(per_seed):
            best = seg["best_success_rate"][i]
            if best is None or ev["success_rate"] > best:
                seg["best_success_rate"][i], seg["best_update"][i] = ev["success_rate"], done
                self.save_member(
                    state, i, "best", {k: v for k, v in ev.items() if k != "train_seed"}
                )

    def save_member(self, state: Any, i: int, name: str, evaluation: dict | None = None) -> Path:
        """Member ``i`` as a single-seed checkpoint ``checkpoints/seed_<s>/<name>``."""
        from prereg.ppo.trainer import member

        seed = self.seeds[i]
        one = member(state, i)
        seg = dict(self.segment)
        seg.update(best_success_rate=seg["best_success_rate"][i], best_update=seg["best_update"][i])
        meta = {**self.meta(one, evaluation), "segment": seg}
        meta["settings"] = seed_settings(self.built.settings, seed)
        return ck.save_checkpoint(self.ckpt_dir / SEED_DIR.format(seed) / name, one, meta)

    def meta(self, state: Any, evaluation: dict | None = None) -> dict[str, Any]:
        return {
            "settings": self.built.settings,
            "segment": dict(self.segment),
            "update": position(state)[0],
            "env_steps": position(state)[1],
            "evaluation": evaluation,
        }

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


def train(cfg: DictConfig, rd: RunDir) -> dict[str, Any]:
    """Train one segment with :func:`prereg.training.loop.train_in_chunks`, then write
    ``checkpoints/final``, the registered eval, the exported policy and ``summary.json``."""
    from prereg.training.jaxcache import enable_compilation_cache

    enable_compilation_cache()
    built = build(ppo_settings(cfg))
    with tensorboard_log.for_run(cfg, rd.path) as tb:  # logger=tensorboard (else a no-op)
        study = _PPOTraining(cfg, rd, built, tb)
        try:
            log_to = PerSeedLog(tb) if study.many else tb  # one curve per seed
            state, metrics = train_in_chunks(study, rd.path, log_to)
        finally:
            study.close()
    return finish_training(cfg, rd, study, state, metrics)


def finish_training(
    cfg: DictConfig, rd: RunDir, study: _PPOTraining, state: Any, metrics: pd.DataFrame
) -> dict[str, Any]:
    """A trained segment's end files: ``checkpoints/final``, the registered eval, the exported
    policy (per seed when many) and ``summary.json``; returns the summary."""
    p, built, settings = cfg.ppo, study.built, study.built.settings
    ckpt_dir = rd.path / "checkpoints"
    ck.save_checkpoint(ckpt_dir / "final", state, study.meta(state))
    evaluation = write_eval(rd.path, built, state, int(cfg.eval.seed_start), int(cfg.eval.n_seeds))

    def export(params: Any, normalizer: Any, path: Path) -> Path:
        return export_run_policy(settings, params, normalizer, path)

    seeds = study.seeds
    last_rows = metrics[metrics["update"] == metrics["update"].iloc[-1]]
    last = last_rows.mean(numeric_only=True)  # over the seeds when many
    final_keys = ("entropy", "log_std", "value_loss", "success_rate")
    per_seed: dict[str, Any] = {}
    if study.many:
        from prereg.ppo.trainer import member

        policy_path = None
        for i, seed in enumerate(seeds):
            one = member(state, i)
            final = study.save_member(state, i, "final")
            best = ckpt_dir / SEED_DIR.format(seed) / "best"
            row = last_rows[last_rows["seed"] == seed].iloc[0]
            per_seed[str(seed)] = {
                "final": {k: float(row[k]) for k in final_keys},
                "evaluation": evaluation["per_seed"][i],
                "checkpoint_final": relative(final, rd.path),
                "checkpoint_best": relative(best, rd.path) if best.exists() else None,
                "policy": relative(
                    export(
                        one.params,
                        one.normalizer,
                        rd.path / "policies" / SEED_DIR.format(seed) / "policy",
                    ),
                    rd.path,
                ),
            }
    else:
        policy_path = export(state.params, state.normalizer, rd.path / "policies" / "policy")
    summary = {
        "experiment": "ppo",
        "candidate": candidate_name(cfg),
        "hparams": {k: float(p[k]) for k in KNOBS},
        "variant": str(p.variant),
        "tier": settings["tier"],
        "env_id": settings["env_id"],
        "backend": str(p.backend),
        "updates": int(last["update"]),
        "env_steps": int(last["env_steps"]),
        "segment": study.segment,
        "final": {k: float(last[k]) for k in final_keys},
        "evaluation": evaluation,
        "checkpoint_final": relative(ckpt_dir / "final", rd.path),
        "checkpoint_best": relative(ckpt_dir / "best", rd.path)
        if (ckpt_dir / "best").exists()
        else None,
        "policy": relative(policy_path, rd.path),
        "mean_sps": float(metrics["sps"].mean()),
        "device": device_used(),
    }
    if study.many:
        summary.update(train_seeds=seeds, per_seed=per_seed)
    atomic_write_json(rd.path / "summary.json", summary)
    return summary


def export_run_policy(settings: dict[str, Any], params: Any, normalizer: Any, path: Path) -> Path:
    """The deterministic policy of ``params`` as a run exports it (its env's action bounds)."""
    from prereg.ppo.policy import export_policy

    p = settings["ppo"]
    low, high = action_bounds(settings["env_id"])
    return export_policy(
        path,
        params,
        normalizer,
        settings["tier"],
        meta={"env_id": settings["env_id"], "mixed_lambda": float(p["mixed_lambda"])},
        action_low=low,
        action_high=high,
        obs_clip=float(p["obs_clip"]),
    )


def action_bounds(env_id: str) -> tuple[Any, Any]:
    """The env's action-space bounds (flat), as the trainer maps actions onto them."""
    from prereg.ppo.validate import validate_env_id

    _, space = validate_env_id(env_id)
    return space.low.reshape(-1), space.high.reshape(-1)


def device_used() -> str:
    """JAX's default device now (after :func:`prereg.training.device.select_device`)."""
    import jax

    from prereg.training.device import describe

    chosen = jax.config.jax_default_device
    return describe(chosen if chosen is not None else jax.devices()[0])


def eval_checkpoint(
    checkpoint: Path, run_dir: Path, seed_start: int, n_seeds: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate a saved checkpoint into ``run_dir/logs`` (:func:`write_eval`); (summary, meta)."""
    from prereg.training.jaxcache import enable_compilation_cache

    enable_compilation_cache()
    flat, meta = ck.load_checkpoint(checkpoint)
    built = build(meta["settings"])
    state = built.trainer.restore(flat)
    return write_eval(run_dir, built, state, seed_start, n_seeds), meta


def eval_destination(checkpoint: Path, job_dir: Path) -> Path:
    """Where eval-only writes its ``logs/``: the checkpoint's own run directory (the one that
    holds ``checkpoints/<name>``), unless the command line named an output directory
    (``hydra.run.dir``/``hydra.sweep.dir``) or the checkpoint lies outside a run: the job's."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        keys = {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.hydra}
        if keys & {"hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir"}:
            return job_dir
    checkpoint = checkpoint.resolve()
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent
    if member_seed_of(checkpoint) is not None:  # checkpoints/seed_<s>/<name>
        return checkpoint.parent.parent.parent
    return job_dir


def pointer(path: Path, run_dir: Path) -> str:
    """How eval-only's ``summary.json`` names a file: relative to ``run_dir`` when it lies
    within two levels above it (the same sweep, or the run itself: the pointer survives the
    sweep being moved), else absolute.  Read it back with ``run_dir / pointer``."""
    rel = os.path.relpath(Path(path).resolve(), Path(run_dir).resolve())
    return rel if Path(rel).parts[:3].count("..") <= 2 else str(Path(path).resolve())


def run_eval(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """experiment=ppo_eval: evaluate a saved checkpoint at ``eval.seed_start`` (deterministic).

    The result goes to ``logs/evaluation_seed_<start>.json`` (+ the per-episode CSV) of the
    checkpoint's own run (:func:`eval_destination`); a checkpoint other than ``final`` adds
    its name (``evaluation_seed_<start>_best.json``) and one seed's checkpoint of a multi-seed
    run its seed (``evaluation_seed_<start>_train_seed_<s>.json``), so a run's unsuffixed
    files always describe its final state.  A multi-seed run's stacked checkpoint gets the
    pooled eval (:func:`evaluate`).  An existing file of another result is never overwritten
    (:func:`prereg.ppo.evaluate.place_eval`).  The eval job's own directory keeps its
    ``run.json`` (this job's status) and a ``summary.json`` that names the file; the training
    run's ``run.json`` and ``summary.json`` are left as they are.
    """
    from prereg.ppo.evaluate import place_eval
    from prereg.training.device import select_device
    from prereg.training.jaxcache import enable_compilation_cache

    select_device(str(cfg.ppo.device))
    reg = to_plain(typed_registration(cfg, PPORegistration))
    reg_hash = registration_hash(reg)
    rd = RunDir(run_dir)
    checkpoint = Path(cfg.checkpoint).resolve()
    seed_start, n_seeds = int(cfg.eval.seed_start), int(cfg.eval.n_seeds)

    def body() -> dict[str, Any]:
        enable_compilation_cache()
        flat, meta = ck.load_checkpoint(checkpoint)
        built = build(meta["settings"])
        state = built.trainer.restore(flat)
        rows, evaluation = evaluate(built, state, seed_start, n_seeds)
        target = eval_destination(checkpoint, rd.path)
        stem = f"evaluation_seed_{seed_start}"
        if target != rd.path and (seed := member_seed_of(checkpoint)) is not None:
            stem += f"_train_seed_{seed}"
        if target != rd.path and checkpoint.name != "final":
            stem += f"_{checkpoint.name}"
        path, note = place_eval(target, evaluation, rows, stem)
        log.info("eval of %s: %s", checkpoint, note)
        summary = {
            "experiment": "ppo_eval",
            "checkpoint": pointer(checkpoint, rd.path),
            "update": int(meta["update"]),
            "env_steps": int(meta["env_steps"]),
            "evaluation": evaluation,
            "evaluation_file": pointer(path, rd.path),
            "device": device_used(),
            "evaluation_note": note,
        }
        atomic_write_json(rd.path / "summary.json", summary)
        return summary

    return guarded_run(rd, "ppo_eval", reg["name"], reg_hash, body)
