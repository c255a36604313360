"""Deterministic evaluation: reproducible, and equal to a step-by-step numpy replay."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import sibling_module

from prereg.ppo.evaluate import EPISODE_FIELDS, SUMMARY_FIELDS, Evaluator, episodes_to_rows
from prereg.ppo.normalizer import NormalizerState
from prereg.ppo.policy import export_policy, load_policy


def _sibling(name):
    """tests/ppo/<name>.py (toy env, shared trainer)."""
    return sibling_module(__file__, name)


def homing_params(gain=-5.0):
    """A hand-made small-tier actor whose mean action points at the origin (toy env)."""
    eye = lambda n, m, s: jnp.zeros((n, m)).at[jnp.arange(2), jnp.arange(2)].set(s)  # noqa: E731
    actor = {
        "hidden_0": {"kernel": eye(2, 64, 0.5), "bias": jnp.zeros(64)},
        "hidden_1": {"kernel": eye(64, 64, 1.0), "bias": jnp.zeros(64)},
        "out": {"kernel": eye(64, 2, gain), "bias": jnp.zeros(2)},
    }
    return {"actor": actor, "log_std": jnp.zeros(2)}  # eval and export need no critic


NORM = NormalizerState(
    count=jnp.float32(100.0), mean=jnp.array([0.05, -0.05]), var=jnp.array([0.8, 1.2])
)


@pytest.fixture(scope="module")
def setup():
    env = _sibling("test_trainer").PointMassEnv()
    return env, Evaluator(env, None)


def test_deterministic_and_jsonable(setup):
    env, ev = setup
    params = homing_params()
    ep1, sum1 = ev(params, NORM, 100, 6)
    ep2, sum2 = ev(params, NORM, 100, 6)
    doc1 = json.dumps({"summary": sum1, "episodes": episodes_to_rows(ep1)}, sort_keys=True)
    doc2 = json.dumps({"summary": sum2, "episodes": episodes_to_rows(ep2)}, sort_keys=True)
    assert doc1 == doc2
    assert set(ep1) == set(EPISODE_FIELDS) and set(SUMMARY_FIELDS) <= set(sum1)
    np.testing.assert_array_equal(ep1["seed"], np.arange(100, 106))
    assert sum1["success_rate"] == 1.0  # the homing policy docks from every start
    assert np.all((ep1["steps"] >= 1) & (ep1["steps"] < env.max_episode_steps))
    assert len(set(ep1["steps"].tolist())) > 1  # episodes end at different steps
    # a policy that stays put never succeeds (barring a lucky start) and runs to truncation
    ep3, sum3 = ev(homing_params(gain=0.0), NORM, 100, 6)
    np.testing.assert_array_equal(ep3["steps"][~ep3["success"]], env.max_episode_steps)
    assert sum3["success_rate"] < 1.0


def test_matches_numpy_replay(setup, tmp_path):
    env, ev = setup
    params = homing_params(gain=-3.0)
    episodes, summary = ev(params, NORM, 7, 3)
    policy = load_policy(export_policy(tmp_path / "pi.npz", params, NORM, "small", {"k": 1}))
    assert policy.meta == {"k": 1} and policy.tier == "small"
    for i, seed in enumerate(range(7, 10)):
        state = env.initial(jax.random.PRNGKey(seed))
        ret, steps, success = 0.0, 0, False
        for _ in range(env.max_episode_steps):
            a = jnp.asarray(policy(np.asarray(env.observation(state, None))))
            nxt = env.transition(state, a, None)
            ret += float(env.reward(state, a, nxt, None))
            steps += 1
            state = nxt
            success = bool(env.terminal(state, None))
            if success or bool(env.truncated(state)):
                break
        assert episodes["steps"][i] == steps
        assert bool(episodes["success"][i]) == success
        assert episodes["return"][i] == pytest.approx(ret, abs=1e-4)
        assert episodes["terminal_alignment"][i] == pytest.approx(
            float(env.info(state)["terminal_alignment"]), abs=1e-6
        )
    assert summary["mean_steps"] == pytest.approx(np.mean(episodes["steps"]))


def test_seed_start_and_n_seeds(setup):
    _, ev = setup
    params = homing_params()
    ep_a, _ = ev(params, NORM, 100, 6)
    ep_b, _ = ev(params, NORM, 103, 3)
    for k in EPISODE_FIELDS:  # episode i depends only on its own seed
        np.testing.assert_array_equal(ep_a[k][3:], ep_b[k], err_msg=k)
    with pytest.raises(ValueError, match="n_seeds"):
        ev(params, NORM, 0, 0)
