"""GAE against a plain Python loop, with terminations and truncations."""

from __future__ import annotations

import numpy as np
import pytest

from prereg.ppo.gae import compute_gae


def reference_gae(rewards, values, terminated, truncated, final_values, last_value, gamma, lam):
    """Direct loop over time for one env: termination -> no bootstrap; truncation ->
    bootstrap from V(final obs) and cut the lambda chain; else continue into t+1."""
    T = len(rewards)
    adv = np.zeros(T)
    running = 0.0
    for t in reversed(range(T)):
        if terminated[t]:
            next_v, carry_on = 0.0, 0.0
        elif truncated[t]:
            next_v, carry_on = final_values[t], 0.0
        else:
            next_v = values[t + 1] if t + 1 < T else last_value
            carry_on = 1.0
        delta = rewards[t] + gamma * next_v - values[t]
        running = delta + gamma * lam * carry_on * running
        adv[t] = running
    return adv, adv + np.asarray(values)


@pytest.mark.parametrize("gamma, lam", [(0.99, 0.95), (0.5, 0.0)])
def test_matches_python_loop(gamma, lam):
    rng = np.random.default_rng(0)
    T, N = 17, 5
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    final_values = rng.normal(size=(T, N)).astype(np.float32) * 5
    last_value = rng.normal(size=N).astype(np.float32)
    term = rng.random((T, N)) < 0.15
    trunc = rng.random((T, N)) < 0.15  # some steps are both: termination wins
    dones = term | trunc
    trunc_only = trunc & ~term
    adv, ret = compute_gae(
        rewards,
        values,
        dones,
        last_value,
        gamma,
        lam,
        truncated=trunc_only,
        truncated_values=final_values,
    )
    for i in range(N):
        ref_adv, ref_ret = reference_gae(
            rewards[:, i],
            values[:, i],
            term[:, i],
            trunc[:, i],
            final_values[:, i],
            last_value[i],
            gamma,
            lam,
        )
        np.testing.assert_allclose(np.asarray(adv)[:, i], ref_adv, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(ret)[:, i], ref_ret, rtol=1e-5, atol=1e-5)


def test_hand_computed_truncation_vs_termination():
    # one env, 3 steps, episode ends at t=1; gamma=0.5, lam=1
    r, v, last = [1.0, 2.0, 4.0], [10.0, 20.0, 30.0], 40.0
    fv = [0.0, 8.0, 0.0]
    # termination at t=1: A1 = 2 - 20 = -18; A0 = 1 + 0.5*20 - 10 + 0.5*A1 = -8;
    # A2 = 4 + 0.5*40 - 30 = -6
    adv, ret = compute_gae(
        np.array(r)[:, None], np.array(v)[:, None], np.array([0, 1, 0])[:, None], [last], 0.5, 1.0
    )
    np.testing.assert_allclose(np.asarray(adv)[:, 0], [-8.0, -18.0, -6.0])
    np.testing.assert_allclose(np.asarray(ret)[:, 0], [2.0, 2.0, 24.0])
    # truncation at t=1 bootstraps V(final obs)=8: A1 = 2 + 4 - 20 = -14, A0 = 1 + 10 - 10 - 7 = -6
    adv, _ = compute_gae(
        np.array(r)[:, None],
        np.array(v)[:, None],
        np.array([0, 1, 0])[:, None],
        [last],
        0.5,
        1.0,
        truncated=np.array([0, 1, 0])[:, None],
        truncated_values=np.array(fv)[:, None],
    )
    np.testing.assert_allclose(np.asarray(adv)[:, 0], [-6.0, -14.0, -6.0])


def test_no_dones_is_discounted_return_with_bootstrap():
    gamma = 0.9
    r = np.array([1.0, 0.0, 2.0], np.float32)[:, None]
    v = np.zeros((3, 1), np.float32)
    _, ret = compute_gae(r, v, np.zeros((3, 1)), np.array([5.0]), gamma, 1.0)
    expect0 = 1 + gamma * 0 + gamma**2 * 2 + gamma**3 * 5
    np.testing.assert_allclose(np.asarray(ret)[0, 0], expect0, rtol=1e-6)


def test_truncated_needs_values():
    with pytest.raises(ValueError, match="truncated_values"):
        compute_gae(
            np.zeros((2, 1)),
            np.zeros((2, 1)),
            np.zeros((2, 1)),
            np.zeros(1),
            0.9,
            0.9,
            truncated=np.zeros((2, 1)),
        )
