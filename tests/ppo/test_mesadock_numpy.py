"""The numpy port of MesaDock-v0 (benchmarks' SB3 anchor) against the JAX env, the reference:
start states, transitions, observations, rewards and the docking logic agree to float32
tolerance over random rollouts and near-docked states. No Stable-Baselines3 needed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.utils.env_checker import check_env

from prereg.ppo.env import mesadock_numpy as npenv
from prereg.ppo.env.mesadock import IGTH, IHOLD, ITH, MesaDockFuncEnv

ENV = MesaDockFuncEnv(mixed_lambda=0.3)  # both reward terms count
P = ENV.default_params
ATOL = 2e-5  # float32: a few ulps of the O(10) positions


def _close_states(a: np.ndarray, b: np.ndarray) -> None:
    """Equal to float32 tolerance; angles compared on the circle (a wrap may land either side)."""
    diff = np.abs(a - b)
    for i in (ITH, IGTH):
        diff[..., i] = np.abs(np.angle(np.exp(1j * (a[..., i] - b[..., i]))))
    assert np.max(diff) <= ATOL, np.unravel_index(np.argmax(diff), diff.shape)


def _jax_rollout(n_envs: int, steps: int, seed: int):
    """States, actions, rewards, observations of random-action episodes in the JAX env."""
    keys = jax.random.split(jax.random.PRNGKey(seed), n_envs + 1)
    state = jax.vmap(lambda k: ENV.initial(k, P))(keys[1:])
    actions = jax.random.uniform(keys[0], (steps, n_envs, 2), jnp.float32, -1.3, 1.3)

    def step(s, a):
        ns = ENV.transition(s, a, None, P)
        return ns, (s, ns, ENV.reward(s, a, ns, None, P), ENV.observation(ns, None, P))

    _, out = jax.lax.scan(step, state, actions)
    return [np.asarray(x) for x in (*out, actions)], np.asarray(keys[1:])


def test_start_states_match_for_the_same_uniforms() -> None:
    for seed in range(20):
        key = jax.random.PRNGKey(seed)
        u = np.asarray(jax.random.uniform(key, (4,), jnp.float32))
        _close_states(npenv.initial(u, P), np.asarray(ENV.initial(key, P)))


def test_random_rollouts_match_step_by_step() -> None:
    (s, ns, r, obs, a), _ = _jax_rollout(n_envs=64, steps=200, seed=0)
    _close_states(npenv.transition(s, a, P), ns)
    np.testing.assert_allclose(npenv.observation(ns, P), obs, atol=ATOL, rtol=0)
    np.testing.assert_allclose(npenv.reward(s, a, ns, P), r, atol=ATOL, rtol=0)
    assert npenv.transition(s, a, P).dtype == npenv.observation(ns, P).dtype == np.float32


def test_near_docked_states_match_including_hold_and_success() -> None:
    rng = np.random.default_rng(1)
    n = 4096
    s = np.zeros((n, len(npenv.initial(np.zeros(4), P))), np.float32)
    s[:, 5:7] = rng.uniform(-1, 1, (n, 2))
    s[:, 0:2] = s[:, 5:7] + rng.normal(0, 0.02, (n, 2))  # within ~success_radius of the goal
    s[:, IGTH] = rng.uniform(-np.pi, np.pi, n)
    s[:, ITH] = s[:, IGTH] + rng.normal(0, 0.08, n)
    s[:, 2] = rng.normal(0, 0.04, n)  # speed around success_speed
    s[:, 4] = rng.normal(0, 0.05, n)
    s[:, 8] = rng.integers(0, 200, n)
    s[:, IHOLD] = rng.integers(15, 25, n)
    a = rng.uniform(-0.2, 0.2, (n, 2)).astype(np.float32)
    jns = np.asarray(ENV.transition(jnp.asarray(s), jnp.asarray(a), None, P))
    ns = npenv.transition(s, a, P)
    _close_states(ns, jns)
    success = npenv.success(ns, P)
    assert 0 < success.sum() < n  # the test reaches both sides of the success test
    np.testing.assert_array_equal(success, np.asarray(ENV.success(jnp.asarray(jns), P)))
    r = np.asarray(ENV.reward(jnp.asarray(s), jnp.asarray(a), jnp.asarray(jns), None, P))
    np.testing.assert_allclose(npenv.reward(s, a, ns, P), r, atol=ATOL, rtol=0)


def test_the_numpy_env_is_a_valid_gymnasium_env_with_the_same_spaces() -> None:
    env = npenv.MesaDockNumpyEnv()
    check_env(env, skip_render_check=True)
    assert env.observation_space == MesaDockFuncEnv.observation_space
    obs, _ = env.reset(seed=3)
    steps, done, truncated = 0, False, False
    while not (done or truncated):
        obs, r, done, truncated, info = env.step(env.action_space.sample())
        steps += 1
    assert truncated and steps == 200 and obs.dtype == np.float32
