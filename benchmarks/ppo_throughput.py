"""PPO throughput on MesaDock-v0: jitted trainer vs Gymnasium backend vs Stable-Baselines3.

Env steps per second, update included, for each backend x tier x epochs, all in ONE run:

- ``jax``: :class:`prereg.ppo.trainer.PPOTrainer`, functional MesaDock in one ``lax.scan``;
- ``gym``: :class:`prereg.ppo.gym_backend.GymTrainer` on ``gymnasium.make_vec`` of the
  registered ``prereg/MesaDock-v0``;
- ``sb3 numpy env``: Stable-Baselines3 PPO on SB3's ``make_vec_env`` of the numpy port of
  MesaDock-v0 (:mod:`prereg.ppo.env.mesadock_numpy`: same dynamics and reward, checked against
  the JAX env to float32 tolerance in the tests), with ``VecNormalize`` (observations only, as
  the trainer's normaliser);
- ``sb3 JAX env``: the same on the registered ``prereg/MesaDock-v0``, which runs one jitted JAX
  call per env step.

Which ratio means what: ``vs SB3 (numpy env)`` compares the learners more fairly (a plain numpy
env, no JAX call per step; it still costs SB3 part of each update, see the env-alone rows), the
anchor the goals use;
``vs SB3 (JAX env)`` is what SB3 gives on the registered env as shipped, dominated by the
per-step JAX call (the env path, not the learner). ``env steps/s`` rows time the env alone (64
envs in SB3's DummyVecEnv, random actions, no learner) to show that split.

Matched settings: 64 envs x 128 steps = 8192 env steps per update, 32 minibatches of 256,
lr 3e-4, clip 0.2, ent 0.01, vf 0.5, gae 0.95, gamma 0.99, grad-norm 0.5, Adam eps 1e-5,
separate actor/critic tanh MLPs of the tier's sizes.  Each cell: build, one warm-up update
(compile for jax/gym; reported separately), then ``--updates`` timed updates.  SB3 and torch
are benchmark-only installs (never package dependencies); without them the SB3 rows say so.

    python benchmarks/ppo_throughput.py                       # small+large, 10 and 4 epochs
    python benchmarks/ppo_throughput.py --epochs 10 --updates 2
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from dataclasses import dataclass

import jax
import numpy as np

import prereg  # noqa: F401  (registers prereg/MesaDock-v0)
from prereg.ppo.env import ENV_ID
from prereg.ppo.env.mesadock import DEFAULT_PARAMS, MesaDockFuncEnv
from prereg.ppo.gym_backend import make_gym_trainer
from prereg.ppo.networks import TIERS
from prereg.ppo.trainer import PPOConfig, make_trainer

SB3_MISSING = "SB3 not installed (pip install -e '.[bench]')"
SB3_NUMPY, SB3_JAX = "sb3 numpy env", "sb3 JAX env"
TOTAL_STEPS = 10_000_000
GOALS = {"small": 6.0, "large": 2.5}  # jitted trainer vs SB3 on the numpy env, steps/s ratio
GOAL_MINUTES = 20.0


@dataclass
class Result:
    """One backend x tier x epochs measurement."""

    backend: str
    tier: str
    epochs: int
    updates: int  # timed updates
    s_per_update: float
    warmup_s: float  # jax: AOT lower+compile; others: first update minus a timed one (>= 0)
    batch: int

    @property
    def sps(self) -> float:
        return self.batch / self.s_per_update


def make_cfg(tier: str, epochs: int) -> PPOConfig:
    """The matched PPO settings (the trainer's defaults: 64 x 128, 32 minibatches)."""
    return PPOConfig(
        tier=tier, update_epochs=epochs, num_envs=64, num_steps=128, num_minibatches=32
    )


def measure_jax(tier: str, epochs: int, updates: int) -> Result:
    """Jitted trainer: AOT-compile one update, run one warm-up, time ``updates`` more."""
    cfg = make_cfg(tier, epochs)
    env = MesaDockFuncEnv()
    trainer = make_trainer(env, DEFAULT_PARAMS, cfg)
    state = jax.block_until_ready(trainer.init())
    tic = time.perf_counter()
    step = trainer.chunk_fn(1).lower(state).compile()
    compile_s = time.perf_counter() - tic
    state, _ = jax.block_until_ready(step(state))  # warm-up update
    tic = time.perf_counter()
    for _ in range(updates):
        state, metrics = step(state)
    jax.block_until_ready((state, metrics))
    dt = time.perf_counter() - tic
    return Result("jax (lax.scan)", tier, epochs, updates, dt / updates, compile_s, cfg.batch_size)


def measure_gym(tier: str, epochs: int, updates: int) -> Result:
    """Gymnasium backend: one warm-up update (jit compiles), then ``updates`` timed."""
    cfg = make_cfg(tier, epochs)
    trainer = make_gym_trainer(ENV_ID, cfg)
    try:
        state = trainer.init()
        tic = time.perf_counter()
        state, _ = trainer.run_chunk(state, 1)
        first = time.perf_counter() - tic
        tic = time.perf_counter()
        state, _ = trainer.run_chunk(state, updates)
        dt = time.perf_counter() - tic
    finally:
        trainer.close()
    per = dt / updates
    warm = max(0.0, first - per)
    return Result("gym (make_vec)", tier, epochs, updates, per, warm, cfg.batch_size)


def sb3_version() -> str | None:
    """'sb3 X, torch Y' if both import, else None."""
    try:
        import stable_baselines3
        import torch
    except ImportError:
        return None
    return f"stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}"


def sb3_env(backend: str, n_envs: int, seed: int):
    """SB3's vectorised env (DummyVecEnv) of the numpy port or of the registered JAX env."""
    from stable_baselines3.common.env_util import make_vec_env

    from prereg.ppo.env.mesadock_numpy import MesaDockNumpyEnv

    env = MesaDockNumpyEnv if backend == SB3_NUMPY else ENV_ID
    return make_vec_env(env, n_envs=n_envs, seed=seed)


def measure_env(backend: str, n_envs: int = 64, steps: int = 200) -> float:
    """Env steps/s of SB3's vectorised env alone (random actions, no learner)."""
    venv = sb3_env(backend, n_envs, 0)
    try:
        venv.reset()
        actions = np.random.default_rng(0).uniform(-1, 1, (steps + 5, n_envs, 2)).astype("f4")
        for a in actions[:5]:  # warm-up (the JAX env compiles its step)
            venv.step(a)
        tic = time.perf_counter()
        for a in actions[5:]:
            venv.step(a)
        return steps * n_envs / (time.perf_counter() - tic)
    finally:
        venv.close()


def measure_sb3(tier: str, epochs: int, updates: int, backend: str = SB3_NUMPY) -> Result:
    """SB3 PPO with matched settings on ``backend``'s env: one warm-up ``learn``, then
    ``updates`` timed."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    cfg = make_cfg(tier, epochs)
    venv = VecNormalize(
        sb3_env(backend, cfg.num_envs, cfg.seed),
        norm_obs=True,
        norm_reward=False,
        clip_obs=cfg.obs_clip,
    )
    hidden = list(TIERS[tier])
    model = PPO(
        "MlpPolicy",
        venv,
        learning_rate=cfg.lr,
        n_steps=cfg.num_steps,
        batch_size=cfg.batch_size // cfg.num_minibatches,
        n_epochs=epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_range,
        ent_coef=cfg.entropy_coef,
        vf_coef=cfg.value_coef,
        max_grad_norm=cfg.max_grad_norm,
        policy_kwargs={
            "net_arch": {"pi": hidden, "vf": hidden},
            "activation_fn": torch.nn.Tanh,
            "log_std_init": cfg.log_std_init,
            "optimizer_kwargs": {"eps": cfg.adam_eps},
        },
        device="cpu",
        seed=cfg.seed,
        verbose=0,
    )
    try:
        tic = time.perf_counter()
        model.learn(cfg.batch_size)  # warm-up update
        first = time.perf_counter() - tic
        tic = time.perf_counter()
        model.learn(updates * cfg.batch_size, reset_num_timesteps=False)
        dt = time.perf_counter() - tic
    finally:
        venv.close()
    per = dt / updates
    warm = max(0.0, first - per)
    return Result(backend, tier, epochs, updates, per, warm, cfg.batch_size)


def table(results: list[Result], sb3_note: str | None) -> str:
    """The Markdown table; ratios = steps/s over SB3's (numpy env, JAX env) at the same tier
    and epochs."""
    base = {(r.backend, r.tier, r.epochs): r for r in results if r.backend.startswith("sb3")}
    lines = [
        "| backend | tier | epochs | steps/s | vs SB3 (numpy env) | vs SB3 (JAX env) "
        "| s/update | timed updates | compile / warm-up s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = dict.fromkeys((r.epochs, r.tier) for r in results)
    for epochs, tier in keys:
        for r in (r for r in results if (r.epochs, r.tier) == (epochs, tier)):
            ratios = []
            for b in (SB3_NUMPY, SB3_JAX):
                ref = base.get((b, tier, epochs))
                ratios.append(f"{r.sps / ref.sps:.2f}x" if ref else "n/a")
            lines.append(
                f"| {r.backend} | {tier} | {epochs} | {r.sps:,.0f} | {ratios[0]} | {ratios[1]} "
                f"| {r.s_per_update:.3f} | {r.updates} | {r.warmup_s:.1f} |"
            )
        if sb3_note:
            lines.append(f"| sb3 (PyTorch) | {tier} | {epochs} | {sb3_note} | | | | | |")
    return "\n".join(lines)


def goal_check(results: list[Result]) -> list[str]:
    """One line per goal: jitted/SB3 ratio per tier (every epochs setting) and 10M wall time."""
    by = {(r.backend.split()[0], r.tier, r.epochs): r for r in results if r.backend != SB3_JAX}
    lines = []
    for tier, goal in GOALS.items():
        for epochs in sorted({r.epochs for r in results}, reverse=True):
            j, s = by.get(("jax", tier, epochs)), by.get(("sb3", tier, epochs))
            if j is None:
                continue
            if s is None:
                lines.append(f"- {tier}, {epochs} epochs: >= {goal}x SB3: unknown (no SB3 row)")  # noqa: E501
                continue
            ratio = j.sps / s.sps
            verdict = "MET" if ratio >= goal else "NOT MET"
            lines.append(
                f"- {tier}, {epochs} epochs: >= {goal}x SB3 (numpy env): {ratio:.1f}x -> {verdict}"
            )
    for epochs in sorted({r.epochs for r in results}, reverse=True):
        j = by.get(("jax", "large", epochs))
        if j is None:
            continue
        updates = -(-TOTAL_STEPS // j.batch)
        minutes = (updates * j.s_per_update + j.warmup_s) / 60
        verdict = "MET" if minutes <= GOAL_MINUTES else "NOT MET"
        lines.append(
            f"- 10M large-tier steps ({updates} updates, {epochs} epochs) with the jitted "
            f"trainer: projected {minutes:.1f} min incl. compile (goal <= {GOAL_MINUTES:.0f} min)"
            f" -> {verdict}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", nargs="+", default=["small", "large"], choices=sorted(TIERS))
    parser.add_argument("--epochs", nargs="+", type=int, default=[10, 4])
    parser.add_argument("--updates", type=int, default=5, help="timed updates per cell")
    parser.add_argument(
        "--sb3-large-updates", type=int, default=None, help="timed SB3 updates at the large tier"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch.set_num_threads (1: on 2 shared cores, 2 threads spin-wait against XLA "
        "and other jobs; SB3's update ran ~20x slower in a trial)",
    )
    parser.add_argument("--no-sb3", action="store_true", help="skip SB3 even if installed")
    args = parser.parse_args()

    print("command: python benchmarks/ppo_throughput.py " + " ".join(sys.argv[1:]))
    sb3 = None if args.no_sb3 else sb3_version()
    sb3_note = None if sb3 else ("SB3 skipped (--no-sb3)" if args.no_sb3 else SB3_MISSING)
    if sb3:
        import torch

        torch.set_num_threads(args.torch_threads)
        threads = f"torch threads {torch.get_num_threads()}"
    else:
        threads = "torch not used"
    print(
        f"python {platform.python_version()}, jax {jax.__version__} ({jax.default_backend()}), "
        f"{sb3 or 'no SB3'}; {os.cpu_count()} CPUs, {threads} (XLA: ~1 core per process)"
    )
    load0 = os.getloadavg()
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")

    results: list[Result] = []
    for epochs in args.epochs:
        for tier in args.tiers:
            n_sb3 = args.sb3_large_updates if tier == "large" else None
            cells = [(measure_jax, args.updates), (measure_gym, args.updates)]
            if sb3:
                cells.append((measure_sb3, n_sb3 or args.updates))
                cells.append(
                    (functools.partial(measure_sb3, backend=SB3_JAX), n_sb3 or args.updates)
                )
            for fn, n in cells:
                r = fn(tier, epochs, n)
                results.append(r)
                print(
                    f"  {r.backend:15s} {tier:5s} {epochs:2d} epochs: {r.sps:9,.0f} steps/s "
                    f"({r.s_per_update:.3f} s/update, {n} timed, warm-up {r.warmup_s:.1f} s, "
                    f"load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )

    if sb3:
        for backend in (SB3_NUMPY, SB3_JAX):
            sps = measure_env(backend)
            print(f"  env alone, {backend}: {sps:,.0f} env steps/s (64 envs, DummyVecEnv)")
    load1 = os.getloadavg()
    print()
    print(table(results, sb3_note))
    print()
    if args.sb3_large_updates and sb3:
        print(f"SB3 large tier: {args.sb3_large_updates} timed updates (others {args.updates}).")
    print(
        "compile / warm-up: jax = AOT lower+compile of one update; gym, sb3 = first update "
        "minus the mean timed one (jit compiles for gym; none for sb3), floored at 0."
    )
    print(
        "Ratios: 'vs SB3 (numpy env)' compares the learners (SB3 on a plain numpy env, no JAX "
        "call per step; the env alone still takes part of SB3's update, see 'env alone'); 'vs "
        "SB3 (JAX env)' is SB3 on the registered env, one JAX call per env step, which mostly "
        "measures that env path."
    )
    print("Goals (against SB3 on the numpy env):")
    print("\n".join(goal_check(results)))
    print(f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    if max(load0[0], load1[0]) > 1.5:
        print("note: load average above 1.5 -- the machine was shared with other jobs.")
    print(f"\ncommand: python benchmarks/ppo_throughput.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
