"""``prereg video``: deterministic episodes of an exported policy, recorded to a video file.

The policy (``policies/policy.npz`` of a run, or any exported ``.npz``) acts with its mean
action in the env it was trained on (``meta.env_id``; MesaDock with its ``mixed_lambda``),
episode ``i`` reset with seed ``seed_start + i`` -- the same episodes as the eval at that
``seed_start``.  Every frame is the env's ``rgb_array`` render (the reset state, then one per
step).  The file goes beside the policy: an MP4 (H.264 through the ffmpeg binary that
``imageio-ffmpeg`` ships), or a GIF (Pillow) where no encoder is installed.  The same policy
and seeds give the same frames, so an existing file is reported and not rewritten.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prereg.core.atomic import atomic_write_bytes
from prereg.core.errors import ConfigError

POLICY_FILE = Path("policies") / "policy.npz"  # inside a PPO run directory
FPS = 20  # frames per second of the file: 200 steps = 10 s


@dataclass(frozen=True)
class Episode:
    """One recorded episode: its seed, frames (T+1, H, W, 3) uint8, return and outcome."""

    seed: int
    frames: np.ndarray
    episode_return: float
    success: bool


def policy_path(target: str | Path) -> Path:
    """The policy file of ``target`` (a PPO run directory or an exported ``.npz``)."""
    path = Path(target)
    if path.is_dir():
        path = path / POLICY_FILE
        if not path.is_file():
            seeds = sorted(p.parent.name for p in path.parent.glob("seed_*/policy.npz"))
            hint = f"; name one seed's policy: {path.parent}/{seeds[0]}/policy.npz" if seeds else ""
            raise ConfigError(
                "video", f"{target} holds no {POLICY_FILE} (a finished PPO run has){hint}"
            )
    elif path.suffix != ".npz" or not path.is_file():
        raise ConfigError("video", f"{target} is neither a PPO run directory nor a policy .npz")
    return path


def make_env(meta: dict[str, Any]) -> Any:
    """The policy's env (from its ``meta``) rendering ``rgb_array`` frames."""
    import gymnasium

    from prereg.ppo.env import ENV_ID, register

    env_id = str(meta.get("env_id") or ENV_ID)
    kwargs: dict[str, Any] = {"render_mode": "rgb_array"}
    if env_id == ENV_ID:
        register()
        if meta.get("mixed_lambda") is not None:
            kwargs["mixed_lambda"] = float(meta["mixed_lambda"])
    return gymnasium.make(env_id, **kwargs)


def record_episode(env: Any, policy: Any, seed: int) -> Episode:
    """Run one deterministic episode from ``reset(seed=seed)`` and keep every frame."""
    obs, info = env.reset(seed=seed)
    frames, total, done = [env.render()], 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        frames.append(env.render())
        total += float(reward)
        done = bool(terminated or truncated)
    return Episode(seed, np.stack(frames), total, bool(info.get("success", False)))


def encode(frames: np.ndarray, fmt: str, fps: int = FPS) -> bytes:
    """``frames`` (N, H, W, 3) uint8 as the bytes of an ``mp4`` or ``gif`` file."""
    import imageio.v2 as imageio

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # ffmpeg is started by fork+exec, which runs no Python in the child: JAX's warning
        # about forking a multithreaded process does not apply
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        path = Path(tmp) / f"video.{fmt}"
        if fmt == "mp4":  # yuv420p H.264: plays in browsers and players
            imageio.mimwrite(path, list(frames), fps=fps, codec="libx264", macro_block_size=16)
        else:
            imageio.mimwrite(path, list(frames), format="GIF", duration=1000 / fps, loop=0)
        return path.read_bytes()


def mp4_encoder() -> bool:
    """Whether an MP4 encoder is installed (``imageio-ffmpeg``'s bundled ffmpeg)."""
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return False
    return True


def video_path(policy: Path, seed_start: int, episodes: int, fmt: str) -> Path:
    """``<policy dir>/<policy name>_seed_<start>_x<episodes>.<fmt>``, beside the policy."""
    return policy.with_name(f"{policy.stem}_seed_{seed_start}_x{episodes}.{fmt}")


def record_video(
    target: str | Path, seed_start: int = 10000, episodes: int = 4, fmt: str | None = None
) -> tuple[Path, list[Episode] | None]:
    """Record ``episodes`` episodes of ``target``'s policy beside it; returns the file and the
    episodes (None when the file was already there: it is not rewritten)."""
    from prereg.ppo.policy import load_policy

    if episodes < 1:
        raise ConfigError("episodes", f"must be >= 1, got {episodes}")
    if fmt not in (None, "mp4", "gif"):
        raise ConfigError("format", f"unknown format {fmt!r}", ["mp4", "gif"])
    path = policy_path(target)
    fmt = fmt or ("mp4" if mp4_encoder() else "gif")
    out = video_path(path, seed_start, episodes, fmt)
    if out.exists():
        return out, None
    policy = load_policy(path)
    env = make_env(policy.meta)
    try:
        recorded = [record_episode(env, policy, seed_start + i) for i in range(episodes)]
    finally:
        env.close()
    atomic_write_bytes(out, encode(np.concatenate([e.frames for e in recorded]), fmt))
    return out, recorded


def summary_line(out: Path, recorded: Sequence[Episode] | None) -> str:
    """What ``prereg video`` prints."""
    if recorded is None:
        return f"{out}: already there (same policy and seeds give the same frames); not rewritten"
    n = sum(len(e.frames) for e in recorded)
    wins = sum(e.success for e in recorded)
    returns = ", ".join(f"{e.episode_return:.2f}" for e in recorded)
    seeds = f"{recorded[0].seed}..{recorded[-1].seed}"
    return (
        f"wrote {out}: {len(recorded)} episodes (seeds {seeds}), {n} frames; "
        f"success {wins}/{len(recorded)}, returns {returns}"
    )
