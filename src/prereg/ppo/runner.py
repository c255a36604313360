"""PPO runner: train (or continue, or resume) one PPO run and write the run-directory contract.

I/O only; the maths is in :mod:`prereg.ppo.trainer`.  Training runs in jitted chunks of
``ppo.chunk_updates`` updates; after each chunk the runner appends to ``metrics.csv``,
writes a periodic checkpoint, runs the periodic eval (keeping ``checkpoints/best``) and
reports progress.  At the end it writes ``checkpoints/final``, the registered eval
(``logs/evaluation_seed_<start>.json`` + a per-episode CSV), the exported policy in
``policies/`` and ``summary.json``.
"""

from __future__ import annotations

import logging
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
from prereg.training import checkpoints as ck
from prereg.training import tensorboard_log
from prereg.training.nonfinite import first_nonfinite, nonfinite_error, nonfinite_leaf

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


def build(settings: dict[str, Any]) -> Built:
    """Construct the trainer and the deterministic evaluator for ``settings``."""
    from prereg.ppo.evaluate import Evaluator
    from prereg.ppo.trainer import PPOConfig, make_trainer

    p = settings["ppo"]
    pcfg = PPOConfig(
        lr=float(p["lr"]),
        value_coef=float(p["value_coef"]),
        entropy_coef=float(p["entropy_coef"]),
        clip_range=float(p["clip_range"]),
        gamma=float(p["gamma"]),
        gae_lambda=float(p["gae_lambda"]),
        num_envs=int(p["num_envs"]),
        num_steps=int(p["num_steps"]),
        update_epochs=int(p["update_epochs"]),
        num_minibatches=int(p["num_minibatches"]),
        max_grad_norm=float(p["max_grad_norm"]),
        tier=settings["tier"],
        seed=int(p["seed"]),
    )
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
    return Built(make_trainer(env, env_params, pcfg), Evaluator(env, env_params), settings)


def write_eval(run_dir: Path, built: Built, state: Any, seed_start: int, n_seeds: int) -> dict:
    """Deterministic eval -> ``logs/evaluation_seed_<start>.json`` and its per-episode CSV."""
    from prereg.ppo.evaluate import episodes_to_rows

    if built.evaluator is None:
        raise RuntimeError(f"no deterministic evaluator for env {built.settings['env_id']}")
    episodes, summary = built.evaluator(state.params, state.normalizer, seed_start, n_seeds)
    logs = run_dir / "logs"
    atomic_write_json(logs / f"evaluation_seed_{seed_start}.json", summary)
    atomic_write_csv(
        logs / f"evaluation_seed_{seed_start}_episodes.csv",
        pd.DataFrame(episodes_to_rows(episodes)),
    )
    return summary


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
    cfg = apply_candidate(cfg)
    reg = to_plain(typed_registration(cfg, PPORegistration))
    return run_registered(
        run_dir, experiment, reg, registration_hash(reg), lambda rd: body(cfg, rd)
    )


def _first_nonfinite(frame: pd.DataFrame, state: Any) -> tuple[int, str] | None:
    """(update, quantity) of the first NaN/inf in this chunk's losses, else in the parameters
    or observation normalizer it ended with (checked once per chunk, at its last update)."""
    bad = first_nonfinite(frame["update"].to_numpy(), {c: frame[c] for c in FINITE_COLUMNS})
    if bad is None:
        leaf = nonfinite_leaf(state.params, "params/") or nonfinite_leaf(
            state.normalizer, "normalizer/"
        )
        bad = None if leaf is None else (int(state.update), leaf)
    return bad


def train(cfg: DictConfig, rd: RunDir) -> dict[str, Any]:
    """The training loop (see the module docstring)."""
    from prereg.training.jaxcache import enable_compilation_cache

    enable_compilation_cache()
    from prereg.ppo.evaluate import SUMMARY_FIELDS
    from prereg.ppo.policy import export_policy

    p = cfg.ppo
    settings = ppo_settings(cfg)
    built = build(settings)
    trainer = built.trainer
    ckpt_dir = rd.path / "checkpoints"
    metrics_path = rd.path / "metrics.csv"
    frames: list[pd.DataFrame] = []
    resumed = ck.latest_valid(ckpt_dir)
    if resumed is not None:
        flat, meta, path = resumed
        state = trainer.restore(flat)
        segment = meta["segment"]
        done = int(state.update)
        if metrics_path.exists():
            frames = [pd.read_csv(metrics_path).query("update <= @done")]
        log.info("resuming %s from %s (update %d)", rd.path, path.name, done)
    else:
        if p.init_from:
            flat, meta = ck.load_checkpoint(p.init_from)
            state = trainer.restore(flat)
            origin = str(Path(p.init_from).resolve())
            log.info("new segment from %s (update %d)", origin, int(state.update))
        else:
            state = trainer.init(int(p.seed))
            origin = None
        segment = {
            "init_from": origin,
            "start_update": int(state.update),
            "start_env_steps": int(state.env_steps),
            "target_update": int(state.update) + int(p.updates),
            "best_success_rate": None,
            "best_update": None,
        }
    target = int(segment["target_update"])
    batch = int(p.num_envs) * int(p.num_steps)
    progress = Progress(str(p.progress), target, int(state.update), rd.path.name)
    tb = tensorboard_log.for_run(cfg, rd.path)  # logger=tensorboard (else a no-op)
    try:
        while int(state.update) < target:
            k = min(int(p.chunk_updates), target - int(state.update))
            tic = time.perf_counter()
            state, met = trainer.run_chunk(state, k)
            elapsed = time.perf_counter() - tic
            frame = pd.DataFrame({c: met[c] for c in METRIC_COLUMNS if c != "sps"})
            frame["update"] = frame["update"].astype(int)
            frame["sps"] = k * batch / elapsed
            bad = _first_nonfinite(frame, state)
            if bad is not None:  # fail at that update; the newest checkpoint is the last good one
                frames.append(frame[frame["update"] < bad[0]])
                atomic_write_csv(metrics_path, pd.concat(frames)[METRIC_COLUMNS])
                tb.log_frame(frames[-1][METRIC_COLUMNS], "update")
                raise nonfinite_error(bad[0], bad[1], ckpt_dir)
            frames.append(frame)
            atomic_write_csv(metrics_path, pd.concat(frames, ignore_index=True)[METRIC_COLUMNS])
            tb.log_frame(frame[METRIC_COLUMNS], "update")
            done = int(state.update)
            if built.evaluator is not None and (
                done // int(p.eval_every) > (done - k) // int(p.eval_every) or done == target
            ):
                _, ev = built.evaluator(
                    state.params, state.normalizer, int(p.eval_seed_start), int(p.eval_seeds)
                )
                tb.log_values({k: ev[k] for k in SUMMARY_FIELDS}, done, "eval")
                best = segment["best_success_rate"]
                if best is None or ev["success_rate"] > best:
                    segment["best_success_rate"] = ev["success_rate"]
                    segment["best_update"] = done
                    ck.save_checkpoint(
                        ckpt_dir / "best", state, _meta(settings, segment, state, ev)
                    )
            ck.save_checkpoint(
                ckpt_dir / ck.periodic_name(done), state, _meta(settings, segment, state)
            )
            ck.prune_periodic(ckpt_dir)
            progress.update(done, k, frame.iloc[-1].to_dict())
    finally:
        progress.close()
        tb.close()

    ck.save_checkpoint(ckpt_dir / "final", state, _meta(settings, segment, state))
    evaluation = write_eval(rd.path, built, state, int(cfg.eval.seed_start), int(cfg.eval.n_seeds))
    policy_path = export_policy(
        rd.path / "policies" / "policy",
        state.params,
        state.normalizer,
        settings["tier"],
        meta={"env_id": settings["env_id"], "mixed_lambda": float(p.mixed_lambda)},
    )
    metrics = pd.concat(frames, ignore_index=True)
    last = metrics.iloc[-1]
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
        "segment": segment,
        "final": {k: float(last[k]) for k in ("entropy", "log_std", "value_loss", "success_rate")},
        "evaluation": evaluation,
        "checkpoint_final": str(ckpt_dir / "final"),
        "checkpoint_best": str(ckpt_dir / "best") if (ckpt_dir / "best").exists() else None,
        "policy": str(policy_path),
        "mean_sps": float(metrics["sps"].mean()),
    }
    atomic_write_json(rd.path / "summary.json", summary)
    return summary


def _meta(settings: dict, segment: dict, state: Any, evaluation: dict | None = None) -> dict:
    return {
        "settings": settings,
        "segment": dict(segment),
        "update": int(state.update),
        "env_steps": int(state.env_steps),
        "evaluation": evaluation,
    }


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


def run_eval(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """experiment=ppo_eval: evaluate a saved checkpoint at ``eval.seed_start`` (deterministic)."""
    reg = to_plain(typed_registration(cfg, PPORegistration))
    reg_hash = registration_hash(reg)
    rd = RunDir(run_dir)

    def body() -> dict[str, Any]:
        evaluation, meta = eval_checkpoint(
            Path(cfg.checkpoint), rd.path, int(cfg.eval.seed_start), int(cfg.eval.n_seeds)
        )
        summary = {
            "experiment": "ppo_eval",
            "checkpoint": str(Path(cfg.checkpoint).resolve()),
            "update": int(meta["update"]),
            "env_steps": int(meta["env_steps"]),
            "evaluation": evaluation,
        }
        atomic_write_json(rd.path / "summary.json", summary)
        return summary

    return guarded_run(rd, "ppo_eval", reg["name"], reg_hash, body)
