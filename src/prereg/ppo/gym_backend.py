"""Second rollout backend: any registered continuous Gymnasium env through ``make_vec``.

The rollout runs on the host (``gymnasium.make_vec(id, num_envs, vectorization_mode="sync")``)
one vector step at a time; acting, GAE and the PPO update are the SAME pure functions
the JAX trainer scans over (:func:`prereg.ppo.trainer.policy_step`,
:func:`prereg.ppo.trainer.make_update_fn`), jitted once here.

Autoreset: Gymnasium 1.x vector envs default to ``AutoresetMode.NEXT_STEP`` (requested
explicitly here).  When sub-env i returns ``terminated or truncated`` at step t, the
observation it returns is the episode's FINAL observation; the next ``step`` call
ignores sub-env i's action, resets it and returns the first observation of the new
episode with reward 0 and no termination/truncation.  So, per sub-env:

* step t (terminated or truncated): a real transition, ``done`` cuts the GAE chain;
  on truncation (and not termination) the bootstrap value is V(final obs), which is
  exactly the value computed when acting at step t+1 on that obs (or ``last_value``
  if t is the last step of the rollout);
* step t+1 (the reset step): not a transition; it is kept in the fixed-size batch
  with ``valid = 0`` (excluded from every loss, advantage statistic and metric) and
  ``done = 1``.  ``env_steps`` still counts it (num_envs x num_steps per update).

Success of a finished episode is ``info["success"]`` or ``info["is_success"]`` when
the env reports one, else its true termination.  The sub-envs' internal state is not
part of :class:`~prereg.ppo.trainer.TrainState` here, so a restored state continues
with freshly reset envs (not bit-identical, unlike the JAX backend).
"""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode

from prereg.ppo.evaluate import summarize_episodes
from prereg.ppo.networks import actor_mean, critic_value, init_params
from prereg.ppo.normalizer import init_normalizer, normalize
from prereg.ppo.trainer import (
    METRIC_NAMES,
    PPOConfig,
    TrainState,
    Transition,
    episode_metrics,
    make_action_map,
    make_optimizer,
    make_update_fn,
    policy_step,
)
from prereg.ppo.validate import validate_env_id

_SUCCESS_KEYS = ("success", "is_success")
__all__ = ["GymEvaluator", "GymTrainer", "make_gym_trainer", "validate_env_id"]


class GymEvaluator:
    """Deterministic eval in the Gymnasium env itself; same outputs as ``evaluate.Evaluator``.

    Episode ``i`` is ``env.reset(seed=seed_start + i)`` run with the mean action until
    termination or truncation (the registered time limit, else ``max_steps``).  Success
    is ``info["success"]``/``info["is_success"]`` at the last step, else termination;
    terminal_alignment is ``info["terminal_alignment"]`` there (NaN if absent).
    """

    def __init__(self, env_id: str, obs_clip: float, max_steps: int | None = None, **env_kwargs):
        self.env_id = env_id
        self.env_kwargs = env_kwargs
        spec = gymnasium.spec(env_id)
        self.max_steps = int(max_steps or spec.max_episode_steps or 1000)
        env = gymnasium.make(env_id, **env_kwargs)
        act_map = make_action_map(
            env.action_space.low.reshape(-1), env.action_space.high.reshape(-1)
        )
        self.action_shape = env.action_space.shape
        env.close()
        self._mean_action = jax.jit(
            lambda p, n, o: act_map(actor_mean(p, normalize(n, o, obs_clip)))
        )

    def __call__(self, params, normalizer, seed_start: int, n_seeds: int):
        n_seeds = int(n_seeds)
        if n_seeds < 1:
            raise ValueError(f"eval.n_seeds must be >= 1, got {n_seeds}")
        seeds = np.arange(int(seed_start), int(seed_start) + n_seeds, dtype=np.int64)
        cols = {k: [] for k in ("success", "terminal_alignment", "steps", "return")}
        env = gymnasium.make(self.env_id, **self.env_kwargs)
        try:
            for seed in seeds:
                obs, info = env.reset(seed=int(seed))
                ret, steps, terminated = 0.0, 0, False
                while steps < self.max_steps:
                    o = np.asarray(obs, np.float32).reshape(1, -1)
                    action = np.asarray(self._mean_action(params, normalizer, o))[0]
                    obs, reward, terminated, truncated, info = env.step(
                        action.reshape(self.action_shape)
                    )
                    ret += float(reward)
                    steps += 1
                    if terminated or truncated:
                        break
                success = next((info[k] for k in _SUCCESS_KEYS if k in info), terminated)
                cols["success"].append(bool(success))
                cols["terminal_alignment"].append(float(info.get("terminal_alignment", np.nan)))
                cols["steps"].append(steps)
                cols["return"].append(ret)
        finally:
            env.close()
        episodes = {
            "seed": seeds,
            "success": np.asarray(cols["success"], bool),
            "terminal_alignment": np.asarray(cols["terminal_alignment"], np.float64),
            "steps": np.asarray(cols["steps"], np.int64),
            "return": np.asarray(cols["return"], np.float64),
        }
        return episodes, summarize_episodes(episodes, seed_start)


class GymTrainer:
    """PPO on ``num_envs`` copies of a Gymnasium env; same API as ``PPOTrainer``.

    ``init(seed) -> TrainState`` (also resets the vector env with ``seed``),
    ``run_chunk(state, n) -> (state, metrics)`` with :data:`METRIC_NAMES` arrays;
    ``evaluator`` is a :class:`GymEvaluator` for the same env.
    The vector env is host state owned by this object: run one training at a time.
    """

    def __init__(self, env_id: str, cfg: PPOConfig, **env_kwargs):
        obs_space, act_space = validate_env_id(env_id)
        self.env_id = env_id.split(":", 1)[-1]
        self.cfg = cfg
        self.obs_dim = int(np.prod(obs_space.shape))
        self.action_dim = int(np.prod(act_space.shape))
        self.action_shape = act_space.shape
        self.envs = gymnasium.make_vec(
            self.env_id,
            num_envs=cfg.num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP},
            **env_kwargs,
        )
        self.tx = make_optimizer(cfg)
        self.update_fn = jax.jit(make_update_fn(cfg, self.tx))
        act_map = make_action_map(act_space.low.reshape(-1), act_space.high.reshape(-1))
        clip = cfg.obs_clip

        def act(params, normalizer, raw_obs, rng):
            rng, key = jax.random.split(rng)
            normalizer, obs, action, logp, value = policy_step(
                params, normalizer, raw_obs, key, clip
            )
            return rng, normalizer, obs, action, act_map(action), logp, value

        self._act = jax.jit(act)
        self._value = jax.jit(lambda p, n, o: critic_value(p, normalize(n, o, clip)))
        self._init_params = jax.jit(
            lambda key: init_params(key, self.obs_dim, self.action_dim, cfg.tier, cfg.log_std_init)
        )
        self.evaluator = GymEvaluator(self.env_id, clip, **env_kwargs)
        self._pending_reset = np.zeros(cfg.num_envs, bool)
        self._ep_return = np.zeros(cfg.num_envs, np.float64)
        self._ep_length = np.zeros(cfg.num_envs, np.int64)

    def close(self) -> None:
        self.envs.close()

    def _reset_envs(self, seed: int) -> np.ndarray:
        obs, _ = self.envs.reset(seed=int(seed))
        self._pending_reset[:] = False
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        return np.asarray(obs, np.float32).reshape(self.cfg.num_envs, self.obs_dim)

    def init(self, seed: int | None = None) -> TrainState:
        seed = self.cfg.seed if seed is None else int(seed)
        rng, k_params = jax.random.split(jax.random.PRNGKey(seed))
        params = self._init_params(k_params)
        obs = self._reset_envs(seed)
        return TrainState(
            params=params,
            opt_state=self.tx.init(params),
            normalizer=init_normalizer(self.obs_dim),
            env_state=None,
            obs=jnp.asarray(obs),
            rng=rng,
            update=jnp.zeros((), jnp.int32),
            env_steps=jnp.zeros((), jnp.int32),
            ep_return=jnp.zeros((self.cfg.num_envs,), jnp.float32),
            ep_length=jnp.zeros((self.cfg.num_envs,), jnp.int32),
        )

    def state_template(self):
        return jax.eval_shape(lambda: self._template())

    def _template(self):
        params = init_params(
            jax.random.PRNGKey(0),
            self.obs_dim,
            self.action_dim,
            self.cfg.tier,
            self.cfg.log_std_init,
        )
        n = self.cfg.num_envs
        return TrainState(
            params=params,
            opt_state=self.tx.init(params),
            normalizer=init_normalizer(self.obs_dim),
            env_state=None,
            obs=jnp.zeros((n, self.obs_dim), jnp.float32),
            rng=jax.random.PRNGKey(0),
            update=jnp.zeros((), jnp.int32),
            env_steps=jnp.zeros((), jnp.int32),
            ep_return=jnp.zeros((n,), jnp.float32),
            ep_length=jnp.zeros((n,), jnp.int32),
        )

    def restore(self, flat: dict) -> TrainState:
        """State from a checkpoint; the envs restart from a reset (see module doc)."""
        from prereg.training.checkpoints import unflatten_like

        state = unflatten_like(self.state_template(), flat)
        seed = int(np.asarray(jax.device_get(state.rng))[-1] % (2**31))
        return state.replace(obs=jnp.asarray(self._reset_envs(seed)))

    def _rollout(self, state: TrainState):
        cfg = self.cfg
        T, N, D, A = cfg.num_steps, cfg.num_envs, self.obs_dim, self.action_dim
        buf = {
            "obs": np.zeros((T, N, D), np.float32),
            "action": np.zeros((T, N, A), np.float32),
            "logp": np.zeros((T, N), np.float32),
            "value": np.zeros((T, N), np.float32),
            "reward": np.zeros((T, N), np.float32),
            "done": np.zeros((T, N), bool),
            "truncated": np.zeros((T, N), bool),
            "valid": np.zeros((T, N), np.float32),
        }
        params, normalizer, rng = state.params, state.normalizer, state.rng
        obs = np.asarray(state.obs, np.float32)
        n_fin, ret_sum, n_succ = 0, 0.0, 0
        for t in range(T):
            rng, normalizer, obs_n, action, env_action, logp, value = self._act(
                params, normalizer, obs, rng
            )
            obs_n, action, env_action, logp, value = jax.device_get(
                (obs_n, action, env_action, logp, value)
            )
            next_obs, reward, term, trunc, infos = self.envs.step(
                np.asarray(env_action).reshape((N,) + self.action_shape)
            )
            term, trunc = np.asarray(term, bool), np.asarray(trunc, bool)
            reward = np.asarray(reward, np.float64)
            reset_step = self._pending_reset.copy()
            real = ~reset_step
            ended = (term | trunc) & real
            buf["obs"][t] = obs_n
            buf["action"][t] = action
            buf["logp"][t] = logp
            buf["value"][t] = value
            buf["reward"][t] = np.where(real, reward, 0.0)
            buf["done"][t] = ended | reset_step
            buf["truncated"][t] = trunc & ~term & real
            buf["valid"][t] = real
            self._ep_return += np.where(real, reward, 0.0)
            self._ep_length += real
            if ended.any():
                success = term.copy()
                for key in _SUCCESS_KEYS:
                    if key in infos:
                        mask = np.asarray(infos.get(f"_{key}", np.ones(N, bool)), bool)
                        success = np.where(mask, np.asarray(infos[key], bool), success)
                        break
                n_fin += int(ended.sum())
                ret_sum += float(self._ep_return[ended].sum())
                n_succ += int((success & ended).sum())
                self._ep_return[ended] = 0.0
                self._ep_length[ended] = 0
            self._pending_reset = ended
            obs = np.asarray(next_obs, np.float32).reshape(N, D)
        last_value = np.asarray(self._value(params, normalizer, obs), np.float32)
        final_value = np.concatenate([buf["value"][1:], last_value[None]], axis=0)
        batch = Transition(final_value=final_value, **buf)
        stats = (n_fin, ret_sum, n_succ)
        return batch, last_value, normalizer, obs, rng, stats

    def run_chunk(self, state: TrainState, num_updates: int):
        cfg = self.cfg
        rows = []
        for _ in range(int(num_updates)):
            rng, k_upd = jax.random.split(state.rng)
            batch, last_value, normalizer, obs, rng, (n_fin, ret_sum, n_succ) = self._rollout(
                state.replace(rng=rng)
            )
            params, opt_state, m = self.update_fn(
                state.params, state.opt_state, batch, last_value, k_upd
            )
            episode_return, success_rate = episode_metrics(n_fin, ret_sum, n_succ)
            state = state.replace(
                params=params,
                opt_state=opt_state,
                normalizer=normalizer,
                obs=jnp.asarray(obs),
                rng=rng,
                update=state.update + 1,
                env_steps=state.env_steps + cfg.batch_size,
                ep_return=jnp.asarray(self._ep_return, jnp.float32),
                ep_length=jnp.asarray(self._ep_length, jnp.int32),
            )
            valid = batch.valid
            rows.append(
                {
                    "update": state.update,
                    "env_steps": state.env_steps,
                    "mean_reward": float((batch.reward * valid).sum() / max(valid.sum(), 1.0)),
                    "episode_return": episode_return,
                    "success_rate": success_rate,
                    **m,
                }
            )
        rows = jax.device_get(rows)
        metrics = {k: np.asarray([r[k] for r in rows]) for k in METRIC_NAMES}
        return state, metrics


def make_gym_trainer(env_id: str, cfg: PPOConfig, **env_kwargs) -> GymTrainer:
    return GymTrainer(env_id, cfg, **env_kwargs)
