"""PPO: one jitted call per update (what the training loop does, so that a signal stops the run
at the update it lands in) against one ``lax.scan`` over K updates in a single call.

Both go through :meth:`prereg.ppo.trainer.PPOTrainer.run_chunk` on the same state, interleaved
(scan, per-update, per-update, scan, ...), after both programs are compiled.  Prints env steps/s
by wall clock and by this process's CPU time (less sensitive to other jobs on the machine).

    python benchmarks/ppo_update_calls.py                     # tier small, default knobs
    python benchmarks/ppo_update_calls.py --k 20 num_envs=16 num_steps=32 num_minibatches=4
"""

from __future__ import annotations

import argparse
import os
import time

from omegaconf import OmegaConf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10, help="updates per scan / per round")
    parser.add_argument("--reps", type=int, default=6, help="interleaved rounds of each")
    parser.add_argument("--tier", default="small")
    parser.add_argument("knobs", nargs="*", help="ppo.<key>=<int> overrides, e.g. num_envs=16")
    args = parser.parse_args()

    from prereg.ppo.config import PPOConf
    from prereg.ppo.networks import TIERS
    from prereg.ppo.runner import build

    p = OmegaConf.to_container(OmegaConf.structured(PPOConf), resolve=True)
    p.update({k: int(v) for k, v in (a.split("=", 1) for a in args.knobs)})
    p["backend"], p["progress"] = "jax", "off"
    hidden = list(TIERS[args.tier])
    settings = {"ppo": p, "tier": args.tier, "hidden": hidden, "env_id": "prereg/MesaDock-v0"}
    trainer = build(settings).trainer
    state = trainer.init(0)
    state, _ = trainer.run_chunk(state, args.k)  # compile both programs
    state, _ = trainer.run_chunk(state, 1)
    batch = int(p["num_envs"]) * int(p["num_steps"])
    rates: dict[str, dict[str, list[float]]] = {
        m: {"wall": [], "cpu": []} for m in ("scan", "per-update")
    }
    for rep in range(args.reps):
        for mode in ("scan", "per-update") if rep % 2 == 0 else ("per-update", "scan"):
            wall, cpu = time.perf_counter(), time.process_time()
            if mode == "scan":
                state, _ = trainer.run_chunk(state, args.k)
            else:
                for _ in range(args.k):
                    state, _ = trainer.run_chunk(state, 1)
            rates[mode]["wall"].append(args.k * batch / (time.perf_counter() - wall))
            rates[mode]["cpu"].append(args.k * batch / (time.process_time() - cpu))
    print(f"tier {args.tier}, {batch} env steps per update, K={args.k}, {args.reps} rounds each")
    for mode, by in rates.items():
        cells = ", ".join(
            f"{clock} median {sorted(v)[len(v) // 2]:,.0f} (min {min(v):,.0f}, max {max(v):,.0f})"
            for clock, v in by.items()
        )
        print(f"  {mode:<10} steps/s: {cells}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
