"""Exported policies: a single ``.npz`` file a user runs with numpy alone.

The file holds the actor MLP, the frozen observation normaliser, the action bounds,
the tier and a JSON ``meta`` dict; no critic, optimiser or JAX objects.  The loaded
policy is deterministic (mean action)::

    import gymnasium, prereg.ppo.env  # noqa: F401  (registers prereg/MesaDock-v0)
    from prereg.ppo.policy import load_policy

    policy = load_policy("outputs/.../policies/final.npz")   # the one call
    env = gymnasium.make("prereg/MesaDock-v0")
    obs, info = env.reset(seed=10000)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        done = terminated or truncated

``policy(obs)`` takes one observation (obs_dim,) or a batch (n, obs_dim) and returns
float32 action(s) already clipped and mapped to the env's action bounds.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import jax
import numpy as np

from prereg.core.atomic import atomic_write_bytes
from prereg.ppo.config import PPOConf
from prereg.ppo.networks import hidden_sizes

FORMAT = "prereg.ppo.policy/1"
_VAR_EPS = 1e-8  # as in prereg.ppo.normalizer.normalize


def export_policy(
    path,
    params,
    normalizer,
    tier: str,
    meta: dict | None = None,
    action_low=None,
    action_high=None,
    obs_clip: float = PPOConf.obs_clip,
) -> Path:
    """Write the deterministic policy of ``params`` + ``normalizer`` to ``path`` (.npz).

    ``action_low``/``action_high`` default to [-1, 1] per action dim.  Atomic (temp
    file then ``os.replace``).
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
    actor = jax.device_get(params["actor"])
    n_hidden = len(hidden_sizes(actor))
    action_dim = int(np.shape(params["log_std"])[-1])
    low = np.full(action_dim, -1.0, np.float32) if action_low is None else action_low
    high = np.full(action_dim, 1.0, np.float32) if action_high is None else action_high
    arrays = {
        "format": np.array(FORMAT),
        "tier": np.array(str(tier)),
        "meta_json": np.array(json.dumps(meta or {}, sort_keys=True)),
        "n_hidden": np.array(n_hidden),
        "norm_mean": np.asarray(jax.device_get(normalizer.mean), np.float32),
        "norm_var": np.asarray(jax.device_get(normalizer.var), np.float32),
        "obs_clip": np.array(obs_clip, np.float32),
        "action_low": np.asarray(low, np.float32).reshape(action_dim),
        "action_high": np.asarray(high, np.float32).reshape(action_dim),
        "log_std": np.asarray(jax.device_get(params["log_std"]), np.float32),
    }
    for name in [f"hidden_{i}" for i in range(n_hidden)] + ["out"]:
        arrays[f"{name}.kernel"] = np.asarray(actor[name]["kernel"], np.float32)
        arrays[f"{name}.bias"] = np.asarray(actor[name]["bias"], np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return path


class Policy:
    """Deterministic numpy policy: ``policy(obs) -> action``; see the module doc."""

    def __init__(self, arrays: dict):
        self.tier = str(arrays["tier"])
        self.meta = json.loads(str(arrays["meta_json"]))
        n_hidden = int(arrays["n_hidden"])
        self.layers = [
            (arrays[f"{name}.kernel"], arrays[f"{name}.bias"])
            for name in [f"hidden_{i}" for i in range(n_hidden)] + ["out"]
        ]
        self.mean = arrays["norm_mean"]
        self.scale = 1.0 / np.sqrt(arrays["norm_var"] + np.float32(_VAR_EPS))
        self.obs_clip = np.float32(arrays["obs_clip"])
        self.low = arrays["action_low"]
        self.high = arrays["action_high"]
        self.log_std = arrays["log_std"]
        self.obs_dim = int(self.layers[0][0].shape[0])
        self.action_dim = int(self.layers[-1][0].shape[1])

    def __call__(self, obs) -> np.ndarray:
        x = np.asarray(obs, np.float32)
        if x.shape[-1] != self.obs_dim:
            raise ValueError(f"policy expects observations of size {self.obs_dim}, got {x.shape}")
        x = np.clip((x - self.mean) * self.scale, -self.obs_clip, self.obs_clip)
        for kernel, bias in self.layers[:-1]:
            x = np.tanh(x @ kernel + bias)
        kernel, bias = self.layers[-1]
        a = np.clip(x @ kernel + bias, -1.0, 1.0)
        finite = np.isfinite(self.low) & np.isfinite(self.high)
        scaled = self.low + 0.5 * (a + 1.0) * (self.high - self.low)
        return np.where(finite, scaled, a).astype(np.float32)


def load_policy(path) -> Policy:
    """Load an exported policy; the result maps observation(s) to action(s), numpy only."""
    with np.load(Path(path), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if str(arrays.get("format", "")) != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} policy file")
    return Policy(arrays)
