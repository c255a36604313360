"""Pure statistics of the estimator study: bootstrap over chains, SNRs, the factor-T curve.

SNR = ||g||^2 / MSE with MSE = E||g^ - g||^2.  The bootstrap reweights the chains (multinomial
counts, the same draws for every (B, T) of a theta) and gives, per estimate, the 95% percentile
interval of SNR_emp and the bootstrap standard error of log MSE_emp, from which E1 builds its
family-wise intervals.
"""

from __future__ import annotations

import numpy as np


def bootstrap_weights(chains: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, chains] multinomial resampling weights (each row sums to 1)."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(chains, np.full(chains, 1.0 / chains), size=resamples)
    return counts / chains


def snr_estimates(errors: np.ndarray, signal: float, weights: np.ndarray) -> dict[str, np.ndarray]:
    """From squared errors [chains, J] of J (B, T) settings at one theta with ||g||^2 = signal:
    mse, snr, its 95% bootstrap percentile interval (snr_lo, snr_hi) and se_log (bootstrap
    standard error of log mse), each [J]."""
    mse = errors.mean(axis=0)
    boot = weights @ errors  # [resamples, J]
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    return {
        "mse_emp": mse,
        "snr_emp": signal / mse,
        "snr_lo": signal / hi,
        "snr_hi": signal / lo,
        "se_log": np.std(np.log(boot), axis=0, ddof=1),
    }


def log_grid(t_max: int, points: int = 40) -> np.ndarray:
    """About ``points`` integer T values log-spaced over 1..t_max (t_max included)."""
    return np.unique(np.round(np.geomspace(1, t_max, points)).astype(int))


def t_within_factor(mse: np.ndarray, noise: float, factor: float) -> int | None:
    """The smallest T from which T * MSE(T) / tr Sigma (= SNR_pred / SNR_exact) stays within
    [1/factor, factor] up to the curve's end (mse[T-1] is MSE(T)); None if it never settles."""
    ratio = np.arange(1, mse.size + 1) * mse / noise
    outside = np.flatnonzero((ratio > factor) | (ratio < 1.0 / factor))
    if outside.size == 0:
        return 1
    if outside[-1] == mse.size - 1:
        return None
    return int(outside[-1] + 2)
