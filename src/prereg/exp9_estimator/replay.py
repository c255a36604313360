"""exp9 thetas at chosen steps, replayed deterministically from the run's own states.

exp9 keeps only its newest two checkpoints, and no theta per step.  Its training is
deterministic and cut into chunks of ``exp9.chunk_steps`` from step 0 (resumed runs are cut the
same way), so the theta at step t is recovered by re-running the chunk that holds t with exp9's
own jitted chunk function, from the nearest earlier state on disk: the registered initial theta
(step 0) or a kept checkpoint.  Re-running the same chunks runs the same compiled code, so the
replayed KL and rho equal ``metrics.csv``'s; the runner checks that they do.

Why replay rather than recording thetas in exp9: it needs no change to exp9 (whose results stay
byte-for-byte what they were) and it works on sweeps made before this study existed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from prereg.exp9 import analysis
from prereg.exp9.config import Exp9Conf

FINAL = "last"


def targets(metrics: pd.DataFrame, thresholds: list[float]) -> dict[str, int]:
    """{label: step}: each threshold's matched crossing (``eps=0.5``) and the last logged step."""
    out = {}
    for eps, hit in analysis.crossings(metrics, thresholds).items():
        if hit is not None:
            out[f"eps={eps}"] = int(hit["step"])
    out[FINAL] = int(metrics["step"].iloc[-1])
    return out


def chunk_steps(run_dir: Path) -> int:
    """The run's ``exp9.chunk_steps`` (its ``.hydra/config.yaml``; exp9's default without it)."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if path.is_file():
        value = OmegaConf.select(OmegaConf.load(path), "exp9.chunk_steps")
        if value is not None:
            return int(value)
    return Exp9Conf().chunk_steps


def replay(
    run_dir: Path, reg: dict[str, Any], arm: str, cell: str, steps: list[int]
) -> dict[int, dict[str, Any]]:
    """{step: {"theta", "kl", "rho", "signal", "noise"}} of run (arm, cell) at ``steps``."""
    import jax.numpy as jnp

    from prereg.exp9 import model, train
    from prereg.training import checkpoints as ck

    spec = reg["cells"][cell]
    n, m = int(spec["n"]), int(spec["m"])
    lam, form, lr = float(reg["lambdas"][arm]), str(reg["aux"]["form"]), float(reg["lr"])
    log_q = model.make_teacher(n, float(reg["beta"]), int(spec["teacher_seed"]))
    theta0 = model.init_theta(n, m, int(spec["init_seed"]), float(reg["init_scale"]))
    run_chunk = train.make_chunk_runner(log_q, n, m, lam, form, lr)
    chunk, cap = chunk_steps(run_dir), int(reg["step_cap"])
    fresh = train.init_state(jnp.asarray(theta0), lr)

    on_disk: dict[int, Path] = {}
    ckpt_dir = Path(run_dir) / "checkpoints"
    if ckpt_dir.is_dir():
        for path in ckpt_dir.glob("step_*"):
            if ck.is_checkpoint(path):
                on_disk[int(path.name.split("_")[1])] = path
    states: dict[int, Any] = {0: fresh}

    def state_at(pos: int) -> Any:
        if pos not in states:
            flat, _ = ck.load_checkpoint(on_disk[pos])
            states[pos] = ck.unflatten_like(fresh, flat)
        return states[pos]

    out: dict[int, dict[str, Any]] = {}
    for start in sorted({(t // chunk) * chunk for t in steps}):
        pos = max(p for p in [0, *on_disk] if p <= start and p % chunk == 0)
        state = state_at(pos)
        while pos <= start:
            state, met = run_chunk(state, min(chunk, cap - pos))
            if pos == start:
                for t in steps:
                    i = t - pos
                    if 0 <= i < len(met["step"]):
                        out[t] = {"theta": np.asarray(met["theta"][i])} | {
                            k: float(met[k][i]) for k in ("kl", "rho", "signal", "noise")
                        }
            pos += min(chunk, cap - pos)
            states[pos] = state
    return out
