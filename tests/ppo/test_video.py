"""``prereg video``: deterministic episodes of an exported policy, decoded back from the file."""

from __future__ import annotations

import imageio.v3 as iio
import jax.numpy as jnp
import numpy as np
import pytest

from prereg.__main__ import main
from prereg.ppo import video
from prereg.ppo.env import ENV_ID
from prereg.ppo.normalizer import NormalizerState
from prereg.ppo.policy import export_policy

OBS_DIM = 12


def steering_policy(path):
    """A hand-made small-tier actor: thrust towards the goal ahead, torque towards its side
    (MesaDock obs 0/1 are the goal in the body frame), so the vehicle visibly drives."""
    eye = lambda n, m, s: jnp.zeros((n, m)).at[jnp.arange(2), jnp.arange(2)].set(s)  # noqa: E731
    actor = {
        "hidden_0": {"kernel": eye(OBS_DIM, 64, 1.0), "bias": jnp.zeros(64)},
        "hidden_1": {"kernel": eye(64, 64, 1.0), "bias": jnp.zeros(64)},
        "out": {"kernel": eye(64, 2, 3.0), "bias": jnp.zeros(2)},
    }
    norm = NormalizerState(count=jnp.float32(1.0), mean=jnp.zeros(OBS_DIM), var=jnp.ones(OBS_DIM))
    meta = {"env_id": ENV_ID, "mixed_lambda": 0.0}
    params = {"actor": actor, "log_std": jnp.zeros(2)}
    return export_policy(path / "policies" / "policy", params, norm, "small", meta)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    run = tmp_path_factory.mktemp("video_run")
    steering_policy(run)
    out, episodes = video.record_video(run, seed_start=10000, episodes=2)
    return run, out, episodes


def test_the_mp4_holds_every_frame_of_each_episode_and_they_move(recorded):
    run, out, episodes = recorded
    assert out == run / "policies" / "policy_seed_10000_x2.mp4"
    frames = iio.imread(out)  # decoded by ffmpeg
    expected = np.concatenate([e.frames for e in episodes])
    assert [e.seed for e in episodes] == [10000, 10001]
    assert frames.shape == expected.shape == (sum(len(e.frames) for e in episodes), 256, 256, 3)
    # lossy H.264, yet the decoded frames are close to the rendered ones (every 10th checked)
    assert np.abs(frames[::10].astype(np.int16) - expected[::10]).mean() < 4.0
    # consecutive frames differ, below the status lines too: the vehicle moves
    body = frames[:, 30:]
    assert (body[1:] != body[:-1]).any(axis=(1, 2, 3)).mean() > 0.9
    assert not np.array_equal(episodes[0].frames[0], episodes[1].frames[0])  # another start


def test_same_policy_and_seeds_same_frames_and_the_file_is_not_rewritten(recorded, capsys):
    run, out, episodes = recorded
    again = video.record_episode(video.make_env({"env_id": ENV_ID}), _policy(run), 10000)
    np.testing.assert_array_equal(again.frames, episodes[0].frames)
    before = out.stat().st_mtime_ns
    assert main(["video", str(run), "--episodes", "2"]) == 0
    assert "already there" in capsys.readouterr().out
    assert out.stat().st_mtime_ns == before


def test_gif_where_no_mp4_encoder(recorded, monkeypatch, capsys):
    run, _, episodes = recorded
    frames = episodes[0].frames[:40]
    decoded = iio.imread(video.encode(frames, "gif"), extension=".gif")
    np.testing.assert_array_equal(decoded[..., :3], frames)  # GIF: exact colours
    chosen = []  # record_video picks GIF when ffmpeg is missing (its frames as above)
    monkeypatch.setattr(video, "mp4_encoder", lambda: False)
    monkeypatch.setattr(video, "encode", lambda frames, fmt: chosen.append(fmt) or b"GIF89a")
    assert main(["video", str(run / "policies" / "policy.npz"), "--episodes", "1"]) == 0
    gif = run / "policies" / "policy_seed_10000_x1.gif"
    assert f"wrote {gif}: 1 episodes (seeds 10000..10000)" in capsys.readouterr().out
    assert chosen == ["gif"] and gif.read_bytes() == b"GIF89a"


def test_bad_input_is_one_line_before_any_rendering(tmp_path, capsys):
    assert main(["video", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: video: {tmp_path} holds no policies/policy.npz (a finished PPO run has)"
    assert main(["video", str(tmp_path), "--episodes", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: episodes: must be >= 1, got 0"


def _policy(run):
    from prereg.ppo.policy import load_policy

    return load_policy(run / "policies" / "policy.npz")


@pytest.mark.slow
def test_video_every_records_the_policy_at_every_kth_periodic_eval(tmp_path):
    """``ppo.video_every=2`` with evals every 2 updates of 6: videos at updates 4 and 6 (the
    last eval always), each beside the policy it shows, and the job directory keeps its name."""
    from helpers import run_cli

    from prereg.ppo.policy import load_policy

    out = tmp_path / "run"
    args = [
        "experiment=ppo", "tier=small", "ppo.num_envs=8", "ppo.num_steps=16",
        "ppo.num_minibatches=2", "ppo.update_epochs=1", "ppo.updates=6", "ppo.chunk_updates=2",
        "ppo.eval_every=2", "ppo.eval_seeds=4", "ppo.progress=off", "ppo.video_every=2",
    ]  # fmt: skip
    proc = run_cli(*args, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    videos = sorted(p.name for p in (out / "videos").glob("*.mp4"))
    assert videos == [f"policy_update_{u:08d}_seed_10000_x1.mp4" for u in (4, 6)]
    for name in videos:
        frames = iio.imread(out / "videos" / name)
        assert frames.shape[1:] == (256, 256, 3) and 2 <= len(frames) <= 201
        assert (frames[1:] != frames[:-1]).any(axis=(1, 2, 3)).mean() > 0.5
    # the last video shows the exported final policy (same weights: same frames)
    final = video.record_episode(video.make_env({"env_id": ENV_ID}), _policy(out), 10000)
    last = video.record_episode(
        video.make_env({"env_id": ENV_ID}),
        load_policy(out / "videos" / "policy_update_00000006.npz"),
        10000,
    )
    np.testing.assert_array_equal(final.frames, last.frames)
