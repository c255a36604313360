"""Checkpoints (exact resume, corruption detection, atomic overwrite) and policy export."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from helpers import sibling_module

from prereg.ppo.networks import actor_mean
from prereg.ppo.normalizer import NormalizerState, normalize
from prereg.ppo.policy import export_policy, load_policy
from prereg.ppo.trainer import PPOConfig, make_trainer
from prereg.training.checkpoints import (
    CheckpointError,
    is_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def _sibling(name):
    """tests/ppo/<name>.py (toy env, shared trainer)."""
    return sibling_module(__file__, name)


@pytest.fixture(scope="module")
def trainer():
    return _sibling("test_trainer").tiny_trainer()


def random_params(obs_dim, action_dim, sizes=(64, 64), seed=0):
    """Actor/critic parameter dict with random numpy weights (no init compile needed)."""
    rng = np.random.default_rng(seed)

    def net(out_dim):
        dims, layers = (obs_dim, *sizes), {}
        for i in range(len(sizes)):
            layers[f"hidden_{i}"] = {
                "kernel": rng.normal(size=dims[i : i + 2]).astype(np.float32) / np.sqrt(dims[i]),
                "bias": rng.normal(size=dims[i + 1]).astype(np.float32) * 0.1,
            }
        layers["out"] = {
            "kernel": rng.normal(size=(sizes[-1], out_dim)).astype(np.float32),
            "bias": np.zeros(out_dim, np.float32),
        }
        return layers

    return {"actor": net(action_dim), "critic": net(1), "log_std": np.zeros(action_dim, np.float32)}


def _leaves_equal(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_resume_is_bit_identical(trainer, tmp_path):
    s0 = trainer.init(5)
    straight, m_straight = trainer.run_chunk(s0, 2)
    straight, m_straight2 = trainer.run_chunk(straight, 2)

    half, _ = trainer.run_chunk(s0, 2)
    meta = {"env_steps": int(half.env_steps), "note": "half"}
    save_checkpoint(tmp_path / "ck", half, meta)
    assert is_checkpoint(tmp_path / "ck")
    flat, meta_back = load_checkpoint(tmp_path / "ck")
    assert meta_back == meta
    assert all(isinstance(v, np.ndarray) for v in flat.values())
    assert int(flat[".env_steps"]) == 512 and int(flat[".update"]) == 2
    resumed = trainer.restore(flat)
    _leaves_equal(resumed, half)
    resumed, m_resumed = trainer.run_chunk(resumed, 2)
    _leaves_equal(resumed, straight)
    for k in m_straight2:
        np.testing.assert_array_equal(m_straight2[k], m_resumed[k], err_msg=k)


def test_corruption_is_detected(trainer, tmp_path):
    state = trainer.init(0)
    path = save_checkpoint(tmp_path / "ck", state, {"a": 1})
    data = (path / "state.npz").read_bytes()
    (path / "state.npz").write_bytes(data[: len(data) // 2])  # truncated
    assert not is_checkpoint(path)
    with pytest.raises(CheckpointError, match="sha256") as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)
    flipped = bytearray(data)
    flipped[len(flipped) // 3] ^= 0xFF
    (path / "state.npz").write_bytes(bytes(flipped))  # same size, one byte changed
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)
    (path / "checkpoint.json").unlink()
    assert not is_checkpoint(path)
    with pytest.raises(CheckpointError, match="checkpoint.json missing"):
        load_checkpoint(path)
    assert not is_checkpoint(tmp_path / "nowhere")


def test_overwrite_is_atomic_and_clean(trainer, tmp_path):
    s0 = trainer.init(0)
    s1 = s0.replace(env_steps=s0.env_steps + 7)
    save_checkpoint(tmp_path / "final", s0, {"v": 0})
    save_checkpoint(tmp_path / "final", s1, {"v": 1})
    flat, meta = load_checkpoint(tmp_path / "final")
    assert meta == {"v": 1} and int(flat[".env_steps"]) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]  # no temp dirs left
    record = json.loads((tmp_path / "final" / "checkpoint.json").read_text())
    assert len(record["sha256"]) == 64
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "bad", s0, {"x": object()})
    assert not (tmp_path / "bad").exists()


def test_restore_refuses_other_trainer(trainer, tmp_path):
    save_checkpoint(tmp_path / "ck", trainer.init(0), {})
    flat, _ = load_checkpoint(tmp_path / "ck")
    toy = _sibling("test_trainer")
    other = make_trainer(
        toy.PointMassEnv(), None, PPOConfig(**{**toy.TINY, "num_envs": 4, "num_minibatches": 2})
    )
    with pytest.raises(CheckpointError, match="does not fit"):
        other.restore(flat)  # template only: no compile


def test_exported_policy_matches_actor(tmp_path):
    params = random_params(3, 2, seed=1)
    norm = NormalizerState(
        count=np.float32(10.0),
        mean=np.array([0.5, -1.0, 2.0], np.float32),
        var=np.array([4.0, 0.25, 1.0], np.float32),
    )
    path = export_policy(
        tmp_path / "policy",
        params,
        norm,
        "small",
        {"variant": "x"},
        action_low=[-2.0, 0.0],
        action_high=[2.0, 1.0],
    )
    assert path.suffix == ".npz"
    policy = load_policy(path)
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32) * 3
    mean = np.clip(np.asarray(actor_mean(params, normalize(norm, obs))), -1, 1)
    expect = np.stack([2.0 * mean[:, 0], 0.5 * (mean[:, 1] + 1.0)], axis=1)
    np.testing.assert_allclose(policy(obs), expect, atol=1e-5)
    np.testing.assert_allclose(policy(obs[0]), expect[0], atol=1e-5)
    assert policy(obs).dtype == np.float32
    with pytest.raises(ValueError, match="size 3"):
        policy(np.zeros(4))


def test_exported_policy_runs_in_gymnasium_mesadock(tmp_path):
    envpkg = pytest.importorskip("prereg.ppo.env")
    gymnasium = pytest.importorskip("gymnasium")
    env = gymnasium.make(envpkg.ENV_ID)
    obs_dim = env.observation_space.shape[0]
    params = random_params(obs_dim, 2)
    norm = NormalizerState(
        np.float32(1.0), np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32)
    )
    policy = load_policy(export_policy(tmp_path / "p.npz", params, norm, "small", {}))
    obs, _ = env.reset(seed=10000)
    for _ in range(5):
        action = policy(obs)
        assert env.action_space.contains(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        assert np.isfinite(reward)
    env.close()
