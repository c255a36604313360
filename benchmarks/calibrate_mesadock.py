"""Calibrate MesaDock-v0: PPO eval success against env steps for each reward variant.

Trains PPO (default hparams, one tier) on each reward variant for ``--steps`` env steps,
evaluates deterministically (mean action, eval seeds ``--eval-seed .. +--eval-n - 1``) at
0.5M and every ``--eval-every`` env steps, and prints a Markdown table of eval success_rate
against env steps, plus the last-update training success, entropy and wall time, and the
random-policy success rate of the env. Run ONE of these at a time on a shared machine.

    python benchmarks/calibrate_mesadock.py \
        --variants reward_phase3,mixed_0_90,mixed_0_99,mixed_0_999,mixed_1_00 \
        --steps 5000000 --eval-every 1000000 --seed 0

Variants: ``reward_phase3`` (mixed_lambda 0) or ``mixed_X_Y`` (mixed_lambda X.Y). ``--set
name=value`` overrides a :class:`MesaDockParams` field (for probing constants before editing).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
import time

import jax
import jax.numpy as jnp

from prereg.ppo.env.mesadock import DEFAULT_PARAMS, MesaDockFuncEnv, MesaDockParams
from prereg.ppo.evaluate import Evaluator
from prereg.ppo.trainer import PPOConfig, make_trainer


def variant_lambda(name: str) -> float:
    """mixed_lambda of a variant name (``reward_phase3`` -> 0, ``mixed_0_999`` -> 0.999)."""
    if name == "reward_phase3":
        return 0.0
    if name.startswith("mixed_"):
        return float(name[len("mixed_") :].replace("_", ".", 1).replace("_", ""))
    raise ValueError(f"unknown variant {name!r}")


def parse_overrides(items: list[str]) -> dict[str, float]:
    """``["a=1", "b=2.5"]`` -> ``{"a": 1.0, "b": 2.5}`` (MesaDockParams fields only)."""
    fields = {f.name for f in dataclasses.fields(MesaDockParams)}
    out: dict[str, float] = {}
    for item in items:
        key, _, val = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--set: unknown MesaDockParams field {key!r}")
        out[key] = float(val)
    return out


def random_success(params: MesaDockParams, n: int = 4000, seed: int = 123) -> tuple[float, float]:
    """Success rate of uniform-in-box and N(0,1)-clipped random policies over ``n`` episodes."""
    fenv = MesaDockFuncEnv(params)

    @jax.jit
    def run(key, gaussian):
        k0, k1 = jax.random.split(key)
        u = jax.random.uniform(k1, (fenv.max_episode_steps, n, 2), minval=-1.0, maxval=1.0)
        normal = jnp.sqrt(2.0) * jax.scipy.special.erfinv(jnp.clip(u, -0.999999, 0.999999))
        actions = jnp.where(gaussian, normal, u)
        s0 = jax.vmap(lambda k: fenv.initial(k, params))(jax.random.split(k0, n))

        def body(c, a):
            s, done = c
            ns = jax.vmap(lambda s_, a_: fenv.transition(s_, a_, None, params))(s, a)
            ns = jnp.where(done[:, None], s, ns)
            return (ns, done | jax.vmap(lambda x: fenv.terminal(x, None, params))(ns)), None

        (_, done), _ = jax.lax.scan(body, (s0, jnp.zeros(n, bool)), actions)
        return jnp.mean(done)

    key = jax.random.PRNGKey(seed)
    return float(run(key, False)), float(run(key, True))


def checkpoints(steps: int, eval_every: int, batch: int) -> dict[int, int]:
    """{target env steps: updates}: 0.5M (if below the first eval) and each eval_every."""
    targets = {steps}
    targets.update(range(eval_every, steps + 1, eval_every))
    if 500_000 < min(targets):
        targets.add(500_000)
    return {t: math.ceil(t / batch) for t in sorted(targets)}


def fmt_steps(s: float) -> str:
    return f"{s / 1e6:g}M"


def run_variant(name: str, params: MesaDockParams, args: argparse.Namespace) -> dict:
    """Train one variant; returns eval success per checkpoint and final training stats."""
    params = params.replace(mixed_lambda=variant_lambda(name))
    env = MesaDockFuncEnv(params)
    cfg = PPOConfig(tier=args.tier, seed=args.seed, update_epochs=args.epochs)
    trainer = make_trainer(env, params, cfg)
    evaluator = Evaluator(env, params)
    plan = checkpoints(args.steps, args.eval_every, cfg.batch_size)
    state = trainer.init()
    t0 = time.perf_counter()
    done, evals, last = 0, {}, {}
    for target, upd in plan.items():
        n = upd - done
        while n > 0:  # chunks of at most --chunk updates (few compiled sizes)
            k = min(n, args.chunk)
            state, m = trainer.run_chunk(state, k)
            last = {key: float(v[-1]) for key, v in m.items()}
            n -= k
        done = upd
        _, summary = evaluator(state.params, state.normalizer, args.eval_seed, args.eval_n)
        evals[target] = summary["success_rate"]
        print(
            f"  {name} {fmt_steps(target)} ({upd} updates): eval {summary['success_rate']:.3f}"
            f" align {summary['mean_terminal_alignment']:.3f} steps {summary['mean_steps']:.0f}"
            f" | train success {last['success_rate']:.3f} entropy {last['entropy']:.2f}"
            f" ret {last['episode_return']:.2f} ({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
    return {
        "evals": evals,
        "train_success": last["success_rate"],
        "entropy": last["entropy"],
        "wall": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="reward_phase3,mixed_0_90,mixed_0_99,mixed_1_00")
    ap.add_argument("--steps", type=int, default=5_000_000)
    ap.add_argument("--eval-every", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tier", default="medium")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--eval-seed", type=int, default=10000)
    ap.add_argument("--eval-n", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=61)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = ap.parse_args(argv)
    cmd = "python benchmarks/calibrate_mesadock.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    params = DEFAULT_PARAMS.replace(**parse_overrides(args.set))
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        variant_lambda(v)
    uni, gauss = random_success(params)
    print(f"random policy success (4000 episodes): uniform {uni:.5f}, N(0,1) {gauss:.5f}")
    results = {v: run_variant(v, params, args) for v in variants}
    cols = sorted(results[variants[0]]["evals"])
    print(f"\nCommand: `{cmd}`\n")
    seeds = f"{args.eval_seed}..{args.eval_seed + args.eval_n - 1}"
    print(f"Eval success_rate (deterministic, seeds {seeds}), {args.tier} tier, PPO defaults")
    if args.set:
        print(f"MesaDockParams overrides: {', '.join(args.set)}")
    print()
    head = ["variant", *(fmt_steps(c) for c in cols), "train success", "entropy", "wall s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for v, r in results.items():
        cells = [f"{r['evals'][c]:.3f}" for c in cols]
        tail = [f"{r['train_success']:.3f}", f"{r['entropy']:.2f}", f"{r['wall']:.0f}"]
        print("| " + " | ".join([v, *cells, *tail]) + " |")
    print(f"\nrandom policy success: uniform {uni:.5f}, N(0,1)-clipped {gauss:.5f}")


if __name__ == "__main__":
    main()
