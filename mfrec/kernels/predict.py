"""Dot products p_u·q_i for many (u, i) pairs without gathering the rows (numba + numpy twin)."""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from mfrec.kernels import FASTMATH


@njit(cache=True, fastmath=FASTMATH)
def pair_dots(
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    users: NDArray[np.integer],
    items: NDArray[np.integer],
    out: NDArray[np.floating],
) -> None:
    """out[n] = P[users[n]]·Q[items[n]]."""
    k = P.shape[1]
    for n in range(users.shape[0]):
        p = P[users[n]]
        q = Q[items[n]]
        dot = p[0] * q[0]
        for f in range(1, k):
            dot += p[f] * q[f]
        out[n] = dot


def pair_dots_reference(
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    users: NDArray[np.integer],
    items: NDArray[np.integer],
    out: NDArray[np.floating],
) -> None:
    """Numpy twin of `pair_dots` (gathers the rows: memory grows with len(users)·k)."""
    out[:] = np.einsum("nk,nk->n", P[users], Q[items])
