"""MesaDock-v0 in numpy: the same dynamics, observation, reward and termination as
:mod:`prereg.ppo.env.mesadock`, for CPU learners that step one env at a time (Stable-Baselines3
in ``benchmarks/ppo_throughput.py``), where one jitted JAX call per step would measure the call,
not the learner.

The functions mirror :class:`~prereg.ppo.env.mesadock.MesaDockFuncEnv`'s methods on float32
arrays (batch = leading axes), reading the same :class:`MesaDockParams`; the JAX env stays the
reference: ``tests/ppo/test_mesadock_numpy.py`` checks them against it to float32 tolerance over
random rollouts. :class:`MesaDockNumpyEnv` is the ``gymnasium.Env``: its ``reset(seed=s)`` draws
the start with numpy's generator (the same distribution as ``MesaDockFuncEnv.initial``, not the
same episode as the JAX env's seed ``s``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from prereg.ppo.env.mesadock import (
    _OBS_HIGH,
    _OBS_LOW,
    DEFAULT_PARAMS,
    IGTH,
    IGX,
    IGY,
    IHOLD,
    IT,
    ITH,
    IV,
    IW,
    IX,
    IY,
    MAX_EPISODE_STEPS,
    STATE_DIM,
    MesaDockFuncEnv,
    MesaDockParams,
)

F32 = np.float32


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Wrap to [-pi, pi), as the JAX env does."""
    return (np.mod(a + F32(np.pi), F32(2.0 * np.pi)) - F32(np.pi)).astype(F32)


def initial(u: np.ndarray, p: MesaDockParams = DEFAULT_PARAMS) -> np.ndarray:
    """The start state from 4 uniforms in [0, 1) (the JAX env draws them from its key)."""
    u = np.asarray(u, F32)
    heading = (F32(2.0) * u[0] - F32(1.0)) * F32(np.pi)
    dist = F32(p.goal_dist_min) + F32(p.goal_dist_max - p.goal_dist_min) * u[1]
    bearing = (F32(2.0) * u[2] - F32(1.0)) * F32(np.pi)
    goal_heading = wrap_angle(
        bearing + F32(np.pi) + (F32(2.0) * u[3] - F32(1.0)) * F32(p.heading_spread)
    )
    state = np.zeros(STATE_DIM, F32)
    state[ITH], state[IGTH] = heading, goal_heading
    state[IGX], state[IGY] = dist * np.cos(bearing), dist * np.sin(bearing)
    return state


def distance(state: np.ndarray) -> np.ndarray:
    dx = state[..., IGX] - state[..., IX]
    dy = state[..., IGY] - state[..., IY]
    return np.sqrt(dx * dx + dy * dy)


def alignment(state: np.ndarray) -> np.ndarray:
    return np.cos(state[..., IGTH] - state[..., ITH])


def docked(state: np.ndarray, p: MesaDockParams = DEFAULT_PARAMS) -> np.ndarray:
    return (
        (distance(state) < p.success_radius)
        & (alignment(state) > p.success_cos)
        & (np.abs(state[..., IV]) < p.success_speed)
    )


def success(state: np.ndarray, p: MesaDockParams = DEFAULT_PARAMS) -> np.ndarray:
    return docked(state, p) & (state[..., IHOLD] >= p.hold_steps)


def transition(
    state: np.ndarray, action: np.ndarray, p: MesaDockParams = DEFAULT_PARAMS
) -> np.ndarray:
    """One semi-implicit Euler step (``MesaDockFuncEnv.transition``)."""
    a = np.clip(np.asarray(action, F32), F32(-1.0), F32(1.0))
    thrust, torque = a[..., 0], a[..., 1]
    dt = F32(p.dt)
    v = state[..., IV] + dt * (F32(p.thrust_accel) * thrust - F32(p.linear_drag) * state[..., IV])
    floor = F32(p.turn_floor)
    steer = floor + (F32(1.0) - floor) * np.minimum(np.abs(v) / F32(p.turn_speed), F32(1.0))
    w0 = state[..., IW]
    w = w0 + dt * (F32(p.torque_accel) * steer * torque - F32(p.angular_drag) * w0)
    th = wrap_angle(state[..., ITH] + dt * w)
    ns = np.array(state, F32, copy=True)
    ns[..., IX] = state[..., IX] + dt * v * np.cos(th)
    ns[..., IY] = state[..., IY] + dt * v * np.sin(th)
    ns[..., IV], ns[..., ITH], ns[..., IW] = v, th, w
    ns[..., IT] = state[..., IT] + F32(1.0)
    ns[..., IHOLD] = np.where(docked(ns, p), state[..., IHOLD] + F32(1.0), F32(0.0))
    return ns


def observation(state: np.ndarray, p: MesaDockParams = DEFAULT_PARAMS) -> np.ndarray:
    """The 12 bounded features (``MesaDockFuncEnv.observation``)."""
    dx = state[..., IGX] - state[..., IX]
    dy = state[..., IGY] - state[..., IY]
    th = state[..., ITH]
    c, s = np.cos(th), np.sin(th)
    bx, by = c * dx + s * dy, -s * dx + c * dy
    dist = np.sqrt(dx * dx + dy * dy)
    bearing = np.arctan2(by, bx)
    herr = state[..., IGTH] - th
    gc, gs = np.cos(state[..., IGTH]), np.sin(state[..., IGTH])
    vx, vy = -(gc * dx + gs * dy), -(-gs * dx + gc * dy)
    inv = F32(1.0 / p.pos_scale)
    obs = np.stack(
        [
            bx * inv,
            by * inv,
            dist * inv,
            np.sin(bearing),
            np.cos(bearing),
            np.sin(herr),
            np.cos(herr),
            state[..., IV] / F32(p.max_speed),
            state[..., IW] / F32(p.max_turn_rate),
            vx * inv,
            vy * inv,
            F32(1.0) - state[..., IT] / F32(MAX_EPISODE_STEPS),
        ],
        axis=-1,
    )
    return np.clip(obs, _OBS_LOW, _OBS_HIGH).astype(F32)


def reward(
    state: np.ndarray,
    action: np.ndarray,
    next_state: np.ndarray,
    p: MesaDockParams = DEFAULT_PARAMS,
) -> np.ndarray:
    """mixed(lambda) = (1 - lambda) * reward_phase3 + lambda * sparse_success."""
    a = np.clip(np.asarray(action, F32), F32(-1.0), F32(1.0))
    d0, d1 = distance(state), distance(next_state)
    g0 = np.maximum(F32(0.0), F32(1.0) - d0 / F32(p.align_radius))
    g1 = np.maximum(F32(0.0), F32(1.0) - d1 / F32(p.align_radius))
    align = F32(p.w_alignment) * (g1 * alignment(next_state) - g0 * alignment(state))
    sparse = success(next_state, p).astype(F32)
    r3 = (
        F32(p.w_distance) * (d0 - d1)
        + align
        - F32(p.w_control) * np.sum(a * a, axis=-1)
        + F32(p.success_bonus) * sparse
    )
    lam = F32(p.mixed_lambda)
    return ((F32(1.0) - lam) * r3 + lam * sparse).astype(F32)


class MesaDockNumpyEnv(gym.Env):
    """MesaDock-v0 as a plain numpy ``gymnasium.Env`` (no JAX call per step)."""

    metadata: dict[str, Any] = {"render_modes": []}
    observation_space = MesaDockFuncEnv.observation_space
    action_space = MesaDockFuncEnv.action_space

    def __init__(self, params: MesaDockParams | None = None, **overrides: Any) -> None:
        self.params = (params or DEFAULT_PARAMS).replace(**overrides)
        self.state = np.zeros(STATE_DIM, F32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.state = initial(self.np_random.random(4, dtype=F32), self.params)
        return observation(self.state, self.params), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        p = self.params
        ns = transition(self.state, action, p)
        r = float(reward(self.state, action, ns, p))
        self.state = ns
        done = bool(success(ns, p))
        truncated = bool(ns[IT] >= MAX_EPISODE_STEPS)
        return observation(ns, p), r, done, truncated, {"success": done}
