"""The scan training loop: chunking is bit-identical, metrics are consistent, no recompiles."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from prereg.exp9 import model, train
from prereg.exp9 import predictor as pred

N_, M_ = 3, 2


@pytest.fixture(scope="module")
def setup():
    return model.make_teacher(N_, 1.0, 1000), model.init_theta(N_, M_, 2000)


def _run(log_q, theta0, lam, form, chunks, lr=0.02):
    run = train.make_chunk_runner(log_q, N_, M_, lam, form, lr)
    state, parts = train.init_state(theta0, lr), []
    for c in chunks:
        state, metrics = run(state, c)
        parts.append(metrics)
    return state, {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def test_chunked_equals_single_scan(setup):
    log_q, theta0 = setup
    s1, m1 = _run(log_q, theta0, 0.01, "rho", [2000])
    s2, m2 = _run(log_q, theta0, 0.01, "rho", [1000, 1000])  # 1000 shared with the forms test
    assert int(s1.step) == int(s2.step) == 2000
    np.testing.assert_array_equal(np.asarray(s1.theta), np.asarray(s2.theta))
    assert set(m1) == set(train.METRIC_KEYS) | {"theta"}
    for k in m1:
        np.testing.assert_array_equal(m1[k], m2[k], err_msg=k)


def test_metrics_consistent_and_lam_zero_loss_is_kl(setup):
    log_q, theta0 = setup
    state, m = _run(log_q, theta0, 0.0, "rho", [1000])
    np.testing.assert_array_equal(m["step"], np.arange(1000))
    np.testing.assert_array_equal(m["loss"], m["kl"])
    np.testing.assert_array_equal(m["theta"][0], theta0)
    assert all(np.isfinite(v).all() for v in m.values())
    assert m["kl"][-1] < 0.1 * m["kl"][0]
    t = jnp.asarray(m["theta"][50])
    ref = pred.predictor_jit(t, jnp.asarray(log_q), N_, M_)
    for k in ("kl", "rho", "signal", "noise", "rho_proj", "noise_proj"):
        assert abs(m[k][50] / float(ref[k]) - 1) < 1e-10, k
    np.testing.assert_allclose(m["grad_norm"][50], float(jnp.linalg.norm(ref["grad"])), rtol=1e-10)
    assert int(state.step) == 1000
    s2, m2 = _run(log_q, theta0, 0.0, "rho", [1, 999])  # chunking, lam = 0 path
    np.testing.assert_array_equal(np.asarray(s2.theta), np.asarray(state.theta))
    for k in m:
        np.testing.assert_array_equal(m[k], m2[k], err_msg=k)


def test_forms_give_different_trajectories_and_cache_is_reused(setup):
    log_q, theta0 = setup
    _, m_rho = _run(log_q, theta0, 0.01, "rho", [1000])
    size = train._run_chunk._cache_size()
    _, m_noise = _run(log_q, theta0, 0.01, "noise", [1000])
    assert train._run_chunk._cache_size() == size + 1
    _run(log_q, theta0, 0.01, "noise", [1000])  # same config and length: no recompilation
    assert train._run_chunk._cache_size() == size + 1
    assert not np.array_equal(m_rho["theta"][-1], m_noise["theta"][-1])
    assert np.all(m_rho["loss"] != m_noise["loss"])
    assert m_rho["rho"][-1] > m_noise["rho"][-1]
    with pytest.raises(ValueError):
        train.make_chunk_runner(log_q, N_, M_, 0.01, "bogus", 0.02)
