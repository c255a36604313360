"""The make_vec rollout backend: Pendulum-v1, validation, and next-step autoreset bookkeeping."""

from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from prereg.ppo.gym_backend import GymTrainer, validate_env_id
from prereg.ppo.trainer import METRIC_NAMES, PPOConfig

CFG = PPOConfig(num_envs=2, num_steps=12, update_epochs=1, num_minibatches=2, tier="small")


class AlternatingEnv(gymnasium.Env):
    """Reward 1 per step; even-numbered episodes terminate (success) after 3 steps, odd ones
    run into the registered 4-step time limit.  Records the actions it receives."""

    observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = spaces.Box(-2.0, 2.0, (1,), np.float32)

    def __init__(self):
        self.episode = -1
        self.t = 0
        self.actions = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return np.array([100.0 * self.episode], np.float32), {}

    def step(self, action):
        self.actions.append(float(np.asarray(action).reshape(-1)[0]))
        self.t += 1
        terminated = self.episode % 2 == 0 and self.t == 3
        obs = np.array([100.0 * self.episode + self.t], np.float32)
        return obs, 1.0, terminated, False, {"success": terminated}


ALT_ID = "prereg_test/Alternating-v0"
if ALT_ID not in gymnasium.registry:
    gymnasium.register(ALT_ID, entry_point=AlternatingEnv, max_episode_steps=4)


def test_validation_messages():
    with pytest.raises(ValueError, match=r"env.id='NoSuchEnv-v0' is not a registered") as e:
        validate_env_id("NoSuchEnv-v0")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"env.id='CartPole-v1' has action space Discrete"):
        GymTrainer("CartPole-v1", CFG)
    obs_space, act_space = validate_env_id("Pendulum-v1")
    assert isinstance(act_space, spaces.Box) and obs_space.shape == (3,)


def test_next_step_autoreset_bookkeeping():
    tr = GymTrainer(ALT_ID, CFG)
    state = tr.init(0)
    batch, last_value, _, obs, _, (n_fin, ret_sum, n_succ) = tr._rollout(state)
    # per sub-env: ep0 t=0..2 (terminated at 2), reset step 3, ep1 t=4..7 (truncated at 7),
    # reset step 8, ep2 t=9..11 (terminated at 11)
    valid = np.array([1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1], np.float32)
    done = np.array([0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1], bool)
    trunc = np.zeros(12, bool)
    trunc[7] = True
    for i in range(2):
        np.testing.assert_array_equal(batch.valid[:, i], valid)
        np.testing.assert_array_equal(batch.done[:, i], done)
        np.testing.assert_array_equal(batch.truncated[:, i], trunc)
        np.testing.assert_array_equal(batch.reward[:, i], valid)  # reward 1 on real steps only
        # the truncated episode bootstraps from V(its final obs), valued at the reset step
        assert batch.final_value[7, i] == batch.value[8, i]
        np.testing.assert_array_equal(batch.final_value[-1], last_value)
    assert (n_fin, ret_sum, n_succ) == (6, 20.0, 4)  # returns 3, 4, 3 per sub-env
    # actions reach the env inside its Box bounds (rescaled from the policy's [-1, 1])
    acts = np.concatenate([np.asarray(e.unwrapped.actions) for e in tr.envs.envs])
    assert acts.size == 2 * 10 and np.all(np.abs(acts) <= 2.0)
    tr.close()


def test_pendulum_few_updates():
    cfg = PPOConfig(num_envs=4, num_steps=50, update_epochs=2, num_minibatches=4, tier="small")
    tr = GymTrainer("Pendulum-v1", cfg)
    state, m = tr.run_chunk(tr.init(0), 5)  # 250 steps per env: one 200-step episode each
    tr.close()
    assert set(m) == set(METRIC_NAMES)
    for k in METRIC_NAMES:
        assert m[k].shape == (5,), k
        if k in ("episode_return", "success_rate"):
            assert np.isnan(m[k][:3]).all() and np.isfinite(m[k][3]), (k, m[k])
        else:
            assert np.all(np.isfinite(m[k])), (k, m[k])
    assert -2000 < m["episode_return"][3] < 0
    assert m["success_rate"][3] == 0.0  # Pendulum never terminates
    np.testing.assert_array_equal(m["env_steps"], 200 * np.arange(1, 6))
    assert int(state.update) == 5
    # 1 action dim: entropy = 0.5 ln(2 pi e) + log_std
    np.testing.assert_allclose(m["entropy"], 1.4189385 + m["log_std"], rtol=1e-5)


def test_gym_evaluator_deterministic_pendulum():
    from prereg.ppo.gym_backend import GymEvaluator
    from prereg.ppo.normalizer import init_normalizer

    tr_params = _random_actor(3, 1)
    ev = GymEvaluator("Pendulum-v1", 10.0)
    a = ev(tr_params, init_normalizer(3), 5, 2)
    b = ev(tr_params, init_normalizer(3), 5, 2)
    assert json.dumps(a[1]) == json.dumps(b[1])  # NaN alignment: compare as JSON
    np.testing.assert_array_equal(a[0]["steps"], [200, 200])
    assert not a[0]["success"].any() and np.isnan(a[0]["terminal_alignment"]).all()


def test_gym_evaluator_matches_functional_eval_on_mesadock():
    envpkg = pytest.importorskip("prereg.ppo.env")
    from prereg.ppo.evaluate import Evaluator
    from prereg.ppo.gym_backend import GymEvaluator
    from prereg.ppo.normalizer import init_normalizer

    func_env = envpkg.MesaDockFuncEnv()
    params = _random_actor(func_env.obs_dim, 2, seed=3)
    norm = init_normalizer(func_env.obs_dim)
    ep_f, sum_f = Evaluator(func_env, func_env.default_params)(params, norm, 20000, 1)
    ep_g, sum_g = GymEvaluator(envpkg.ENV_ID, 10.0)(params, norm, 20000, 1)
    np.testing.assert_array_equal(ep_f["steps"], ep_g["steps"])
    np.testing.assert_array_equal(ep_f["success"], ep_g["success"])
    np.testing.assert_allclose(ep_f["return"], ep_g["return"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        ep_f["terminal_alignment"], ep_g["terminal_alignment"], rtol=1e-5, atol=1e-6
    )


def _random_actor(obs_dim, action_dim, seed=0):
    rng = np.random.default_rng(seed)
    actor = {
        "hidden_0": {
            "kernel": rng.normal(size=(obs_dim, 16)).astype(np.float32),
            "bias": np.zeros(16, np.float32),
        },
        "out": {
            "kernel": rng.normal(size=(16, action_dim)).astype(np.float32),
            "bias": np.zeros(action_dim, np.float32),
        },
    }
    return {"actor": actor, "log_std": np.zeros(action_dim, np.float32)}
