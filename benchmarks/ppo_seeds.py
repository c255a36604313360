"""PPO env steps/s: N seeds vmapped in one jitted program against N sequential single-seed runs.

For each tier and each N, both measured in this one process on ``prereg/MesaDock-v0`` at the
registered batch (64 envs x 128 steps = 8192 env steps per update per seed, 10 epochs of 32
minibatches, the defaults):

* ``vmapped``: one :class:`~prereg.ppo.trainer.PPOTrainer` with ``num_seeds=N`` (seeds 0..N-1
  as one stacked state, one jitted chunk); after a warm-up chunk (compile), ``--updates``
  updates are timed; the rate is the aggregate ``N * 8192 * updates / seconds``;
* ``sequential``: the single-seed trainer (compiled once, warmed up) runs seeds 0..N-1 one
  after the other, ``--updates`` updates each, timed together; beyond ``--max-sequential``
  seeds the sequential rate is the mean per-seed rate of the ones measured (marked ``*``),
  since sequential runs do not speed each other up.

Prints a Markdown table (and the exact command).  The default run is short (1 timed update);
``--updates``, ``--tiers``, ``--seeds`` and ``--max-sequential`` give more.  Run it on a quiet
machine: it measures wall time.

    python benchmarks/ppo_seeds.py [--tiers small,medium,large] [--seeds 1,2,4,8,16,32,64]
        [--updates 1] [--max-sequential 4] [--device auto|cpu|gpu]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import jax


def rate_vmapped(env, params, tier: str, n: int, updates: int) -> float:
    """Aggregate env steps/s of ``n`` seeds in one vmapped program (after a warm-up chunk)."""
    from prereg.ppo.trainer import PPOConfig, make_trainer

    trainer = make_trainer(env, params, PPOConfig(tier=tier, num_seeds=n, seed=0))
    state = trainer.init()
    state, _ = trainer.run_chunk(state, updates)  # compile + warm-up
    tic = time.perf_counter()
    state, _ = trainer.run_chunk(state, updates)
    seconds = time.perf_counter() - tic
    return n * trainer.cfg.batch_size * updates / seconds


def rate_sequential(trainer, n: int, updates: int) -> float:
    """Aggregate env steps/s of seeds 0..n-1 run one after the other (trainer warmed up)."""
    seconds = 0.0
    for seed in range(n):
        state = trainer.init(seed)
        jax.block_until_ready(state)
        tic = time.perf_counter()
        trainer.run_chunk(state, updates)
        seconds += time.perf_counter() - tic
    return n * trainer.cfg.batch_size * updates / seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiers", default="small,medium,large")
    ap.add_argument("--seeds", default="1,2,4,8,16,32,64", help="the N to measure")
    ap.add_argument("--updates", type=int, default=1, help="timed updates per measurement")
    ap.add_argument("--max-sequential", type=int, default=4, help="seeds actually run in turn")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    args = ap.parse_args(argv)

    from prereg.ppo.env import MesaDockFuncEnv
    from prereg.ppo.env.mesadock import DEFAULT_PARAMS
    from prereg.ppo.trainer import PPOConfig, make_trainer
    from prereg.training.device import select_device

    device = select_device(args.device, "--device")
    env, params = MesaDockFuncEnv(), DEFAULT_PARAMS
    seeds = [int(s) for s in args.seeds.split(",")]
    given = sys.argv[1:] if argv is None else argv
    print(f"command: python benchmarks/ppo_seeds.py {shlex.join(given)}".rstrip())
    print(f"device: {device}; jax {jax.__version__}; {args.updates} timed update(s) per cell")
    print()
    print(
        "| tier | N seeds | vmapped env steps/s | sequential env steps/s | vmapped / sequential |"
    )
    print("|---|---:|---:|---:|---:|")
    for tier in args.tiers.split(","):
        single = make_trainer(env, params, PPOConfig(tier=tier))
        single.run_chunk(single.init(0), args.updates)  # compile + warm-up
        measured: list[float] = []  # per-seed rates of the sequential runs actually run
        for n in seeds:
            vmapped = rate_vmapped(env, params, tier, n, args.updates)
            if n <= args.max_sequential:
                sequential, mark = rate_sequential(single, n, args.updates), ""
                measured.append(sequential)
            else:
                sequential, mark = sum(measured) / len(measured), "*"
            print(
                f"| {tier} | {n} | {vmapped:,.0f} | {sequential:,.0f}{mark} | "
                f"{vmapped / sequential:.2f}x |",
                flush=True,
            )
    print()
    print(
        f"* sequential rate beyond {args.max_sequential} seeds: the mean of the measured "
        "sequential rates (runs in turn do not speed each other up)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
