"""P4 kernel diagnostics (numpy; run at a few diagnostic steps, never inside the training loop).

Reversibility, stochasticity, symmetry of D^1/2 P D^-1/2, spectral gap gamma, a power-iteration
estimate of 1/gamma from one LU of the fundamental-matrix system, the sweep-cut conductance along
the second eigenvector, and the Cheeger margin min(Phi - gamma/2, sqrt(2 gamma) - Phi).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from scipy.linalg import lu_factor, lu_solve

from prereg.exp9 import kernel, model
from prereg.training.jaxexport import cached_jit

DEFAULT_GATES: dict[str, float] = {
    "detailed_balance": 1e-15,  # max |pi_i P_ij - pi_j P_ji|
    "row_sum": 1e-14,  # max |sum_j P_ij - 1|
    "symmetry": 1e-14,  # max |A - A^T|, A = D^1/2 P D^-1/2
    "gap_min": 1e-10,  # HALT below: float64 results are silently wrong near gap ~ 1e-13
    "cheeger_rel_tol": 1e-9,  # Cheeger margin >= -rel_tol * max(Phi, gamma), where gap >= gap_min
}


@cached_jit(static_argnames=("n", "m"))
def _pi_and_kernel(theta: jnp.ndarray, n: int, m: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(pi [N], P [N, N]) at theta, compiled once per (n, m)."""
    log_pi = model.log_joint(theta, n, m)
    return jnp.exp(log_pi), kernel.gibbs_kernel_from_log_pi(log_pi, n, m)


def inverse_gap_power(p: np.ndarray, pi: np.ndarray, iters: int = 30, seed: int = 0) -> float:
    """Estimate 1/gamma as the top eigenvalue of Z = (I - P + 1 pi^T)^-1 on {f : pi.f = 0}.

    On that subspace Z acts as (I - P)^-1, self-adjoint in <.,.>_pi with eigenvalues 1/(1 - l_j),
    the largest being 1/gamma. One LU, then `iters` O(N^2) solves; Rayleigh quotient in <.,.>_pi.
    """
    num = len(pi)
    lu = lu_factor(np.eye(num) - p + np.outer(np.ones(num), pi))
    x = np.random.default_rng(seed).standard_normal(num)
    est = np.nan
    for _ in range(iters):
        x = x - pi @ x
        x = x / np.sqrt(pi @ (x * x))
        y = lu_solve(lu, x)
        est = float(pi @ (x * y))
        x = y
    return est


def sweep_conductance(p: np.ndarray, pi: np.ndarray, vec: np.ndarray) -> float:
    """min over prefix cuts S of the states sorted by vec of Q(S, S^c) / min(pi(S), pi(S^c)).

    Q(S, S^c) = sum_{i in S, j not in S} pi_i P_ij is summed directly (all terms >= 0), not as
    pi(S) - Q(S, S), so tiny cuts keep their relative accuracy.
    """
    order = np.argsort(vec, kind="stable")
    q = (pi[:, None] * p)[np.ix_(order, order)]
    pis = pi[order]
    best = np.inf
    for k in range(1, len(pi)):
        cut = q[:k, k:].sum()
        mass = min(pis[:k].sum(), pis[k:].sum())
        best = min(best, cut / mass)
    return float(best)


def kernel_diagnostics(theta: np.ndarray, n: int, m: int) -> dict[str, float]:
    """All P4 diagnostics of the heat-bath kernel at theta (see module docstring)."""
    pi, p = (np.asarray(x) for x in _pi_and_kernel(np.asarray(theta, dtype=np.float64), n, m))
    flow = pi[:, None] * p
    sq = np.sqrt(pi)
    a = sq[:, None] * p / sq[None, :]
    lam, u = np.linalg.eigh(0.5 * (a + a.T))
    gap = float(1.0 - lam[-2])
    phi = sweep_conductance(p, pi, u[:, -2] / sq)  # right eigenvector of P: D^-1/2 phi_2
    return {
        "detailed_balance": float(np.max(np.abs(flow - flow.T))),
        "row_sum": float(np.max(np.abs(p.sum(axis=1) - 1.0))),
        "symmetry": float(np.max(np.abs(a - a.T))),
        "lambda_2": float(lam[-2]),
        "gap": gap,
        "inv_gap_power": inverse_gap_power(p, pi),
        "conductance": phi,
        "cheeger_lower": phi - gap / 2.0,
        "cheeger_upper": float(np.sqrt(2.0 * max(gap, 0.0))) - phi,
        "cheeger_margin": min(phi - gap / 2.0, float(np.sqrt(2.0 * max(gap, 0.0))) - phi),
    }


def check_diagnostics(
    diag: Mapping[str, float], gates: Mapping[str, float] | None = None
) -> list[str]:
    """Names of the failed checks (empty list = all pass); any failure HALTs the run.

    "gap" fails when gamma < gap_min, either from the eigenvalues or from 1/inv_gap_power; the
    Cheeger check applies only where gap >= gap_min; a non-finite diagnostic fails its check.
    """
    g = {**DEFAULT_GATES, **(gates or {})}
    failed = [
        name
        for name in ("detailed_balance", "row_sum", "symmetry")
        if not (np.isfinite(diag[name]) and diag[name] <= g[name])
    ]
    gap, inv = diag["gap"], diag["inv_gap_power"]
    gap_ok = bool(np.isfinite(gap) and gap >= g["gap_min"] and np.isfinite(inv) and inv > 0)
    gap_ok = gap_ok and 1.0 / inv >= g["gap_min"]
    if not gap_ok:
        failed.append("gap")
    else:
        scale = max(abs(diag["conductance"]), gap)
        margin = diag["cheeger_margin"]
        if not (np.isfinite(margin) and margin >= -g["cheeger_rel_tol"] * scale):
            failed.append("cheeger")
    return failed
