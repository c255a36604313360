"""The noise-only auxiliary form (exp9_v2's ``noise0_1`` arm): L = KL + lambda log tr Sigma.

Its gradient is checked against an independent formula in float64: autodiff of the objective
minus the KL gradient must equal lambda times the central finite difference of log tr Sigma
computed by the eigendecomposition reference (numpy, no resolvent, no autodiff); and it leaves
the signal alone: the aux gradient does not depend on the teacher (the signal does)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from exp9.helpers_exp9 import kl_and_grad, objective_grad, random_theta

from prereg.exp9 import model, reference

N, M, LAM = 3, 2, 0.1


def _log_noise(theta: np.ndarray) -> float:
    return float(np.log(reference.reference_noise(theta, N, M)["noise"]))


def _aux_grad(theta: np.ndarray, teacher_seed: int) -> np.ndarray:
    log_q = jnp.asarray(model.make_teacher(N, 1.0, teacher_seed))
    (_, met), g_total = objective_grad(jnp.asarray(theta), log_q, N, M, LAM, "noise")
    _, g_kl = kl_and_grad(jnp.asarray(theta), log_q, N, M)
    assert float(met["signal"]) > 1e-6  # a point where the signal is not negligible
    return np.asarray(g_total - g_kl)


def test_noise_form_gradient_is_lambda_times_the_reference_gradient_of_log_trace_sigma():
    theta = random_theta(N, M, 5)
    aux = _aux_grad(theta, 6)
    rng = np.random.default_rng(7)
    worst = 0.0
    for _ in range(4):
        d = rng.normal(size=theta.shape)
        d /= np.linalg.norm(d)
        errs = []
        for h in (1e-4, 1e-5):
            fd = (_log_noise(theta + h * d) - _log_noise(theta - h * d)) / (2 * h)
            errs.append(abs(aux @ d - LAM * fd) / max(abs(LAM * fd), 1e-12))
        worst = max(worst, min(errs))
    assert worst <= 1e-6, worst


def test_noise_form_leaves_the_signal_alone():
    theta = random_theta(N, M, 8)
    a, b = _aux_grad(theta, 9), _aux_grad(theta, 10)  # two teachers: different signals
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    assert np.linalg.norm(a) > 1e-6
