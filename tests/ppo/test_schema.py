"""One PPO schema: the trainer's ``PPOConfig`` is the Hydra ``PPOConf`` (frozen, plus the tier).

Every trainer setting is reachable as ``ppo.<key>=...``, its default lives once (in
``PPOConf``), and settings written by an older prereg (checkpoint meta without the keys added
since) rebuild the same trainer.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import run_cli

from prereg.ppo.config import Backend, PPOConf
from prereg.ppo.normalizer import OBS_CLIP
from prereg.ppo.trainer import PPOConfig, make_optimizer, trainer_config

#: the ``ppo`` settings a checkpoint of a run stored before anneal_lr, adam_eps,
#: log_std_init and obs_clip joined the schema (a real checkpoint's meta, trimmed)
OLD_SETTINGS = {
    "backend": "jax", "checkpoint_every": 100, "chunk_updates": 2, "clip_range": 0.2,
    "entropy_coef": 0.01, "eval_every": 3, "eval_seed_start": 10000, "eval_seeds": 4,
    "gae_lambda": 0.95, "gamma": 0.99, "init_from": None, "lr": 0.0003, "max_grad_norm": 0.5,
    "mixed_lambda": 0.0, "num_envs": 16, "num_minibatches": 4, "num_steps": 32,
    "progress": "off", "seed": 0, "update_epochs": 2, "updates": 6, "value_coef": 0.5,
    "variant": "reward_phase3",
}  # fmt: skip


def test_the_trainer_config_is_the_hydra_schema_plus_the_tier():
    schema = {f.name: f.default for f in dataclasses.fields(PPOConf)}
    view = {f.name: f.default for f in dataclasses.fields(PPOConfig)}
    assert view == {**schema, "tier": "medium"}
    assert [f.name for f in dataclasses.fields(PPOConfig)][:-1] == list(schema)
    cfg = PPOConfig(tier="small")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]
    # the values every registered run has used (and CleanRL's adam eps)
    assert (cfg.anneal_lr, cfg.adam_eps, cfg.log_std_init, cfg.obs_clip) == (
        False, 1e-5, 0.0, 10.0,
    )  # fmt: skip
    assert cfg.obs_clip == OBS_CLIP  # the normaliser's own default agrees
    assert cfg.max_grad_norm == 0.5 and cfg.batch_size == 64 * 128


def test_settings_of_an_older_checkpoint_rebuild_the_same_trainer_config():
    old = trainer_config(OLD_SETTINGS, "small")
    new = trainer_config({**OLD_SETTINGS, "adam_eps": 1e-5, "obs_clip": 10.0}, "small")
    assert old == new and old.backend is Backend.jax and old.anneal_lr is False
    # a key the schema no longer knows is left out rather than failing the rebuild
    assert trainer_config({**OLD_SETTINGS, "retired_knob": 1}, "small") == old


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"adam_eps": 0.0}, "ppo.adam_eps: must be > 0"),
        ({"obs_clip": 0.0}, "ppo.obs_clip: must be > 0"),
        ({"log_std_init": -21.0}, "ppo.log_std_init: must lie in [-20, 2]"),
        ({"anneal_lr": "yes"}, "ppo.anneal_lr: must be true or false"),
        ({"backend": "torch"}, "ppo.backend: unknown option 'torch'"),
    ],
)
def test_a_python_caller_gets_the_command_lines_one_line_errors(kw, message):
    with pytest.raises(ValueError) as info:
        PPOConfig(tier="small", **kw)
    assert str(info.value).startswith(message)


def _lr_of_each_step(cfg, n: int) -> list[float]:
    """The size of Adam's step at each of ``n`` steps of a constant gradient."""
    tx = make_optimizer(cfg)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    sizes = []
    for _ in range(n):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        sizes.append(float(jnp.abs(updates["w"])))
    return sizes


def test_anneal_lr_falls_linearly_to_zero_over_the_runs_updates():
    base = dict(tier="small", num_envs=4, num_steps=4, update_epochs=1, num_minibatches=2)
    flat = _lr_of_each_step(PPOConfig(**base, updates=2), 5)
    annealed = _lr_of_each_step(PPOConfig(**base, updates=2, anneal_lr=True), 5)
    np.testing.assert_allclose(flat, [3e-4] * 5, rtol=1e-4)  # Adam: |step| = lr here
    np.testing.assert_allclose(annealed, [3e-4, 2.25e-4, 1.5e-4, 0.75e-4, 0.0], rtol=1e-4)


def test_adam_eps_and_log_std_init_reach_the_optimiser_and_the_policy():
    from prereg.ppo.networks import init_params

    cfg = PPOConfig(tier="small", adam_eps=1.0)
    # one Adam step of a gradient of 1 clipped to max_grad_norm 0.5: lr * 0.5 / (0.5 + eps)
    np.testing.assert_allclose(_lr_of_each_step(cfg, 1), [3e-4 / 3], rtol=1e-4)
    params = init_params(
        jax.random.PRNGKey(0), 3, 2, "small", PPOConfig(log_std_init=-0.5).log_std_init
    )
    np.testing.assert_array_equal(params["log_std"], [-0.5, -0.5])
    assert isinstance(make_optimizer(cfg), optax.GradientTransformation)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ppo.adam_eps=0"], "error: ppo.adam_eps: must be > 0"),
        (["ppo.obs_clip=-1"], "error: ppo.obs_clip: must be > 0"),
        (["ppo.log_std_init=9"], "error: ppo.log_std_init: must lie in [-20, 2]"),
        (["ppo.max_grad_norm=0"], "error: ppo.max_grad_norm: must be > 0"),
        (["ppo.anneal_lr=maybe"], "error: ppo.anneal_lr:"),
    ],
)
def test_the_new_keys_are_checked_on_the_command_line(tmp_path, args, expected):
    out = tmp_path / "run"
    proc = run_cli("experiment=ppo", *args, f"hydra.run.dir={out}", timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(expected), proc.stderr
    assert not out.exists()
