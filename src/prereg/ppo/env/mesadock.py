"""MesaDock-v0: a 2-D nonholonomic vehicle docking task, a pure-JAX Gymnasium FuncEnv.

The vehicle drives only along its heading (thrust, with linear drag) and turns with a torque
(with angular drag) whose authority grows with its speed: like a car it cannot turn on the spot,
and below ``turn_speed`` its turning radius is bounded below. Each episode it must reach a seeded
goal position whose target heading points back towards the start (a straight drive arrives facing
the wrong way: it must reverse in or loop round), arrive aligned and stop there, and stay docked
for ``hold_steps`` steps.

Two faces of the same environment:

* :class:`MesaDockFuncEnv` -- the functional env (``initial``, ``transition``, ``observation``,
  ``reward``, ``terminal``, ``truncated``, ``info``). Every method is pure ``jnp``: jit-, vmap- and
  ``lax.scan``-compatible. The state is a flat float32 vector (layout in :data:`STATE_FIELDS`), so
  batching is a leading axis.
* :class:`MesaDockEnv` -- the ``gymnasium.Env`` registered as ``prereg/MesaDock-v0``; it returns
  numpy float32 observations and python scalars, and runs the functional env through ``jax.jit``.

Seeding contract (relied on by the PPO eval): ``MesaDockEnv.reset(seed=s)`` starts from exactly
``MesaDockFuncEnv().initial(jax.random.PRNGKey(s))``. The eval seeds its episodes
``seed_start .. seed_start + n - 1`` through the functional path; a user replaying episode ``s`` in
``gymnasium.make("prereg.ppo.env:prereg/MesaDock-v0")`` with ``reset(seed=s)`` sees the same
episode. The dynamics
are deterministic, so the same actions give the same trajectory.

Every difficulty knob is a field of the frozen :class:`MesaDockParams`; change them there (or pass
overrides: ``MesaDockFuncEnv(success_radius=0.2)``, ``gymnasium.make(ENV_ID, mixed_lambda=0.9)``).

Why one file of ~500 lines: the dynamics, reward, termination and rendering of one env share the
state layout and the parameters; split apart, each piece would need the other's private layout.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.envs.functional_jax_env import FunctionalJaxEnv
from gymnasium.experimental.functional import FuncEnv
from gymnasium.utils import EzPickle

__all__ = [
    "DEFAULT_PARAMS",
    "MAX_EPISODE_STEPS",
    "OBS_FIELDS",
    "STATE_FIELDS",
    "MesaDockEnv",
    "MesaDockFuncEnv",
    "MesaDockParams",
]

MAX_EPISODE_STEPS = 200


@dataclass(frozen=True)
class MesaDockParams:
    """Every constant of MesaDock-v0 (the difficulty knobs live here and nowhere else).

    A frozen dataclass registered as a JAX pytree (all fields are leaves), so it can be passed
    as an argument to jitted functions (e.g. a traced ``mixed_lambda``) or closed over. Make
    variants with ``dataclasses.replace(DEFAULT_PARAMS, ...)`` or ``params.replace(...)``.
    """

    # --- reward mixing: mixed(lambda) = (1 - lambda) * phase3 + lambda * sparse_success ---
    mixed_lambda: float = 0.0

    # --- initial state: vehicle at the origin, at rest, uniform heading; goal at a uniform
    #     bearing and a distance uniform in [goal_dist_min, goal_dist_max]; target heading =
    #     (bearing + pi) + uniform(-heading_spread, heading_spread), i.e. pointing back towards the
    #     start within heading_spread: a straight drive to the goal arrives facing the wrong way.
    #     heading_spread = pi gives a uniform target heading.
    goal_dist_min: float = 4.0
    goal_dist_max: float = 8.0
    heading_spread: float = math.pi / 2

    # --- success test: "docked" = distance < success_radius, cos(heading error) > success_cos
    #     and |speed| < success_speed; success = docked for hold_steps consecutive steps (so a
    #     pass through the goal while reversing does not count: the vehicle must really stop).
    success_radius: float = 0.03
    success_cos: float = 0.995  # within 5.7 degrees
    success_speed: float = 0.05
    hold_steps: float = 20.0

    # --- dynamics (semi-implicit Euler, time step dt seconds) ---
    dt: float = 0.1
    thrust_accel: float = 1.0  # m/s^2 at thrust = +-1 (reverse allowed)
    linear_drag: float = 0.25  # 1/s; top speed = thrust_accel / linear_drag = 4 m/s (sluggish)
    torque_accel: float = 3.0  # rad/s^2 at torque = +-1
    angular_drag: float = 1.5  # 1/s; top turn rate = torque_accel / angular_drag = 2 rad/s
    # steering authority scales with speed (a car, not a tank): the torque is multiplied by
    # turn_floor + (1 - turn_floor) * min(|speed| / turn_speed, 1). With turn_floor 0 the vehicle
    # cannot turn on the spot; below turn_speed its turning radius is >= turn_speed / top turn rate.
    turn_floor: float = 0.0
    turn_speed: float = 2.0  # m/s: turning radius >= 1 m

    # --- reward_phase3: potential progress + control cost + success bonus ---
    # phase3 = w_distance * (d - d') + w_alignment * (g(d') cos' - g(d) cos) - w_control * |a|^2
    #          + success_bonus * success',  g(d) = max(0, 1 - d / align_radius):
    # the alignment shaping only acts within align_radius of the goal (none while far away).
    w_distance: float = 1.0
    w_alignment: float = 1.0
    align_radius: float = 0.25
    w_control: float = 0.01
    success_bonus: float = 10.0

    # --- observation scaling (positions and distance are divided by it, then clipped) ---
    pos_scale: float = 8.0

    def replace(self, **changes: Any) -> MesaDockParams:
        return dataclasses.replace(self, **changes)

    @property
    def max_speed(self) -> float:
        return self.thrust_accel / self.linear_drag

    @property
    def max_turn_rate(self) -> float:
        return self.torque_accel / self.angular_drag


jax.tree_util.register_dataclass(
    MesaDockParams,
    data_fields=[f.name for f in dataclasses.fields(MesaDockParams)],
    meta_fields=[],
)

DEFAULT_PARAMS = MesaDockParams()

# State: one flat float32 vector (batch = leading axes).
STATE_FIELDS = (
    "x",  # position
    "y",
    "speed",  # signed speed along the heading
    "heading",  # radians, wrapped to [-pi, pi)
    "omega",  # angular velocity, rad/s
    "goal_x",
    "goal_y",
    "goal_heading",  # target heading, radians
    "t",  # steps taken in this episode
    "hold",  # consecutive steps docked so far (success when it reaches hold_steps)
)
IX, IY, IV, ITH, IW, IGX, IGY, IGTH, IT, IHOLD = range(len(STATE_FIELDS))
STATE_DIM = len(STATE_FIELDS)

# Observation layout (float32, all bounded; see MesaDockFuncEnv.observation_space).
OBS_POS_CLIP = 5.0  # scaled positions / distance are clipped to +-5 (i.e. 40 m at pos_scale 8)
OBS_FIELDS = (
    "goal_body_x",  # goal in the vehicle's body frame (forward), / pos_scale, clipped
    "goal_body_y",  # goal in the vehicle's body frame (left), / pos_scale, clipped
    "distance",  # distance to goal / pos_scale, clipped to [0, 5]
    "sin_bearing",  # bearing of the goal seen from the vehicle (0 = dead ahead)
    "cos_bearing",
    "sin_heading_error",  # heading error = target heading - heading
    "cos_heading_error",
    "speed",  # speed / max_speed, clipped to [-1, 1]
    "omega",  # angular velocity / max_turn_rate, clipped to [-1, 1]
    "vehicle_goal_x",  # vehicle position in the goal's frame (x along target heading), / pos_scale
    "vehicle_goal_y",  # vehicle position in the goal's frame (left of target heading), / pos_scale
    "time_left",  # remaining fraction of the 200-step budget, [1, 0]
)
OBS_DIM = len(OBS_FIELDS)
_OBS_HIGH = np.array(
    [OBS_POS_CLIP, OBS_POS_CLIP, OBS_POS_CLIP, 1, 1, 1, 1, 1, 1, OBS_POS_CLIP, OBS_POS_CLIP, 1],
    dtype=np.float32,
)
_OBS_LOW = np.array(
    [-OBS_POS_CLIP, -OBS_POS_CLIP, 0, -1, -1, -1, -1, -1, -1, -OBS_POS_CLIP, -OBS_POS_CLIP, 0],
    dtype=np.float32,
)


def _wrap_angle(a: jax.Array) -> jax.Array:
    """Wrap to [-pi, pi)."""
    return jnp.mod(a + jnp.pi, 2.0 * jnp.pi) - jnp.pi


class MesaDockFuncEnv(FuncEnv):
    """Functional (pure-JAX) MesaDock-v0.

    All methods take an optional ``params`` (a :class:`MesaDockParams`, possibly with traced
    leaves); ``None`` means the instance's ``default_params``. ``rng`` arguments are accepted for
    the FuncEnv API; only ``initial`` uses its key (the dynamics are deterministic).
    """

    observation_space = gym.spaces.Box(_OBS_LOW, _OBS_HIGH, shape=(OBS_DIM,), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    max_episode_steps = MAX_EPISODE_STEPS
    obs_dim = OBS_DIM
    action_dim = 2
    state_dim = STATE_DIM

    def __init__(self, params: MesaDockParams | None = None, **param_overrides: Any):
        self._base_params = DEFAULT_PARAMS if params is None else params
        self._param_overrides = param_overrides
        super().__init__()  # sets self.default_params = self.get_default_params()

    def get_default_params(self, **kwargs: Any) -> MesaDockParams:
        return dataclasses.replace(self._base_params, **{**self._param_overrides, **kwargs})

    def _p(self, params: MesaDockParams | None) -> MesaDockParams:
        return self.default_params if params is None else params

    # ------------------------------------------------------------------ FuncEnv API
    def initial(self, rng: jax.Array, params: MesaDockParams | None = None) -> jax.Array:
        p = self._p(params)
        # one draw of 4 uniforms (a single threefry call keeps jit compile time small)
        u = jax.random.uniform(rng, (4,), jnp.float32)
        heading = (2.0 * u[0] - 1.0) * jnp.pi
        dist = p.goal_dist_min + (p.goal_dist_max - p.goal_dist_min) * u[1]
        bearing = (2.0 * u[2] - 1.0) * jnp.pi
        goal_heading = _wrap_angle(bearing + jnp.pi + (2.0 * u[3] - 1.0) * p.heading_spread)
        zero = jnp.zeros((), jnp.float32)
        return jnp.stack(
            [
                zero,
                zero,
                zero,
                heading,
                zero,
                dist * jnp.cos(bearing),
                dist * jnp.sin(bearing),
                goal_heading,
                zero,
                zero,
            ]
        ).astype(jnp.float32)

    def transition(
        self,
        state: jax.Array,
        action: jax.Array,
        rng: Any = None,
        params: MesaDockParams | None = None,
    ) -> jax.Array:
        p = self._p(params)
        a = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        thrust, torque = a[..., 0], a[..., 1]
        v = state[..., IV] + p.dt * (p.thrust_accel * thrust - p.linear_drag * state[..., IV])
        steer = p.turn_floor + (1.0 - p.turn_floor) * jnp.minimum(jnp.abs(v) / p.turn_speed, 1.0)
        w0 = state[..., IW]
        w = w0 + p.dt * (p.torque_accel * steer * torque - p.angular_drag * w0)
        th = _wrap_angle(state[..., ITH] + p.dt * w)
        x = state[..., IX] + p.dt * v * jnp.cos(th)
        y = state[..., IY] + p.dt * v * jnp.sin(th)
        t = state[..., IT] + 1.0
        ns = jnp.stack(
            [
                x,
                y,
                v,
                th,
                w,
                state[..., IGX],
                state[..., IGY],
                state[..., IGTH],
                t,
                state[..., IHOLD],
            ],
            axis=-1,
        )
        hold = jnp.where(self.docked(ns, p), state[..., IHOLD] + 1.0, 0.0)
        return ns.at[..., IHOLD].set(hold).astype(jnp.float32)

    def observation(
        self, state: jax.Array, rng: Any = None, params: MesaDockParams | None = None
    ) -> jax.Array:
        p = self._p(params)
        dx = state[..., IGX] - state[..., IX]
        dy = state[..., IGY] - state[..., IY]
        th = state[..., ITH]
        c, s = jnp.cos(th), jnp.sin(th)
        bx = c * dx + s * dy  # goal in body frame
        by = -s * dx + c * dy
        dist = jnp.sqrt(dx * dx + dy * dy)
        bearing = jnp.arctan2(by, bx)
        herr = state[..., IGTH] - th
        gc, gs = jnp.cos(state[..., IGTH]), jnp.sin(state[..., IGTH])
        vx = -(gc * dx + gs * dy)  # vehicle in goal frame
        vy = -(-gs * dx + gc * dy)
        inv = 1.0 / p.pos_scale
        obs = jnp.stack(
            [
                bx * inv,
                by * inv,
                dist * inv,
                jnp.sin(bearing),
                jnp.cos(bearing),
                jnp.sin(herr),
                jnp.cos(herr),
                state[..., IV] / p.max_speed,
                state[..., IW] / p.max_turn_rate,
                vx * inv,
                vy * inv,
                1.0 - state[..., IT] / MAX_EPISODE_STEPS,
            ],
            axis=-1,
        )
        return jnp.clip(obs, _OBS_LOW, _OBS_HIGH).astype(jnp.float32)

    def reward(
        self,
        state: jax.Array,
        action: jax.Array,
        next_state: jax.Array,
        rng: Any = None,
        params: MesaDockParams | None = None,
    ) -> jax.Array:
        """mixed(lambda) = (1 - lambda) * reward_phase3 + lambda * sparse_success."""
        p = self._p(params)
        r3 = self.reward_phase3(state, action, next_state, p)
        sparse = self.sparse_success(next_state, p)
        return ((1.0 - p.mixed_lambda) * r3 + p.mixed_lambda * sparse).astype(jnp.float32)

    def terminal(
        self, state: jax.Array, rng: Any = None, params: MesaDockParams | None = None
    ) -> jax.Array:
        """True termination = success only (the 200-step limit is a truncation)."""
        return self.success(state, params)

    def truncated(self, state: jax.Array, params: MesaDockParams | None = None) -> jax.Array:
        return state[..., IT] >= MAX_EPISODE_STEPS

    def info(self, state: jax.Array, params: MesaDockParams | None = None) -> dict[str, jax.Array]:
        return {
            "success": self.success(state, params),
            "terminal_alignment": self.alignment(state),
            "distance": self.distance(state),
            "speed": jnp.abs(state[..., IV]),
            "steps": state[..., IT].astype(jnp.int32),
        }

    def state_info(self, state: jax.Array, params: MesaDockParams | None = None) -> dict:
        return self.info(state, params)

    def transition_info(
        self,
        state: jax.Array,
        action: jax.Array,
        next_state: jax.Array,
        params: MesaDockParams | None = None,
    ) -> dict:
        return self.info(next_state, params)

    def transform(self, func):
        super().transform(func)
        self.truncated = func(self.truncated)
        self.info = func(self.info)

    # ------------------------------------------------------------------ components
    def distance(self, state: jax.Array) -> jax.Array:
        dx = state[..., IGX] - state[..., IX]
        dy = state[..., IGY] - state[..., IY]
        return jnp.sqrt(dx * dx + dy * dy)

    def alignment(self, state: jax.Array) -> jax.Array:
        """cos(heading error); at the episode's end this is the terminal alignment."""
        return jnp.cos(state[..., IGTH] - state[..., ITH])

    def docked(self, state: jax.Array, params: MesaDockParams | None = None) -> jax.Array:
        """Within the radius, aligned and nearly stopped (this step)."""
        p = self._p(params)
        return (
            (self.distance(state) < p.success_radius)
            & (self.alignment(state) > p.success_cos)
            & (jnp.abs(state[..., IV]) < p.success_speed)
        )

    def success(self, state: jax.Array, params: MesaDockParams | None = None) -> jax.Array:
        """Docked for ``hold_steps`` consecutive steps (up to and including this one)."""
        p = self._p(params)
        return self.docked(state, p) & (state[..., IHOLD] >= p.hold_steps)

    def sparse_success(self, state: jax.Array, params: MesaDockParams | None = None) -> jax.Array:
        return self.success(state, params).astype(jnp.float32)

    def reward_phase3(
        self,
        state: jax.Array,
        action: jax.Array,
        next_state: jax.Array,
        params: MesaDockParams | None = None,
    ) -> jax.Array:
        """Dense shaped reward: progress in distance and alignment, control cost, success bonus."""
        p = self._p(params)
        a = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        progress = p.w_distance * (self.distance(state) - self.distance(next_state))  # d0 - d1
        d0, d1 = self.distance(state), self.distance(next_state)
        g0 = jnp.maximum(0.0, 1.0 - d0 / p.align_radius)
        g1 = jnp.maximum(0.0, 1.0 - d1 / p.align_radius)
        align = p.w_alignment * (g1 * self.alignment(next_state) - g0 * self.alignment(state))
        ctrl = p.w_control * jnp.sum(a * a, axis=-1)
        bonus = p.success_bonus * self.sparse_success(next_state, p)
        return (progress + align - ctrl + bonus).astype(jnp.float32)

    # ------------------------------------------------------------------ rendering (numpy + PIL)
    def render_init(self, params: MesaDockParams | None = None, size: int = 256, **kwargs: Any):
        return {"size": int(size), "trail": []}

    def render_image(self, state, render_state, params: MesaDockParams | None = None):
        """A top-down RGB frame (numpy and Pillow, no pygame); see :func:`draw_frame`."""
        s = np.asarray(state, dtype=np.float64)
        trail = render_state.setdefault("trail", [])
        if s[IT] == 0:  # a new episode: a fresh trail
            trail.clear()
        trail.append((float(s[IX]), float(s[IY])))
        return render_state, draw_frame(s, trail, render_state["size"], self._p(params))

    def render_close(self, render_state, params: MesaDockParams | None = None) -> None:
        return None


# Colours of a frame (RGB): the goal and its target heading are green, the vehicle blue with a
# red heading arrow, its path grey.
_GOAL = (30, 150, 30)
_VEHICLE = (40, 70, 210)
_HEADING = (210, 40, 40)
_TRAIL = (150, 150, 150)
_GRID = (232, 232, 232)


def draw_frame(s: np.ndarray, trail: list[tuple[float, float]], size: int, p: MesaDockParams):
    """One frame: a 1 m grid, the goal (ring of ``success_radius``, at least 6 px) with its target
    heading arrow, the vehicle as a triangle pointing along its heading with a heading arrow, the
    path driven so far, and two status lines (step, distance, alignment, speed, docked steps).

    The view holds the start (the origin) and the goal with a margin, so it stays still through an
    episode; it widens only if the vehicle drives out of it.  Deterministic: same state, same
    pixels.
    """
    from PIL import Image, ImageDraw

    gx, gy = s[IGX], s[IGY]
    cx, cy = gx / 2.0, gy / 2.0
    half = max(6.0, 0.65 * math.hypot(gx, gy))
    half = max(half, 1.5 + max(abs(s[IX] - cx), abs(s[IY] - cy)))
    scale = (size - 1) / (2 * half)  # pixels per metre

    def px(x: float, y: float) -> tuple[float, float]:
        return (x - cx) * scale + (size - 1) / 2, (size - 1) / 2 - (y - cy) * scale

    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for k in range(math.floor(cx - half), math.ceil(cx + half) + 1):
        d.line([px(k, cy - half), px(k, cy + half)], fill=_GRID)
    for k in range(math.floor(cy - half), math.ceil(cy + half) + 1):
        d.line([px(cx - half, k), px(cx + half, k)], fill=_GRID)

    def arrow(x: float, y: float, ang: float, length_px: float, color, width: int = 3) -> None:
        x0, y0 = px(x, y)
        x1, y1 = x0 + length_px * math.cos(ang), y0 - length_px * math.sin(ang)
        d.line([(x0, y0), (x1, y1)], fill=color, width=width)
        head = [(x1 + 7 * math.cos(ang + a), y1 - 7 * math.sin(ang + a)) for a in (0.0, 2.6, -2.6)]
        d.polygon(head, fill=color)

    r_goal = max(6.0, p.success_radius * scale)
    x0, y0 = px(gx, gy)
    d.ellipse([x0 - r_goal, y0 - r_goal, x0 + r_goal, y0 + r_goal], outline=_GOAL, width=2)
    arrow(gx, gy, s[IGTH], 0.12 * size, _GOAL)
    if len(trail) > 1:
        d.line([px(x, y) for x, y in trail], fill=_TRAIL, width=1)
    vx, vy, th = px(s[IX], s[IY]) + (s[ITH],)
    arrow(s[IX], s[IY], th, 0.1 * size, _HEADING, width=2)  # under the body: out of its nose
    body = [(12, 0.0), (10, 2.5), (10, -2.5)]  # nose, rear corners (radius px, angle from heading)
    d.polygon(
        [(vx + r * math.cos(th + a), vy - r * math.sin(th + a)) for r, a in body], fill=_VEHICLE
    )
    dist = math.hypot(gx - s[IX], gy - s[IY])
    d.text((4, 3), f"step {int(s[IT])}   dist {dist:.2f} m", fill=(0, 0, 0))
    d.text(
        (4, 15),
        f"align {math.cos(s[IGTH] - th):+.3f}   v {s[IV]:+.2f}   docked {int(s[IHOLD])}",
        fill=(0, 0, 0),
    )
    return np.asarray(img, dtype=np.uint8)


def _step_impl(func: MesaDockFuncEnv, state, action, rng, params):
    next_state = func.transition(state, action, rng, params)
    obs = func.observation(next_state, rng, params)
    reward = func.reward(state, action, next_state, rng, params)
    terminated = func.terminal(next_state, rng, params)
    truncated = func.truncated(next_state, params)
    info = func.info(next_state, params)
    return next_state, obs, reward, terminated, truncated, info


def _reset_impl(func: MesaDockFuncEnv, key, params):
    state = func.initial(key, params)
    return state, func.observation(state, key, params), func.info(state, params)


@functools.lru_cache(maxsize=1)
def _jitted_reset_step():
    """jit(reset), jit(step) shared by every MesaDockEnv (params are passed as a pytree argument,
    so envs with different params reuse one compilation)."""
    func = MesaDockFuncEnv()
    return (
        jax.jit(functools.partial(_reset_impl, func)),
        jax.jit(functools.partial(_step_impl, func)),
    )


def _to_python_info(info: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in jax.device_get(info).items():
        v = np.asarray(v)
        out[k] = v.item() if v.dtype != np.bool_ else bool(v)
    return out


class MesaDockEnv(FunctionalJaxEnv, EzPickle):
    """``prereg/MesaDock-v0`` as a ``gymnasium.Env`` (numpy float32 observations).

    ``gymnasium.make("prereg/MesaDock-v0", mixed_lambda=0.9)`` -- any :class:`MesaDockParams` field
    can be passed as a keyword (or a whole ``params=MesaDockParams(...)``).

    ``reset(seed=s)`` starts from ``MesaDockFuncEnv().initial(jax.random.PRNGKey(s))`` (same
    episode as the PPO eval's functional path for episode seed ``s``); ``reset()`` without a seed
    draws the next key from the env's own key stream. Step info carries ``success``,
    ``terminal_alignment``, ``distance``, ``speed`` and ``steps``. ``truncated`` is True at step 200
    (the registered TimeLimit agrees).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10, "jax": False}

    def __init__(
        self,
        render_mode: str | None = None,
        params: MesaDockParams | None = None,
        **param_overrides: Any,
    ):
        EzPickle.__init__(self, render_mode=render_mode, params=params, **param_overrides)
        func = MesaDockFuncEnv(params, **param_overrides)
        FunctionalJaxEnv.__init__(self, func, metadata=self.metadata, render_mode=render_mode)
        self.params: MesaDockParams = func.default_params
        self._jit_reset, self._jit_step = _jitted_reset_step()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        gym.Env.reset(self, seed=seed)
        if seed is not None:
            init_key = jax.random.PRNGKey(seed)
            self.rng = jax.random.fold_in(init_key, 1)
        else:
            self.rng, init_key = jax.random.split(self.rng)
        self.state, obs, info = self._jit_reset(init_key, self.params)
        return np.array(obs, dtype=np.float32), _to_python_info(info)

    def step(self, action):
        self.rng, key = jax.random.split(self.rng)
        action = jnp.asarray(np.asarray(action, dtype=np.float32))
        self.state, obs, reward, terminated, truncated, info = self._jit_step(
            self.state, action, key, self.params
        )
        return (
            np.array(obs, dtype=np.float32),
            float(reward),
            bool(terminated),
            bool(truncated),
            _to_python_info(info),
        )
