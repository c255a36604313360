"""Pure, jitted PPO: rollout, GAE and update inside one ``lax.scan`` over updates.

The PureJaxRL pattern: a whole chunk of ``num_updates`` PPO updates is ONE jitted
function of the train state.  Each update is

1. a rollout: ``lax.scan`` over ``num_steps`` steps of the ``vmap``-ed functional env
   (``num_envs`` copies) with auto-reset on termination or truncation;
2. GAE (:func:`prereg.ppo.gae.compute_gae`, bootstrapping truncations);
3. ``update_epochs`` x ``num_minibatches`` clipped-surrogate steps (advantages
   normalised per minibatch, global-norm gradient clipping, Adam; both from optax).

Everything that influences the future is in :class:`TrainState` (a pytree), so
running N updates in one chunk or in chunks of any sizes gives the same result, and
a checkpoint of the state resumes bit-identically.

Many seeds in one program (``num_seeds`` = N > 1): the state gains a leading axis of N
(seeds ``seed .. seed+N-1``) and the chunk is ``vmap``-ed over whole train states, so seed k
of such a run equals a single run with that seed (to float tolerance: batched matmuls may
sum in another order).  The vmapped chunk also takes :class:`Hypers` (lr, value_coef,
entropy_coef, clip_range) as traced per-member values, so one program can train members
with different hyper-parameters (candidates x seeds) with the same machinery.

The env is any object with the ``gymnasium.experimental.functional.FuncEnv`` methods
``initial(rng, params)``, ``transition(state, action, rng, params)``,
``observation(state, rng, params)``, ``reward(state, action, next_state, rng, params)``,
``terminal(state, rng, params)`` (true termination) and an ``action_space`` Box; if it
has ``truncated(state, params)`` that decides time-limit truncation (otherwise
``max_episode_steps``, counted here, if present), and if it has
``info(state, params)`` its ``["success"]`` decides success (otherwise success =
true termination).

Losses (SB3/CleanRL conventions; recorded in ``metrics``):
``loss = policy_loss + value_coef * value_loss - entropy_coef * entropy`` with
``policy_loss = mean(max(-A r, -A clip(r, 1 - eps, 1 + eps)))``,
``value_loss = mean((V - R)^2)`` (plain MSE, no value clipping), ``entropy`` the
Gaussian's entropy summed over action dims.  Actions are sampled unbounded from the
Gaussian (the log-prob is of the unbounded sample) and clipped to [-1, 1] and then
mapped linearly to the env's Box bounds before stepping.

The rollout / update split is public so another backend can reuse the same pieces:
:func:`policy_step` (act), :func:`make_update_fn` (GAE + epochs over a
:class:`Transition` batch); see :mod:`prereg.ppo.gym_backend`.

Why one file of ~550 lines: rollout, GAE, the minibatch update and their ``lax.scan`` form one
jitted program (the PureJaxRL pattern) over one train state; split, the state's layout would
leak across modules. Networks, GAE and normalisation are already their own modules.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from prereg.core.errors import ConfigError
from prereg.ppo.config import PPOConf
from prereg.ppo.gae import compute_gae
from prereg.ppo.networks import (
    TIERS,
    actor_mean,
    critic_value,
    gaussian_entropy,
    gaussian_log_prob,
    init_params,
)
from prereg.ppo.normalizer import (
    NormalizerState,
    init_normalizer,
    normalize,
    update_normalizer,
)
from prereg.ppo.validate import validate_ppo_knobs

METRIC_NAMES: tuple[str, ...] = (
    "update",
    "env_steps",
    "mean_reward",
    "episode_return",
    "success_rate",
    "entropy",
    "log_std",
    "value_loss",
    "policy_loss",
    "approx_kl",
    "clipfrac",
    "explained_variance",
)
"""Per-update metrics returned by ``run_chunk`` (``sps`` is the caller's: wall time)."""


# --------------------------------------------------------------------------- config


class _TrainerSettings:
    """What :class:`PPOConfig` adds to its fields: checks when built, and the batch size."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # Enum fields from plain strings (checkpoint meta)
            if isinstance(f.default, enum.Enum) and not isinstance(
                getattr(self, f.name), enum.Enum
            ):
                choices = type(f.default)
                value = getattr(self, f.name)
                if value not in {c.value for c in choices}:
                    raise ConfigError(f"ppo.{f.name}", f"unknown option {value!r}", choices)
                object.__setattr__(self, f.name, choices(value))
        validate_ppo_knobs(self)  # the command line's checks: the same one-line errors
        if self.tier not in TIERS:
            raise ConfigError("tier", f"unknown option {self.tier!r}", sorted(TIERS), self.tier)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps


def _frozen_view(schema: type, name: str, extra: list, base: type) -> type:
    """A frozen dataclass with ``schema``'s fields (names, types, defaults), then ``extra``."""
    fields = [
        (f.name, f.type, dataclasses.field(default=f.default)) for f in dataclasses.fields(schema)
    ]
    return dataclasses.make_dataclass(
        name, fields + extra, bases=(base,), frozen=True, namespace={"__module__": __name__}
    )


PPOConfig = _frozen_view(PPOConf, "PPOConfig", [("tier", "str", "medium")], _TrainerSettings)
PPOConfig.__doc__ = """The trainer's settings: a frozen copy of the Hydra schema's ``ppo`` section.

Its fields are :class:`prereg.ppo.config.PPOConf`'s, with the same names, types and defaults
(there is no second list of them), plus ``tier`` (the name of a tier in
:data:`prereg.ppo.networks.TIERS`; Hydra keeps it in its own ``tier`` group).  Building one
runs :func:`prereg.ppo.validate.validate_ppo_knobs`, so a bad value raises the command line's
one-line :class:`~prereg.core.errors.ConfigError` (a ``ValueError``).  The trainer reads the
optimisation fields; the run settings (``updates`` aside, the ``anneal_lr`` horizon) are the
runner's.
"""


def trainer_config(ppo: Any, tier: str) -> Any:
    """The :class:`PPOConfig` of a ``ppo`` section (a DictConfig, a dict or checkpoint meta).

    Keys the schema does not know are left out, and keys it gained since ``ppo`` was written
    take their defaults, which are the values runs used before the key existed: a checkpoint
    written by an older prereg rebuilds the same trainer.
    """
    names = {f.name for f in dataclasses.fields(PPOConf)}
    return PPOConfig(**{k: v for k, v in dict(ppo).items() if k in names}, tier=str(tier))


# ----------------------------------------------------------------------- pytrees


class Hypers(NamedTuple):
    """The hyper-parameters a vmapped run may vary per member, as (traced) float32 values.

    The optimiser's state does not depend on them (the lr enters only the update, see
    :func:`make_optimizer`), so members of one program share one state layout.
    """

    lr: Any
    value_coef: Any
    entropy_coef: Any
    clip_range: Any


def hypers_of(cfg: Any, n: int | None = None) -> Hypers:
    """``cfg``'s :class:`Hypers` as float32 scalars, or as arrays of ``n`` equal members."""
    shape = () if n is None else (int(n),)
    return Hypers(
        *(jnp.full(shape, getattr(cfg, f), jnp.float32) for f in Hypers._fields)  # type: ignore[arg-type]
    )


class Transition(NamedTuple):
    """One rollout, time-major: every field is (num_steps, num_envs, ...)."""

    obs: jax.Array  # normalised observation the policy saw
    action: jax.Array  # unclipped Gaussian sample, (T, N, action_dim)
    logp: jax.Array  # log-prob of ``action`` under the behaviour policy
    value: jax.Array  # V(obs)
    reward: jax.Array
    done: jax.Array  # episode ended at this step (terminated or truncated)
    truncated: jax.Array  # ended by truncation only (bootstrap from final_value)
    final_value: jax.Array  # V(final observation); used only where truncated
    valid: jax.Array  # 1.0 for a real transition, 0.0 for padding (gym next-step resets)


@flax.struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    normalizer: NormalizerState
    env_state: Any  # batched (num_envs) env state
    obs: jax.Array  # raw observation of each env, to act on next
    rng: jax.Array  # raw uint32 PRNG key
    update: jax.Array  # int32, updates done so far
    env_steps: jax.Array  # int32, env steps consumed so far
    ep_return: jax.Array  # f32[num_envs], return of each env's running episode
    ep_length: jax.Array  # int32[num_envs]


# -------------------------------------------------------------- shared pure pieces


def make_optimizer(cfg: PPOConfig, lr: Any = None) -> optax.GradientTransformation:
    """Global-norm clipping then Adam; with ``anneal_lr`` the lr falls linearly to 0 over the
    ``updates`` updates' minibatch steps (counted by the optimiser state, so a resumed run
    continues the same schedule).  ``lr`` (default ``cfg.lr``) may be a traced value: the
    optimiser's state has the same layout whatever it is."""
    lr = cfg.lr if lr is None else lr
    if cfg.anneal_lr:
        steps = cfg.updates * cfg.update_epochs * cfg.num_minibatches
        lr = optax.linear_schedule(lr, 0.0, steps)
    return optax.chain(
        optax.clip_by_global_norm(cfg.max_grad_norm),
        optax.adam(lr, eps=cfg.adam_eps),
    )


def policy_step(
    params, normalizer: NormalizerState, raw_obs, key, obs_clip: float = PPOConf.obs_clip
):
    """Act on a batch of raw observations (N, obs_dim).

    Merges the batch into the normaliser first, then normalises it with the result.
    Returns ``(normalizer, norm_obs, action, logp, value)``; ``action`` is the
    unclipped Gaussian sample (map it with :func:`make_action_map` for the env).
    """
    normalizer = update_normalizer(normalizer, raw_obs)
    obs = normalize(normalizer, raw_obs, obs_clip)
    mean = actor_mean(params, obs)
    log_std = params["log_std"]
    action = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    logp = gaussian_log_prob(mean, log_std, action)
    value = critic_value(params, obs)
    return normalizer, obs, action, logp, value


def make_action_map(low, high) -> Callable:
    """Policy units -> env units: clip to [-1, 1], then map linearly onto [low, high].

    Dimensions with an infinite bound get the clipped action unchanged.
    """
    low = np.asarray(low, np.float32)
    high = np.asarray(high, np.float32)
    if np.all(low == -1.0) and np.all(high == 1.0):
        return lambda a: jnp.clip(a, -1.0, 1.0)
    finite = np.isfinite(low) & np.isfinite(high)
    lo = np.where(finite, low, -1.0).astype(np.float32)
    hi = np.where(finite, high, 1.0).astype(np.float32)

    def act_map(a):
        a = jnp.clip(a, -1.0, 1.0)
        return lo + 0.5 * (a + 1.0) * (hi - lo)

    return act_map


def _masked_mean(x, m, n):
    return jnp.sum(x * m) / n


def explained_variance(values, returns, mask=None):
    """1 - Var[R - V] / Var[R] over the (masked) batch; NaN when Var[R] == 0."""
    m = jnp.ones_like(returns) if mask is None else mask
    n = jnp.maximum(jnp.sum(m), 1.0)
    r_mean = _masked_mean(returns, m, n)
    var_r = _masked_mean((returns - r_mean) ** 2, m, n)
    res = returns - values
    res_mean = _masked_mean(res, m, n)
    var_res = _masked_mean((res - res_mean) ** 2, m, n)
    return jnp.where(var_r > 0, 1.0 - var_res / jnp.where(var_r > 0, var_r, 1.0), jnp.nan)


def make_update_fn(cfg: PPOConfig, tx: optax.GradientTransformation) -> Callable:
    """``update(params, opt_state, batch: Transition, last_value, rng, hp=None)``.

    Runs GAE on the (T, N) batch, then ``update_epochs`` x ``num_minibatches``
    clipped-surrogate steps.  Returns ``(params, opt_state, metrics)`` where metrics
    are scalars: losses / approx_kl / clipfrac averaged over every minibatch step,
    explained_variance of the rollout values, entropy and log_std of the updated
    policy.  ``hp`` (:class:`Hypers`, possibly traced) replaces ``cfg``'s lr, value_coef,
    entropy_coef and clip_range (and ``tx`` by :func:`make_optimizer` at ``hp.lr``).
    Pure: jit it, or call it inside a jitted scan.
    """
    n_mb = cfg.num_minibatches

    def loss_fn(params, mb, hp: Hypers):
        eps = hp.clip_range
        m = mb["valid"]
        n = jnp.maximum(jnp.sum(m), 1.0)
        log_std = params["log_std"]
        logp = gaussian_log_prob(actor_mean(params, mb["obs"]), log_std, mb["action"])
        logratio = logp - mb["logp"]
        ratio = jnp.exp(logratio)
        adv = mb["adv"]
        adv_mean = _masked_mean(adv, m, n)
        adv_std = jnp.sqrt(_masked_mean((adv - adv_mean) ** 2, m, n))
        adv = (adv - adv_mean) / (adv_std + 1e-8)
        pg = jnp.maximum(-adv * ratio, -adv * jnp.clip(ratio, 1.0 - eps, 1.0 + eps))
        policy_loss = _masked_mean(pg, m, n)
        value = critic_value(params, mb["obs"])
        value_loss = _masked_mean((value - mb["ret"]) ** 2, m, n)
        entropy = gaussian_entropy(log_std)
        loss = policy_loss + hp.value_coef * value_loss - hp.entropy_coef * entropy
        aux = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "approx_kl": _masked_mean((ratio - 1.0) - logratio, m, n),
            "clipfrac": _masked_mean((jnp.abs(ratio - 1.0) > eps).astype(jnp.float32), m, n),
        }
        return loss, aux

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def update(params, opt_state, batch: Transition, last_value, rng, hp: Hypers | None = None):
        opt = tx if hp is None else make_optimizer(cfg, hp.lr)
        if hp is None:  # python floats: exactly the single run's constants
            hp = Hypers(cfg.lr, cfg.value_coef, cfg.entropy_coef, cfg.clip_range)
        adv, ret = compute_gae(
            batch.reward,
            batch.value,
            batch.done,
            last_value,
            cfg.gamma,
            cfg.gae_lambda,
            truncated=batch.truncated,
            truncated_values=batch.final_value,
        )
        size = batch.reward.size
        if size % n_mb:
            raise ValueError(f"batch of {size} transitions does not split into {n_mb} minibatches")
        mb_size = size // n_mb
        flat = {
            "obs": batch.obs.reshape((size,) + batch.obs.shape[2:]),
            "action": batch.action.reshape((size,) + batch.action.shape[2:]),
            "logp": batch.logp.reshape(size),
            "adv": adv.reshape(size),
            "ret": ret.reshape(size),
            "valid": batch.valid.astype(jnp.float32).reshape(size),
        }
        ev = explained_variance(batch.value.reshape(size), flat["ret"], flat["valid"])

        def minibatch_step(carry, mb):
            params, opt_state = carry
            grads, aux = grad_fn(params, mb, hp)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), aux

        def epoch(carry, key):
            perm = jax.random.permutation(key, size)
            shuffled = jax.tree_util.tree_map(
                lambda x: x[perm].reshape((n_mb, mb_size) + x.shape[1:]), flat
            )
            return jax.lax.scan(minibatch_step, carry, shuffled)

        (params, opt_state), aux = jax.lax.scan(
            epoch, (params, opt_state), jax.random.split(rng, cfg.update_epochs)
        )
        metrics = {k: jnp.mean(v) for k, v in aux.items()}
        log_std = params["log_std"]
        metrics["entropy"] = gaussian_entropy(log_std)
        metrics["log_std"] = jnp.mean(log_std)
        metrics["explained_variance"] = ev
        return params, opt_state, metrics

    return update


def episode_metrics(n_finished, return_sum, n_success):
    """(episode_return, success_rate) of the episodes finished in an update; NaN if none."""
    n = jnp.asarray(n_finished, jnp.float32)
    safe = jnp.maximum(n, 1.0)
    return (
        jnp.where(n > 0, return_sum / safe, jnp.nan),
        jnp.where(n > 0, n_success / safe, jnp.nan),
    )


# ------------------------------------------------------------------- the trainer


def space_dims(env) -> tuple[int, int]:
    obs_dim = getattr(env, "obs_dim", None)
    if obs_dim is None:
        obs_dim = int(np.prod(env.observation_space.shape))
    action_dim = getattr(env, "action_dim", None)
    if action_dim is None:
        action_dim = int(np.prod(env.action_space.shape))
    return int(obs_dim), int(action_dim)


class EnvFns:
    """Single-env reset/step closures over a functional env and its params (vmap them)."""

    def __init__(self, env, env_params):
        self.env = env
        self.params = env_params
        self.act_map = make_action_map(env.action_space.low, env.action_space.high)
        self._truncated = getattr(env, "truncated", None)
        self._info = getattr(env, "info", None)
        self.max_episode_steps = getattr(env, "max_episode_steps", None)

    def reset(self, key):
        k_init, k_obs = jax.random.split(key)
        state = self.env.initial(k_init, self.params)
        obs = self.env.observation(state, k_obs, self.params)
        return state, jnp.asarray(obs, jnp.float32).reshape(-1)

    def step(self, state, env_action, key, ep_length):
        """One auto-resetting step.

        Returns (state', obs', final_obs, reward, done, truncated_only, success) where
        ``final_obs`` is the observation of the post-transition state (before any
        reset) and ``state'``/``obs'`` are the reset ones where ``done``.
        """
        env, p = self.env, self.params
        k_tr, k_rew, k_term, k_obs, k_reset = jax.random.split(key, 5)
        nxt = env.transition(state, env_action, k_tr, p)
        reward = jnp.asarray(env.reward(state, env_action, nxt, k_rew, p), jnp.float32)
        term = jnp.asarray(env.terminal(nxt, k_term, p), bool)
        if self._truncated is not None:
            trunc = jnp.asarray(self._truncated(nxt, p), bool)
        elif self.max_episode_steps is not None:
            trunc = ep_length + 1 >= self.max_episode_steps
        else:
            trunc = jnp.asarray(False)
        if self._info is not None:
            success = jnp.asarray(self._info(nxt, p)["success"], bool)
        else:
            success = term
        final_obs = jnp.asarray(env.observation(nxt, k_obs, p), jnp.float32).reshape(-1)
        done = term | trunc
        reset_state, reset_obs = self.reset(k_reset)
        new_state = jax.tree_util.tree_map(lambda r, s: jnp.where(done, r, s), reset_state, nxt)
        new_obs = jnp.where(done, reset_obs, final_obs)
        return new_state, new_obs, final_obs, reward, done, trunc & ~term, success


class PPOTrainer:
    """PPO on a functional JAX env; see the module docstring.

    ``init(seed) -> TrainState``; ``run_chunk(state, n) -> (state, metrics)`` where
    metrics maps each of :data:`METRIC_NAMES` to a numpy array of length ``n`` (of shape
    ``(num_seeds, n)`` when ``cfg.num_seeds`` > 1: the state is then a stack of
    ``num_seeds`` states, seeds ``seed .. seed+num_seeds-1``, trained by one vmapped chunk);
    ``restore(flat) -> TrainState`` from :func:`prereg.training.checkpoints.load_checkpoint`.
    """

    def __init__(self, env, env_params, cfg: PPOConfig):
        self.env = env
        self.env_params = env_params
        self.cfg = cfg
        self.obs_dim, self.action_dim = space_dims(env)
        self.tx = make_optimizer(cfg)
        self.update_fn = make_update_fn(cfg, self.tx)
        self.fns = EnvFns(env, env_params)
        self.num_seeds = int(getattr(cfg, "num_seeds", 1))
        self.hypers = hypers_of(cfg, self.num_seeds)  # the vmapped chunk's default members
        self._init_jit = jax.jit(self._init)
        self._chunk_fns: dict[int, Callable] = {}

    # -- state ---------------------------------------------------------------
    def _init(self, seed):
        cfg = self.cfg
        rng = jax.random.PRNGKey(seed)
        rng, k_params, k_env = jax.random.split(rng, 3)
        params = init_params(k_params, self.obs_dim, self.action_dim, cfg.tier, cfg.log_std_init)
        env_state, obs = jax.vmap(self.fns.reset)(jax.random.split(k_env, cfg.num_envs))
        return TrainState(
            params=params,
            opt_state=self.tx.init(params),
            normalizer=init_normalizer(self.obs_dim),
            env_state=env_state,
            obs=obs,
            rng=rng,
            update=jnp.zeros((), jnp.int32),
            env_steps=jnp.zeros((), jnp.int32),
            ep_return=jnp.zeros((cfg.num_envs,), jnp.float32),
            ep_length=jnp.zeros((cfg.num_envs,), jnp.int32),
        )

    def seeds(self, seed: int | None = None) -> list[int]:
        """The training seeds of a run starting at ``seed`` (default ``cfg.seed``)."""
        first = int(self.cfg.seed if seed is None else seed)
        return list(range(first, first + self.num_seeds))

    def init(self, seed: int | None = None) -> TrainState:
        """A fresh state: one seed's, or the stack of :meth:`seeds` when ``num_seeds`` > 1."""
        if self.num_seeds == 1:
            return self._init_jit(jnp.asarray(self.cfg.seed if seed is None else seed, jnp.int32))
        return self._init_many(self.seeds(seed))

    def _init_many(self, seeds: list[int]) -> TrainState:
        """The members' fresh states, stacked: each initialised alone, not vmapped.

        A vmapped init batches the orthogonal initialisers' QR factorisations, which jaxlib's
        LAPACK kernel splits over XLA's intra-op thread pool and waits for on a thread of that
        same pool; with two such kernels running on a 2-thread pool both wait for good (seen:
        tier large, 4 members, every thread idle).  One unbatched init per member never splits.
        """
        states = [self._init_jit(jnp.asarray(s, jnp.int32)) for s in seeds]
        return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)

    def init_members(self, seeds: list[int]) -> TrainState:
        """A stack of ``len(seeds)`` fresh states, member k from ``seeds[k]`` (seeds may
        repeat: the vmapped ladder gives every candidate the same seeds)."""
        assert len(seeds) == self.num_seeds, (seeds, self.num_seeds)
        return self._init_many(list(seeds))

    def state_template(self):
        """Shapes/dtypes of a TrainState, stacked when ``num_seeds`` > 1 (no computation)."""
        if self.num_seeds == 1:
            return jax.eval_shape(self._init, jnp.zeros((), jnp.int32))
        return jax.eval_shape(jax.vmap(self._init), jnp.zeros((self.num_seeds,), jnp.int32))

    def restore(self, flat: dict) -> TrainState:
        """TrainState from a checkpoint's flat ``{path: array}`` dict."""
        from prereg.training.checkpoints import unflatten_like

        return unflatten_like(self.state_template(), flat)

    # -- one update ------------------------------------------------------------
    def _rollout(self, params, normalizer, env_state, obs, ep_return, ep_length, rng):
        cfg = self.cfg
        step_env = jax.vmap(self.fns.step)

        def step(carry, _):
            normalizer, env_state, obs, ep_return, ep_length, rng = carry
            rng, k_act, k_env = jax.random.split(rng, 3)
            normalizer, obs_n, action, logp, value = policy_step(
                params, normalizer, obs, k_act, cfg.obs_clip
            )
            env_state, next_obs, final_obs, reward, done, trunc, success = step_env(
                env_state,
                self.fns.act_map(action),
                jax.random.split(k_env, cfg.num_envs),
                ep_length,
            )
            final_value = critic_value(params, normalize(normalizer, final_obs, cfg.obs_clip))
            ep_return = ep_return + reward
            stats = (
                jnp.sum(done.astype(jnp.int32)),
                jnp.sum(jnp.where(done, ep_return, 0.0)),
                jnp.sum((done & success).astype(jnp.int32)),
            )
            ep_return = jnp.where(done, 0.0, ep_return)
            ep_length = jnp.where(done, 0, ep_length + 1)
            tr = Transition(
                obs=obs_n,
                action=action,
                logp=logp,
                value=value,
                reward=reward,
                done=done,
                truncated=trunc,
                final_value=final_value,
                valid=jnp.ones_like(reward),
            )
            return (normalizer, env_state, next_obs, ep_return, ep_length, rng), (tr, stats)

        carry = (normalizer, env_state, obs, ep_return, ep_length, rng)
        return jax.lax.scan(step, carry, None, length=cfg.num_steps)

    def _one_update(self, state: TrainState, hp: Hypers | None = None):
        cfg = self.cfg
        rng, k_roll, k_upd = jax.random.split(state.rng, 3)
        carry, (batch, stats) = self._rollout(
            state.params,
            state.normalizer,
            state.env_state,
            state.obs,
            state.ep_return,
            state.ep_length,
            k_roll,
        )
        normalizer, env_state, obs, ep_return, ep_length, _ = carry
        last_value = critic_value(state.params, normalize(normalizer, obs, cfg.obs_clip))
        params, opt_state, m = self.update_fn(
            state.params, state.opt_state, batch, last_value, k_upd, hp
        )
        n_fin, ret_sum, n_succ = (jnp.sum(s) for s in stats)
        episode_return, success_rate = episode_metrics(n_fin, ret_sum, n_succ)
        new = TrainState(
            params=params,
            opt_state=opt_state,
            normalizer=normalizer,
            env_state=env_state,
            obs=obs,
            rng=rng,
            update=state.update + 1,
            env_steps=state.env_steps + cfg.batch_size,
            ep_return=ep_return,
            ep_length=ep_length,
        )
        metrics = {
            "update": new.update,
            "env_steps": new.env_steps,
            "mean_reward": jnp.mean(batch.reward),
            "episode_return": episode_return,
            "success_rate": success_rate,
            **m,
        }
        return new, {k: metrics[k] for k in METRIC_NAMES}

    # -- chunks ----------------------------------------------------------------
    def chunk_fn(self, num_updates: int) -> Callable:
        """The jitted chunk of ``num_updates`` updates (cached): ``state -> (state, metrics)``,
        or with ``num_seeds`` > 1 ``(states, hypers) -> (states, metrics)``, vmapped over the
        members (each a whole train state and its :class:`Hypers`)."""
        num_updates = int(num_updates)
        if num_updates < 1:
            raise ValueError(f"num_updates must be >= 1, got {num_updates}")
        fn = self._chunk_fns.get(num_updates)
        if fn is None:
            if self.num_seeds == 1:

                def chunk(state):
                    return jax.lax.scan(
                        lambda s, _: self._one_update(s), state, None, length=num_updates
                    )

            else:

                def one_member(state, hp):
                    return jax.lax.scan(
                        lambda s, _: self._one_update(s, hp), state, None, length=num_updates
                    )

                chunk = jax.vmap(one_member)
            fn = self._chunk_fns[num_updates] = jax.jit(chunk)
        return fn

    def run_chunk(self, state: TrainState, num_updates: int, hypers: Hypers | None = None):
        """Run ``num_updates`` PPO updates; returns (state, {metric: np.ndarray[n]}), the
        arrays ``(num_seeds, n)`` when ``num_seeds`` > 1 (members' ``hypers`` default to
        ``cfg``'s)."""
        if self.num_seeds == 1:
            state, metrics = self.chunk_fn(num_updates)(state)
        else:
            hp = self.hypers if hypers is None else hypers
            state, metrics = self.chunk_fn(num_updates)(state, hp)
        return state, {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}


def member(state: Any, k: int) -> Any:
    """Member ``k`` of a stacked (vmapped) state: an unbatched state of the same type."""
    return jax.tree_util.tree_map(lambda x: x[k], state)


def make_trainer(env, env_params, cfg: PPOConfig) -> PPOTrainer:
    return PPOTrainer(env, env_params, cfg)
