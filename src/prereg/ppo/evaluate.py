"""Deterministic evaluation of a policy on a functional env.

Episode ``i`` of an evaluation starts from ``env.initial(jax.random.PRNGKey(seed_start + i))``
(the other keys the env's methods receive are folded from the same seed and the step
index, so stochastic envs are reproducible too).  The policy acts with its mean
action on observations normalised by the frozen normaliser.  All episodes run
vmapped inside one jitted ``lax.scan`` of ``max_steps`` steps; an episode stops at
its first termination or truncation (or at ``max_steps``) and is frozen afterwards.

Same params, normaliser, env params and seeds give identical outputs.

:func:`place_eval` writes an evaluation's files (``logs/evaluation_seed_<start>.json`` and the
per-episode CSV) without ever replacing a different result.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from prereg.core.atomic import atomic_write_csv, atomic_write_json, read_json
from prereg.core.stats import wilson_interval
from prereg.ppo.config import PPOConf
from prereg.ppo.networks import actor_mean
from prereg.ppo.normalizer import NormalizerState, normalize
from prereg.ppo.trainer import make_action_map

EPISODE_FIELDS = ("seed", "success", "terminal_alignment", "steps", "return")
SUMMARY_FIELDS = ("success_rate", "mean_terminal_alignment", "mean_steps", "mean_return")


class Evaluator:
    """Compiled evaluation of one (env, env_params), reusable across calls.

    ``evaluator(params, normalizer, seed_start, n_seeds) -> (episodes, summary)``:
    ``episodes`` maps each of :data:`EPISODE_FIELDS` to a numpy array of length
    ``n_seeds``; ``summary`` maps :data:`SUMMARY_FIELDS` to Python floats (plus
    ``seed_start`` and ``n_seeds``), ready for ``json.dump``.
    ``terminal_alignment`` comes from ``env.info(state, params)`` at the episode's
    last state (NaN if the env has no ``info``); success from ``info["success"]``
    (or true termination).
    """

    def __init__(
        self,
        env,
        env_params,
        max_steps: int | None = None,
        obs_clip: float = PPOConf.obs_clip,
    ):
        self.env = env
        self.env_params = env_params
        self.max_steps = int(max_steps or getattr(env, "max_episode_steps", 0) or 0)
        if self.max_steps < 1:
            raise ValueError("evaluate: max_steps not given and env has no max_episode_steps")
        self.obs_clip = obs_clip
        self.act_map = make_action_map(env.action_space.low, env.action_space.high)
        self._jit = jax.jit(self._episode_batch)  # retraces (once) per n_seeds

    def _episode_batch(self, params, normalizer: NormalizerState, seeds):
        env, p = self.env, self.env_params
        has_trunc = hasattr(env, "truncated")
        has_info = hasattr(env, "info")

        def info_of(state, term):
            if has_info:
                info = env.info(state, p)
                success = jnp.asarray(info["success"], bool)
                align = jnp.asarray(info.get("terminal_alignment", jnp.nan), jnp.float32)
            else:
                success, align = term, jnp.float32(jnp.nan)
            return success, align

        def one(seed):
            base = jax.random.PRNGKey(seed)
            state = env.initial(base, p)
            obs = env.observation(state, jax.random.fold_in(base, 1), p)
            success0, align0 = info_of(state, jnp.asarray(False))

            def step(carry, t):
                state, obs, done, ret, steps, success, align = carry
                k = jax.random.split(jax.random.fold_in(base, t + 2), 4)
                o = normalize(normalizer, jnp.asarray(obs, jnp.float32).reshape(-1), self.obs_clip)
                action = self.act_map(actor_mean(params, o))
                nxt = env.transition(state, action, k[0], p)
                r = jnp.asarray(env.reward(state, action, nxt, k[1], p), jnp.float32)
                term = jnp.asarray(env.terminal(nxt, k[2], p), bool)
                trunc = jnp.asarray(env.truncated(nxt, p), bool) if has_trunc else False
                ends = term | trunc | (t + 1 >= self.max_steps)
                s_new, a_new = info_of(nxt, term)
                nobs = env.observation(nxt, k[3], p)
                live = ~done
                carry = (
                    jax.tree_util.tree_map(lambda a, b: jnp.where(live, a, b), nxt, state),
                    jnp.where(live, nobs, obs),
                    done | ends,
                    ret + jnp.where(live, r, 0.0),
                    steps + live.astype(jnp.int32),
                    jnp.where(live, s_new, success),
                    jnp.where(live, a_new, align),
                )
                return carry, None

            init = (
                state,
                obs,
                jnp.asarray(False),
                jnp.float32(0.0),
                jnp.int32(0),
                success0,
                align0,
            )
            (_, _, _, ret, steps, success, align), _ = jax.lax.scan(
                step, init, jnp.arange(self.max_steps)
            )
            return success, align, steps, ret

        return jax.vmap(one)(seeds)

    def __call__(self, params, normalizer: NormalizerState, seed_start: int, n_seeds: int):
        n_seeds = int(n_seeds)
        if n_seeds < 1:
            raise ValueError(f"eval.n_seeds must be >= 1, got {n_seeds}")
        seeds = np.arange(int(seed_start), int(seed_start) + n_seeds, dtype=np.int64)
        if seeds[-1] >= 2**31 or seeds[0] < 0:
            raise ValueError("eval seeds must lie in [0, 2**31)")
        out = self._jit(params, normalizer, jnp.asarray(seeds, jnp.int32))
        success, align, steps, ret = (np.asarray(x) for x in jax.device_get(out))
        episodes = {
            "seed": seeds,
            "success": success.astype(bool),
            "terminal_alignment": align.astype(np.float64),
            "steps": steps.astype(np.int64),
            "return": ret.astype(np.float64),
        }
        summary = summarize_episodes(episodes, seed_start)
        return episodes, summary


def summarize_episodes(episodes: dict, seed_start: int) -> dict:
    """The JSON-able summary (:data:`SUMMARY_FIELDS`, seed_start, n_seeds) of ``episodes``.

    Beside ``success_rate`` it gives ``n_success`` and ``success_ci95`` (Wilson 95% interval),
    so every printed rate can say how sure it is (DESIGN section 10).
    """
    n_success = int(np.sum(episodes["success"]))
    n = int(len(episodes["seed"]))
    return {
        "seed_start": int(seed_start),
        "n_seeds": n,
        "success_rate": float(np.mean(episodes["success"])),
        "n_success": n_success,
        "success_ci95": list(wilson_interval(n_success, n)),
        "mean_terminal_alignment": float(np.mean(episodes["terminal_alignment"])),
        "mean_steps": float(np.mean(episodes["steps"])),
        "mean_return": float(np.mean(episodes["return"])),
    }


def evaluate(
    env,
    env_params,
    params,
    normalizer: NormalizerState,
    seed_start: int,
    n_seeds: int,
    max_steps: int | None = None,
):
    """One-off evaluation; build an :class:`Evaluator` to reuse the compiled function."""
    return Evaluator(env, env_params, max_steps)(params, normalizer, seed_start, n_seeds)


def episodes_to_rows(episodes: dict) -> list[dict]:
    """Per-episode records (JSON/CSV friendly) from an ``episodes`` dict."""
    n = len(episodes["seed"])
    return [
        {
            "seed": int(episodes["seed"][i]),
            "success": bool(episodes["success"][i]),
            "terminal_alignment": float(episodes["terminal_alignment"][i]),
            "steps": int(episodes["steps"][i]),
            "return": float(episodes["return"][i]),
        }
        for i in range(n)
    ]


def _as_json(evaluation: dict[str, Any]) -> dict[str, Any]:
    """``evaluation`` as it reads back from its JSON file (NaN/inf are ``null``)."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v
        for k, v in evaluation.items()
    }


def place_eval(
    run_dir: Path, evaluation: dict[str, Any], rows: pd.DataFrame, stem: str
) -> tuple[Path, str]:
    """Write an eval as ``run_dir/logs/<stem>.json`` (+ ``<stem>_episodes.csv``), never over
    a different one: (the file holding it, a note saying what happened).

    If ``<stem>.json`` already holds the same result nothing is written; if it holds another,
    the eval goes beside it as ``<stem>_2.json`` (``_3``, ... : the first free or identical).
    """
    logs, wanted = run_dir / "logs", _as_json(evaluation)
    first = logs / f"{stem}.json"
    for k in itertools.count(1):
        name = stem if k == 1 else f"{stem}_{k}"
        path = logs / f"{name}.json"
        if path.exists():
            try:
                same = read_json(path) == wanted
            except (OSError, ValueError):
                same = False
            if not same:
                continue
            note = f"{path} already holds this result (identical; not rewritten)"
            episodes = logs / f"{name}_episodes.csv"
            if not episodes.exists():
                atomic_write_csv(episodes, rows)
            return path, note
        atomic_write_json(path, evaluation)
        atomic_write_csv(logs / f"{name}_episodes.csv", rows)
        if k == 1:
            return path, f"wrote {path}"
        return path, f"wrote {path} ({first.name} there holds a different result)"
    raise AssertionError("unreachable")
