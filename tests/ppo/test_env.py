"""Tests for MesaDock-v0 (prereg.ppo.env): registration, checker, functional/registered parity,
reward mixing, success logic, random-policy difficulty, jit+vmap."""

from __future__ import annotations

import dataclasses
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import prereg.ppo.env  # noqa: F401  (registers prereg/MesaDock-v0)
from prereg.ppo.env import ENV_ID
from prereg.ppo.env.mesadock import (
    DEFAULT_PARAMS,
    IGTH,
    IGX,
    IGY,
    IHOLD,
    ITH,
    IV,
    IW,
    IX,
    IY,
    MesaDockEnv,
    MesaDockFuncEnv,
    MesaDockParams,
)


@pytest.fixture(scope="module")
def func_env() -> MesaDockFuncEnv:
    return MesaDockFuncEnv()


def _state_at_goal(func_env, key=0, dist=0.0, herr=0.0, speed=0.0, hold=None):
    """Initial state of seed `key`, moved to `dist` from the goal with heading error `herr`,
    having been docked for `hold` steps (default: the full hold_steps)."""
    s = np.array(func_env.initial(jax.random.PRNGKey(key)))
    s[IX], s[IY] = s[IGX] - dist, s[IGY]
    s[ITH] = s[IGTH] - herr
    s[IV] = speed
    s[IHOLD] = DEFAULT_PARAMS.hold_steps if hold is None else hold
    return jnp.asarray(s)


# ---------------------------------------------------------------- registration and checker
def test_make_and_check_env_without_warnings():
    env = gymnasium.make(ENV_ID)
    assert isinstance(env.unwrapped, MesaDockEnv)
    assert env.spec.max_episode_steps == 200
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []
    frame = env.unwrapped.spec.make(render_mode="rgb_array")
    frame.reset(seed=0)
    img = frame.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    env.close()


def test_registration_is_idempotent_and_kwargs_reach_params():
    from prereg.ppo.env import register

    register()
    register()
    env = gymnasium.make(ENV_ID, mixed_lambda=0.9, success_radius=0.2)
    assert env.unwrapped.params.mixed_lambda == 0.9
    assert env.unwrapped.params.success_radius == 0.2
    assert gymnasium.make(ENV_ID).unwrapped.params == DEFAULT_PARAMS


# ---------------------------------------------------------------- functional vs registered
@jax.jit
def _functional_episode(key, actions, params):
    fenv = MesaDockFuncEnv()

    def body(s, a):
        ns = fenv.transition(s, a, None, params)
        info = fenv.info(ns, params)
        out = (
            fenv.observation(ns, None, params),
            fenv.reward(s, a, ns, None, params),
            fenv.terminal(ns, None, params),
            fenv.truncated(ns, params),
            info["success"],
            info["terminal_alignment"],
        )
        return ns, out

    s0 = fenv.initial(key, params)
    _, outs = jax.lax.scan(body, s0, actions)
    return s0, fenv.observation(s0, None, params), outs


@pytest.mark.parametrize("mixed_lambda", [0.0, 0.9])
def test_functional_and_registered_env_agree_for_a_full_episode(mixed_lambda):
    seed = 10007
    params = dataclasses.replace(DEFAULT_PARAMS, mixed_lambda=mixed_lambda)
    # a fixed random action sequence, partly outside the box (both paths clip)
    actions = np.random.default_rng(0).uniform(-1.3, 1.3, size=(200, 2)).astype(np.float32)
    s0, obs0, (f_obs, f_rew, f_term, f_trunc, f_succ, f_align) = jax.device_get(
        _functional_episode(jax.random.PRNGKey(seed), actions, params)
    )

    env = gymnasium.make(ENV_ID, mixed_lambda=mixed_lambda)
    obs, info = env.reset(seed=seed)
    np.testing.assert_array_equal(np.asarray(env.unwrapped.state), s0)
    np.testing.assert_allclose(obs, obs0, atol=1e-6)
    assert obs.dtype == np.float32 and obs in env.observation_space

    for t, a in enumerate(actions):
        obs, rew, term, trunc, info = env.step(a)
        np.testing.assert_allclose(obs, f_obs[t], atol=1e-5, err_msg=f"obs at step {t}")
        assert rew == pytest.approx(float(f_rew[t]), abs=1e-5), f"reward at step {t}"
        assert (term, trunc) == (bool(f_term[t]), bool(f_trunc[t])), f"step {t}"
        assert info["success"] == bool(f_succ[t])
        assert info["terminal_alignment"] == pytest.approx(float(f_align[t]), abs=1e-5)
        if term or trunc:
            break
    assert t == 199 and trunc and not term, "a random episode should be truncated at step 200"
    assert not f_trunc[:199].any() and f_trunc[199]


def test_reset_seed_matches_functional_initial(func_env):
    env = MesaDockEnv()
    for seed in (0, 1, 20000, 2**31 - 1):
        obs, _ = env.reset(seed=seed)
        state = func_env.initial(jax.random.PRNGKey(seed))
        np.testing.assert_array_equal(np.asarray(env.state), np.asarray(state))
        np.testing.assert_allclose(obs, np.asarray(func_env.observation(state, None)), atol=1e-6)
    a, _ = env.reset(seed=5)
    b, _ = env.reset()  # unseeded resets continue the seeded key stream deterministically
    c, _ = env.reset(seed=5)
    d, _ = env.reset()
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, d)
    assert not np.array_equal(a, b)


# ---------------------------------------------------------------- reward mixing
@jax.jit
def _mixing_batch(lam):
    """phase3, sparse and mixed(lam) rewards on 256 transitions, half of which dock."""
    fenv = MesaDockFuncEnv()
    far = jax.vmap(fenv.initial)(jax.random.split(jax.random.PRNGKey(3), 256))
    near = far.at[:, IX].set(far[:, IGX] - 0.02).at[:, IY].set(far[:, IGY])
    near = near.at[:, ITH].set(near[:, IGTH]).at[:, IHOLD].set(DEFAULT_PARAMS.hold_steps - 1)
    states = jnp.concatenate([far[:128], near[128:]])
    actions = jax.random.uniform(jax.random.PRNGKey(4), (256, 2), minval=-1.0, maxval=1.0)
    actions = actions.at[128:].set(0.0)
    nxt = jax.vmap(fenv.transition)(states, actions, None)
    # lambda is a traced leaf of the params pytree, as a jitted trainer may pass it
    params = DEFAULT_PARAMS.replace(mixed_lambda=lam)
    mixed = jax.vmap(lambda s, a, n: fenv.reward(s, a, n, None, params))(states, actions, nxt)
    phase3 = jax.vmap(fenv.reward_phase3)(states, actions, nxt)
    sparse = jax.vmap(fenv.sparse_success)(nxt)
    return phase3, sparse, mixed


def test_reward_mixing_is_linear_between_phase3_and_sparse():
    phase3, sparse, _ = map(np.asarray, _mixing_batch(0.0))
    assert 0 < sparse.sum() < len(sparse), "need both successful and unsuccessful transitions"
    assert not np.allclose(phase3, sparse)
    np.testing.assert_allclose(np.asarray(_mixing_batch(0.0)[2]), phase3, atol=1e-6)
    np.testing.assert_allclose(np.asarray(_mixing_batch(1.0)[2]), sparse, atol=1e-6)
    for lam in (0.3, 0.9, 0.999):
        np.testing.assert_allclose(
            np.asarray(_mixing_batch(lam)[2]), (1 - lam) * phase3 + lam * sparse, atol=1e-5
        )


def test_phase3_components(func_env):
    s = _state_at_goal(func_env, dist=2.0, herr=1.0)
    a = jnp.array([0.0, 0.0])
    # no motion, no action: no progress, no control cost
    assert float(func_env.reward_phase3(s, a, s)) == pytest.approx(0.0, abs=1e-6)
    closer = _state_at_goal(func_env, dist=1.5, herr=1.0)
    assert float(func_env.reward_phase3(s, a, closer)) == pytest.approx(0.5, abs=1e-5)
    # alignment shaping: potential g(d) * cos(herr), g(d) = max(0, 1 - d / align_radius)
    p = DEFAULT_PARAMS
    aligned = _state_at_goal(func_env, dist=2.0, herr=0.0)
    assert p.align_radius < 2.0, "no alignment shaping far from the goal"
    assert float(func_env.reward_phase3(s, a, aligned)) == pytest.approx(0.0, abs=1e-6)
    r0 = p.align_radius / 2
    near, near_aligned = (_state_at_goal(func_env, dist=r0, herr=h) for h in (1.0, 0.0))
    expect = p.w_alignment * 0.5 * (1 - np.cos(1.0))
    assert float(func_env.reward_phase3(near, a, near_aligned)) == pytest.approx(expect, abs=1e-5)
    cost = float(func_env.reward_phase3(s, jnp.array([1.0, -1.0]), s))
    assert cost == pytest.approx(-2 * DEFAULT_PARAMS.w_control, abs=1e-6)
    clipped = float(func_env.reward_phase3(s, jnp.array([5.0, -5.0]), s))
    assert clipped == pytest.approx(cost, abs=1e-6), "actions are clipped to the box"
    done = _state_at_goal(func_env, dist=0.0)
    r = float(func_env.reward_phase3(_state_at_goal(func_env, dist=0.01), a, done))
    expect = p.success_bonus + p.w_distance * 0.01 + p.w_alignment * 0.01 / p.align_radius
    assert r == pytest.approx(expect, abs=1e-4)


# ---------------------------------------------------------------- success / termination
def test_success_at_goal_aligned_and_stopped(func_env):
    p = DEFAULT_PARAMS
    herr = 0.5 * np.arccos(p.success_cos)
    at_goal = _state_at_goal(
        func_env, dist=0.5 * p.success_radius, herr=herr, speed=0.5 * p.success_speed
    )
    assert bool(func_env.terminal(at_goal, None))
    info = func_env.info(at_goal)
    assert bool(info["success"])
    assert float(info["terminal_alignment"]) == pytest.approx(np.cos(herr))
    assert not bool(func_env.truncated(at_goal))

    for bad in (
        dict(dist=0.0, hold=p.hold_steps - 1),  # docked, but not for long enough yet
        dict(dist=5.0),  # far away
        dict(dist=p.success_radius * 1.2),  # just outside the radius
        dict(dist=0.0, herr=np.arccos(p.success_cos) * 1.1),  # misaligned
        dict(dist=0.0, herr=np.pi),  # facing backwards
        dict(dist=0.0, speed=p.success_speed * 1.2),  # moving
        dict(dist=0.0, speed=-p.success_speed * 1.2),  # reversing
    ):
        s = _state_at_goal(func_env, **bad)
        assert not bool(func_env.terminal(s, None)), bad
        assert not bool(func_env.info(s)["success"]), bad


def test_success_needs_hold_steps_of_docking(func_env):
    """Success = docked for hold_steps consecutive steps; passing through the goal resets."""
    p = DEFAULT_PARAMS
    step = jax.jit(func_env.transition)
    s = _state_at_goal(func_env, dist=0.0, hold=0)
    for k in range(int(p.hold_steps)):
        assert not bool(func_env.terminal(s, None)), k
        s = step(s, jnp.zeros(2), None)
        assert float(s[IHOLD]) == k + 1
    assert bool(func_env.terminal(s, None))
    moving = _state_at_goal(func_env, dist=0.0, speed=1.0, hold=p.hold_steps - 1)
    nxt = step(moving, jnp.zeros(2), None)
    assert float(nxt[IHOLD]) == 0 and not bool(func_env.terminal(nxt, None))


def test_initial_states_are_far_and_not_terminal(func_env):
    @jax.jit
    def init(keys):
        states = jax.vmap(func_env.initial)(keys)
        term = jax.vmap(func_env.terminal)(states, None)
        return states, jax.vmap(func_env.distance)(states), term

    states, d, term = jax.device_get(init(jax.random.split(jax.random.PRNGKey(0), 1000)))
    assert d.min() >= DEFAULT_PARAMS.goal_dist_min - 1e-5
    assert d.max() <= DEFAULT_PARAMS.goal_dist_max + 1e-5
    assert d.max() - d.min() > 3.5 and np.ptp(states[:, IGTH]) > 6.0  # goals really are random
    assert not term.any()


def test_truncation_at_200_steps(func_env):
    step = jax.jit(func_env.transition)
    s = func_env.initial(jax.random.PRNGKey(0))
    for _ in range(199):
        s = step(s, jnp.zeros(2), None)
    assert not bool(func_env.truncated(s))
    s = step(s, jnp.zeros(2), None)
    assert bool(func_env.truncated(s))


def _dock_policy(s):
    """Scripted controller (reads the state): reverse into the dock along its axis.

    The target heading points back towards the start, so the vehicle starts in front of the
    dock: it pulls forward (heading = target heading) until there is room, then reverses in,
    steering onto the dock's axis. The sign of the speed is the mode's hysteresis."""
    dx, dy = s[IX] - s[IGX], s[IY] - s[IGY]
    c, sn = jnp.cos(s[IGTH]), jnp.sin(s[IGTH])
    gx, gy = c * dx + sn * dy, -sn * dx + c * dy  # vehicle in the goal's frame
    phi = jnp.arctan2(jnp.sin(s[ITH] - s[IGTH]), jnp.cos(s[ITH] - s[IGTH]))
    reverse_in = jnp.where(s[IV] < 0, gx > 0.9 * jnp.abs(gy) - 0.3, gx > 0.8 * jnp.abs(gy) + 0.5)
    psi = jnp.where(reverse_in, jnp.clip(jnp.arctan(1.5 * gy), -1.2, 1.2), 0.0)
    v_dock = jnp.sign(gx) * jnp.minimum(jnp.sqrt(jnp.abs(gx)), jnp.abs(gx))  # brake at 0.5 m/s^2
    v_target = jnp.where(reverse_in, jnp.clip(-v_dock, -3.0, 1.0), 2.0)
    thrust = jnp.clip(3.0 * (v_target - s[IV]), -1, 1)
    err = jnp.arctan2(jnp.sin(psi - phi), jnp.cos(psi - phi))
    torque = jnp.clip(6.0 * err - 2.0 * s[IW], -1, 1)
    return jnp.stack([thrust, torque])


def test_scripted_controller_can_dock(func_env):
    """The task is solvable within 200 steps (the controller docks about 96% of episodes)."""

    def run(key):
        def body(c, _):
            s, done = c
            ns = func_env.transition(s, _dock_policy(s), None)
            ns = jnp.where(done, s, ns)
            return (ns, done | func_env.terminal(ns, None)), None

        (s, done), _ = jax.lax.scan(body, (func_env.initial(key), jnp.array(False)), None, 200)
        return done

    done = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(1), 64))
    assert np.asarray(done).mean() > 0.9


def test_registered_env_terminates_on_success():
    env = gymnasium.make(ENV_ID, mixed_lambda=0.5)
    env.reset(seed=0)  # an episode the scripted controller docks
    policy = jax.jit(_dock_policy)
    for _ in range(200):
        obs, rew, term, trunc, info = env.step(np.asarray(policy(env.unwrapped.state)))
        if term or trunc:
            break
    assert term and not trunc and info["success"]
    assert info["terminal_alignment"] > DEFAULT_PARAMS.success_cos
    assert info["distance"] < DEFAULT_PARAMS.success_radius
    assert rew > 0.5 * DEFAULT_PARAMS.success_bonus  # (1 - lambda) * (progress + bonus) + lambda


@jax.jit
def _random_successes(key, params, gaussian):
    """Success flags of 2000 random-policy episodes (uniform in the box, or N(0, 1) clipped as an
    untrained PPO policy with log_std 0 would act)."""
    fenv = MesaDockFuncEnv()
    T, n = fenv.max_episode_steps, 2000
    k0, k1 = jax.random.split(key)
    noise = jax.random.uniform(k1, (T, n, 2), minval=-1.0, maxval=1.0)
    # N(0, 1) by inverse CDF of the same uniforms (keeps to one RNG call: quick to compile)
    normal = jnp.sqrt(2.0) * jax.scipy.special.erfinv(jnp.clip(noise, -0.999999, 0.999999))
    actions = jnp.where(gaussian, normal, noise)
    s0 = jax.vmap(lambda k: fenv.initial(k, params))(jax.random.split(k0, n))

    def body(c, a):
        s, done = c
        ns = jax.vmap(lambda s_, a_: fenv.transition(s_, a_, None, params))(s, a)
        ns = jnp.where(done[:, None], s, ns)
        return (ns, done | jax.vmap(lambda x: fenv.terminal(x, None, params))(ns)), None

    (_, done), _ = jax.lax.scan(body, (s0, jnp.zeros(n, bool)), actions)
    return done


@pytest.mark.parametrize("gaussian", [False, True])
def test_random_policy_essentially_never_succeeds(gaussian):
    rate = float(np.mean(_random_successes(jax.random.PRNGKey(7), DEFAULT_PARAMS, gaussian)))
    assert rate < 0.005


def test_random_policy_check_can_fail():
    """With a huge success region the same measurement does report success."""
    easy = DEFAULT_PARAMS.replace(
        goal_dist_min=0.5,
        goal_dist_max=1.0,
        success_radius=1.0,
        success_cos=-1.0,
        success_speed=10.0,
    )
    assert float(np.mean(_random_successes(jax.random.PRNGKey(7), easy, False))) > 0.05


# ---------------------------------------------------------------- jit + vmap over 64 envs
def test_jit_vmap_64_envs(func_env):
    n = 64
    p = DEFAULT_PARAMS

    @jax.jit
    def run(key, params: MesaDockParams):
        k0, k1 = jax.random.split(key)
        s = jax.vmap(func_env.initial, in_axes=(0, None))(jax.random.split(k0, n), params)

        def body(s, a):
            ns = jax.vmap(func_env.transition, in_axes=(0, 0, None, None))(s, a, None, params)
            o = jax.vmap(func_env.observation, in_axes=(0, None, None))(ns, None, params)
            r = jax.vmap(func_env.reward, in_axes=(0, 0, 0, None, None))(s, a, ns, None, params)
            d = jax.vmap(func_env.terminal, in_axes=(0, None, None))(ns, None, params)
            tr = jax.vmap(func_env.truncated, in_axes=(0, None))(ns, params)
            info = jax.vmap(func_env.info, in_axes=(0, None))(ns, params)
            return ns, (o, r, d, tr, info["terminal_alignment"])

        actions = jax.random.uniform(k1, (128, n, 2), minval=-1.0, maxval=1.0)
        return jax.lax.scan(body, s, actions)

    s, (o, r, d, tr, al) = run(jax.random.PRNGKey(0), p)
    assert s.shape == (n, func_env.state_dim)
    assert o.shape == (128, n, func_env.obs_dim) and o.dtype == jnp.float32
    assert r.shape == d.shape == tr.shape == al.shape == (128, n)
    assert r.dtype == jnp.float32 and d.dtype == jnp.bool_
    o = np.asarray(o)
    assert np.isfinite(o).all() and np.isfinite(np.asarray(r)).all()
    space = func_env.observation_space
    assert (o >= space.low).all() and (o <= space.high).all()
    # the batched path equals the single-env path
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    batched = jax.vmap(func_env.observation)(jax.vmap(func_env.initial)(keys), None)
    single = func_env.observation(func_env.initial(keys[3]), None)
    np.testing.assert_allclose(np.asarray(batched[3]), np.asarray(single), atol=1e-6)
