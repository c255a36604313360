"""Enumeration of the +-1 joint states of an (n visible, m hidden) RBM and their statistics.

Order (fixed, used by every module): joint state index x = iv * 2^m + ih, where the bits of iv
(resp. ih), most significant first, give v_1..v_n (resp. h_1..h_m) with bit 0 -> -1, bit 1 -> +1.
This is `itertools.product((-1, 1), repeat=n + m)` order, so reshaping a length-N vector to
[2^n, 2^m] puts visible configurations on rows (in `visible_states` order) and hidden on columns.
"""

from __future__ import annotations

import numpy as np


def _spins(num_sites: int) -> np.ndarray:
    """All 2^num_sites +-1 configurations, [2^num_sites, num_sites], first site most significant."""
    idx = np.arange(2**num_sites)[:, None]
    shifts = np.arange(num_sites - 1, -1, -1)[None, :]
    return (2 * ((idx >> shifts) & 1) - 1).astype(np.float64)


def visible_states(n: int) -> np.ndarray:
    """All visible configurations v, [2^n, n], in the row order of the joint enumeration."""
    return _spins(n)


def joint_states(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """All joint states as (V [N, n], H [N, m]), N = 2^(n+m), in the module's fixed order."""
    z = _spins(n + m)
    return z[:, :n], z[:, n:]


def num_params(n: int, m: int) -> int:
    """K = n*m + n + m, the length of theta and of the sufficient-statistic vector."""
    return n * m + n + m


def sufficient_stats(n: int, m: int) -> np.ndarray:
    """S [N, K] with rows s(v,h) = (vec(v h^T) row-major, v, h); theta . s(v,h) = -E(v,h)."""
    v, h = joint_states(n, m)
    vh = (v[:, :, None] * h[:, None, :]).reshape(v.shape[0], n * m)
    return np.concatenate([vh, v, h], axis=1)


def flip_index(n: int, m: int) -> np.ndarray:
    """[N, n+m] integer table: entry (x, k) is the state x with site k flipped (k < n: visible)."""
    num_sites = n + m
    x = np.arange(2**num_sites)[:, None]
    bit = 1 << np.arange(num_sites - 1, -1, -1)[None, :]
    return x ^ bit
