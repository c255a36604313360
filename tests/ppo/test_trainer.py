"""PPO trainer on a tiny functional env defined here (a 2-D point that must reach the origin).

``PointMassEnv`` is also used by the other tests in this folder (loaded by file path).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium import spaces

from prereg.ppo.networks import TIERS, gaussian_entropy, hidden_sizes, init_params
from prereg.ppo.trainer import METRIC_NAMES, PPOConfig, make_trainer


class PointState(NamedTuple):
    pos: jax.Array  # f32[2]
    t: jax.Array  # int32 step counter


class PointMassEnv:
    """FuncEnv-style toy: velocity-controlled point, start in [-1,1]^2, goal = origin.

    Same extra methods as MesaDock: truncated(state, params), info(state, params).
    """

    obs_dim = 2
    action_dim = 2
    max_episode_steps = 40
    observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    radius = 0.15

    def initial(self, rng, params=None):
        return PointState(jax.random.uniform(rng, (2,), minval=-1.0, maxval=1.0), jnp.int32(0))

    def transition(self, state, action, rng, params=None):
        return PointState(state.pos + 0.1 * jnp.clip(action, -1.0, 1.0), state.t + 1)

    def observation(self, state, rng, params=None):
        return state.pos

    def reward(self, state, action, next_state, rng, params=None):
        progress = jnp.linalg.norm(state.pos) - jnp.linalg.norm(next_state.pos)
        bonus = self.terminal(next_state, rng, params).astype(jnp.float32)
        return 10.0 * progress + bonus - 0.01 * jnp.sum(action**2)

    def terminal(self, state, rng, params=None):
        return jnp.linalg.norm(state.pos) < self.radius

    def truncated(self, state, params=None):
        return state.t >= self.max_episode_steps

    def info(self, state, params=None):
        d = jnp.linalg.norm(state.pos)
        return {"success": d < self.radius, "terminal_alignment": jnp.cos(d), "distance": d}


TINY = dict(num_envs=8, num_steps=32, update_epochs=4, num_minibatches=4, tier="small")


@functools.cache
def tiny_trainer():
    """One shared toy trainer (compiles are the suite's main cost); chunk sizes 1 and 2 only."""
    return make_trainer(PointMassEnv(), None, PPOConfig(**TINY))


def test_entropy_formula():
    # seed 003's table: entropy 2.28 at log_std -0.28, 2.76 at -0.04, 2 action dims
    assert float(gaussian_entropy(jnp.full((2,), -0.28))) == pytest.approx(2.2579 + 0.02, abs=1e-3)
    assert float(gaussian_entropy(jnp.full((2,), -0.04))) == pytest.approx(2.7579, abs=1e-3)
    expect = 2 * (0.5 * math.log(2 * math.pi * math.e) - 0.28)
    assert float(gaussian_entropy(jnp.array([-0.28, -0.28]))) == pytest.approx(expect, rel=1e-6)


def test_tiers_and_init_shapes():
    assert TIERS == {"small": (64, 64), "medium": (128, 128), "large": (256, 256, 256)}
    for tier, sizes in TIERS.items():  # eval_shape: no compile
        p = jax.eval_shape(lambda k, t=tier: init_params(k, 5, 2, t), jax.random.PRNGKey(0))
        assert hidden_sizes(p["actor"]) == sizes == hidden_sizes(p["critic"])
        assert p["actor"]["out"]["kernel"].shape == (sizes[-1], 2)
        assert p["critic"]["out"]["kernel"].shape == (sizes[-1], 1)
        assert p["log_std"].shape == (2,)


@pytest.mark.parametrize(
    "kw, key",
    [
        (dict(lr=-1.0), "ppo.lr"),
        (dict(clip_range=0.0), "ppo.clip_range"),
        (dict(gamma=1.5), "ppo.gamma"),
        (dict(num_minibatches=3), "ppo.num_minibatches"),
        (dict(tier="huge"), "tier: unknown option 'huge'"),
        (dict(max_grad_norm=0.0), "ppo.max_grad_norm"),
        (dict(adam_eps=0.0), "ppo.adam_eps"),
        (dict(obs_clip=-1.0), "ppo.obs_clip"),
        (dict(log_std_init=3.0), "ppo.log_std_init"),
    ],
)
def test_config_validation(kw, key):
    with pytest.raises(ValueError, match=key):
        PPOConfig(**kw)


def test_metrics_finite_every_column():
    tr = tiny_trainer()
    s0 = tr.init(0)
    np.testing.assert_array_equal(s0.params["log_std"], [0.0, 0.0])  # log_std init 0
    state, m = tr.run_chunk(s0, 2)
    assert set(m) == set(METRIC_NAMES)
    for k in METRIC_NAMES:
        assert m[k].shape == (2,), k
        if k in ("episode_return", "success_rate"):
            # NaN by design in an update where no episode ended (the first 32 steps may end
            # none); by step 64 every env has passed the 40-step limit, so update 2 has some
            assert np.isfinite(m[k][1]), (k, m[k])
        else:
            assert np.all(np.isfinite(m[k])), (k, m[k])
    np.testing.assert_array_equal(m["update"], [1, 2])
    np.testing.assert_array_equal(m["env_steps"], [256, 512])
    assert int(state.env_steps) == 512 and int(state.update) == 2
    # the entropy column is the Gaussian's, from the log_std column (2 action dims)
    np.testing.assert_allclose(
        m["entropy"], 2 * (0.5 * math.log(2 * math.pi * math.e) + m["log_std"]), rtol=1e-5
    )
    rate = m["success_rate"][np.isfinite(m["success_rate"])]
    assert len(rate) and np.all((rate >= 0) & (rate <= 1))
    assert np.all(m["clipfrac"] >= 0) and np.all(m["value_loss"] >= 0)
    assert np.all(m["approx_kl"] > -1e-6)


def test_chunked_equals_unchunked_bitwise():
    tr = tiny_trainer()
    s0 = tr.init(3)
    a, ma = tr.run_chunk(s0, 2)
    a, ma2 = tr.run_chunk(a, 2)
    b = s0
    mb = []
    for _ in range(4):
        b, m = tr.run_chunk(b, 1)
        mb.append(m)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for k in METRIC_NAMES:
        np.testing.assert_array_equal(
            np.concatenate([ma[k], ma2[k]]), np.concatenate([m[k] for m in mb]), err_msg=k
        )
    assert set(tr._chunk_fns) >= {1, 2}


def test_seed_changes_run():
    tr = tiny_trainer()
    a, _ = tr.run_chunk(tr.init(0), 1)
    b, _ = tr.run_chunk(tr.init(1), 1)
    assert not np.array_equal(
        a.params["critic"]["out"]["kernel"], b.params["critic"]["out"]["kernel"]
    )
    assert not np.array_equal(a.obs, b.obs)


def test_learns_on_toy_env():
    tr = tiny_trainer()
    state, ms = tr.init(0), []
    for _ in range(12):  # 24 updates x 256 steps
        state, m = tr.run_chunk(state, 2)
        ms.append(m)
    m = {k: np.concatenate([x[k] for x in ms]) for k in METRIC_NAMES}
    ret_first, ret_last = np.nanmean(m["episode_return"][:4]), np.nanmean(m["episode_return"][-4:])
    assert ret_last > ret_first + 2.0, (ret_first, ret_last)
    assert np.nanmean(m["success_rate"][-4:]) > 0.8, m["success_rate"]


def test_mesadock_smoke():
    mesadock = pytest.importorskip("prereg.ppo.env.mesadock")
    env = mesadock.MesaDockFuncEnv()
    cfg = PPOConfig(num_envs=4, num_steps=16, update_epochs=1, num_minibatches=2, tier="small")
    tr = make_trainer(env, env.default_params, cfg)
    state, m = tr.run_chunk(tr.init(0), 1)
    for k in METRIC_NAMES:
        if k not in ("episode_return", "success_rate"):  # no episode ends in 16 steps
            assert np.all(np.isfinite(m[k])), (k, m[k])
    assert state.obs.shape == (4, env.obs_dim)


def test_env_step_flags_and_autoreset():
    """EnvFns.step (what the rollout vmaps): termination vs truncation, final obs, reset."""
    from prereg.ppo.trainer import EnvFns

    fns = EnvFns(PointMassEnv(), None)
    key = jax.random.PRNGKey(0)
    reset_state, reset_obs = fns.reset(jax.random.split(key, 5)[-1])
    # time limit: truncated only, bootstrap obs is the post-transition one, then reset
    far = PointState(jnp.array([0.9, 0.9]), jnp.int32(PointMassEnv.max_episode_steps - 1))
    s, obs, final_obs, r, done, trunc, success = fns.step(far, jnp.zeros(2), key, jnp.int32(39))
    assert bool(done) and bool(trunc) and not bool(success)
    np.testing.assert_allclose(final_obs, [0.9, 0.9])
    np.testing.assert_array_equal(obs, reset_obs)
    assert int(s.t) == 0
    # success: terminated, not truncated, even on the last allowed step
    near = PointState(jnp.array([0.2, 0.0]), jnp.int32(PointMassEnv.max_episode_steps - 1))
    s, obs, final_obs, r, done, trunc, success = fns.step(near, jnp.array([-1.0, 0.0]), key, 39)
    assert bool(done) and not bool(trunc) and bool(success)
    np.testing.assert_allclose(final_obs, [0.1, 0.0], atol=1e-6)
    assert float(r) == pytest.approx(10 * 0.1 + 1.0 - 0.01, abs=1e-5)
    # mid-episode: no reset
    mid = PointState(jnp.array([0.9, 0.9]), jnp.int32(3))
    s, obs, final_obs, r, done, trunc, success = fns.step(mid, jnp.array([2.0, 0.0]), key, 3)
    assert not bool(done) and not bool(trunc)
    np.testing.assert_allclose(obs, [1.0, 0.9], atol=1e-6)  # action clipped to 1 by the env
    assert int(s.t) == 4
