"""Independent numpy oracle for the noise covariance and rho (P1 fidelity check; no jax).

The kernel, the distributions and the KL gradient are rebuilt here from scratch, and Sigma comes
from the spectral decomposition of the symmetrised kernel instead of a linear solve.
"""

from __future__ import annotations

import itertools

import numpy as np


def _enumerate(n: int, m: int) -> np.ndarray:
    """Joint states [N, n+m] in itertools.product((-1, 1)) order (the package's fixed order)."""
    return np.array(list(itertools.product((-1.0, 1.0), repeat=n + m)))


def _stats(z: np.ndarray, n: int, m: int) -> np.ndarray:
    """Sufficient statistics (vec(v h^T) row-major, v, h) for each row of z, [N, K]."""
    v, h = z[:, :n], z[:, n:]
    vh = np.einsum("si,sj->sij", v, h).reshape(len(z), n * m)
    return np.hstack([vh, v, h])


def _pi_and_kernel(theta: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S, pi, P) with P the random-scan heat-bath kernel, built site by site."""
    z = _enumerate(n, m)
    s = _stats(z, n, m)
    logw = s @ np.asarray(theta, dtype=np.float64)
    w = np.exp(logw - logw.max())
    pi = w / w.sum()
    num, sites = len(z), n + m
    p = np.zeros((num, num))
    x = np.arange(num)
    for k in range(sites):
        # product order: site k is bit (sites-1-k) of the index, +1 <-> bit set
        y = x ^ (1 << (sites - 1 - k))
        p[x, y] += pi[y] / (pi[x] + pi[y]) / sites
    p[x, x] = 1.0 - p.sum(axis=1)  # diagonal still zero here
    return s, pi, p


def reference_noise(theta: np.ndarray, n: int, m: int) -> dict:
    """Sigma [K, K], noise = trace(Sigma) and the spectral gap, by eigendecomposition.

    With D = diag(pi), A = D^1/2 P D^-1/2 is symmetric (reversibility); A = sum_j l_j phi_j phi_j^T
    gives P^t = D^-1/2 (sum_j l_j^t phi_j phi_j^T) D^1/2. For centred f, g the lag-t covariance
    is f^T D P^t g = sum_j l_j^t c_j(f) c_j(g) with c_j(f) = sum_x sqrt(pi_x) phi_j(x) f(x), i.e.
    <f, phi> is taken with the D^1/2 weight. Summing lag 0 plus twice lags t >= 1,
    Sigma_fg = sum_j (1 + l_j)/(1 - l_j) c_j(f) c_j(g), over the non-unit eigenpairs (the unit one,
    phi = sqrt(pi), has c(f) = 0 for centred f). Accuracy is about 1e-15 / gap.
    """
    s, pi, p = _pi_and_kernel(theta, n, m)
    sq = np.sqrt(pi)
    a = sq[:, None] * p / sq[None, :]
    lam, u = np.linalg.eigh(0.5 * (a + a.T))
    unit = int(np.argmax(np.abs(u.T @ sq)))
    keep = np.arange(len(lam)) != unit
    f = s - pi @ s
    c = u[:, keep].T @ (sq[:, None] * f)  # [N-1, K]
    weight = (1.0 + lam[keep]) / (1.0 - lam[keep])
    sigma = c.T @ (weight[:, None] * c)
    sigma = 0.5 * (sigma + sigma.T)
    return {"noise": float(np.trace(sigma)), "Sigma": sigma, "gap": float(1.0 - lam[keep].max())}


def reference_grad(
    theta: np.ndarray, log_q: np.ndarray, n: int, m: int
) -> tuple[float, np.ndarray]:
    """(KL(q || p_theta), gradient) by the RBM formula g = E_pi[s] - sum_v q(v) E_{h|v}[s]."""
    s, pi, _ = _pi_and_kernel(theta, n, m)
    q = np.exp(np.asarray(log_q, dtype=np.float64))
    pi_vh = pi.reshape(2**n, 2**m)
    p_v = pi_vh.sum(axis=1)
    kl = float(np.sum(q * (np.log(q) - np.log(p_v))))
    post = (pi_vh / p_v[:, None]).reshape(-1)  # pi(h | v) on the joint enumeration
    weights = np.repeat(q, 2**m) * post
    return kl, pi @ s - weights @ s


def reference_rho(
    theta: np.ndarray, log_q: np.ndarray, n: int, m: int, grad: np.ndarray | None = None
) -> dict:
    """Every predictor quantity (kl, grad, signal, noise, rho, noise_proj, rho_proj) plus Sigma and
    gap, from the eigen noise and the analytic gradient.

    The gradient is a difference of O(1) expectations, so its relative error is about
    1e-16 / ||g|| whichever way it is computed; near convergence that, not the noise, dominates a
    rho comparison. Pass `grad` (e.g. the package's autodiff g) to compare the noise side alone.
    """
    kl, g = reference_grad(theta, log_q, n, m)
    if grad is not None:
        g = np.asarray(grad, dtype=np.float64)
    ref = reference_noise(theta, n, m)
    signal = float(g @ g)
    noise_proj = float(g @ ref["Sigma"] @ g) / signal
    return {
        "kl": kl,
        "grad": g,
        "signal": signal,
        "noise": ref["noise"],
        "rho": signal / ref["noise"],
        "noise_proj": noise_proj,
        "rho_proj": signal / noise_proj,
        "Sigma": ref["Sigma"],
        "gap": ref["gap"],
    }
