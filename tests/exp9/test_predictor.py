"""The objective's forms and the autodiff-vs-finite-difference fidelity of rho."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from exp9.helpers_exp9 import kl_and_grad, objective_grad, random_theta

from prereg.exp9 import finite_diff, model, predictor


@pytest.fixture(scope="module")
def case():
    n, m = 3, 2
    return jnp.asarray(random_theta(n, m, 21)), jnp.asarray(model.make_teacher(n, 1.0, 22)), n, m


def test_lam_zero_is_exactly_kl_with_kl_gradient(case):
    theta, log_q, n, m = case
    for form in predictor.FORMS:
        (loss, aux), grad = objective_grad(theta, log_q, n, m, 0.0, form)
        kl, g = kl_and_grad(theta, log_q, n, m)
        assert float(loss) == float(kl)
        np.testing.assert_array_equal(np.asarray(grad), np.asarray(g))
        assert float(aux["rho"]) > 0


def test_forms_differ_and_match_their_definitions(case):
    theta, log_q, n, m = case
    lam = 0.01
    out = predictor.predictor_jit(theta, log_q, n, m)
    (l_rho, _), g_rho = objective_grad(theta, log_q, n, m, lam, "rho")
    (l_noise, _), g_noise = objective_grad(theta, log_q, n, m, lam, "noise")
    expect_rho = out["kl"] - lam * jnp.log(out["signal"]) + lam * jnp.log(out["noise"])
    assert abs(float(l_rho - expect_rho)) < 1e-15
    assert abs(float(l_noise - (out["kl"] + lam * jnp.log(out["noise"])))) < 1e-15
    assert float(l_rho) != float(l_noise)
    assert np.max(np.abs(np.asarray(g_rho - g_noise))) > 1e-4
    with pytest.raises(ValueError):
        predictor.objective(theta, log_q, n, m, lam, "snr")


def test_log_guard_keeps_loss_finite_at_zero_gradient(case):
    theta, _, n, m = case
    log_q = model.log_marginal_v(theta, n, m)  # teacher == model: KL = 0 and g = 0
    (loss, out), grad = objective_grad(theta, log_q, n, m, 0.01, "rho")
    assert float(out["signal"]) < 1e-28
    assert np.isfinite(float(loss)) and np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("n,m,seed", [(4, 2, 32)])
def test_autodiff_matches_central_differences(n, m, seed):
    theta = random_theta(n, m, seed, scale=0.5)
    log_q = model.make_teacher(n, 1.0, seed)
    res = finite_diff.fd_check(theta, log_q, n, m, n_dirs=3, seed=seed)
    assert res["grad_norm"] >= 1e-3
    assert len(res["per_direction"]) == 3
    assert res["worst_rel_err"] <= 1e-6, res
