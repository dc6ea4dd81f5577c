"""One optimizer step on selected rows of a parameter matrix (numba, with its numpy twin).

``X[rows[s]]`` takes a step along the gradient ``G[s]``. ``S1``/``S2`` are the optimizer's
per-parameter state with X's shape (unused ones may be empty); ``T[rows[s]]`` is the row's
step count *after* counting this step (adam's bias correction), maintained by the caller since
several matrices (P and bu) share one count. Rows in ``rows`` must be distinct.

    constant  x -= lr g
    adagrad   s1 += g²;                 x -= lr g / (sqrt(s1) + eps)
    momentum  s1 = beta1 s1 + g;        x -= lr s1
    adam      s1 = beta1 s1 + (1-beta1) g;  s2 = beta2 s2 + (1-beta2) g²;
              x -= lr (s1 / (1-beta1^t)) / (sqrt(s2 / (1-beta2^t)) + eps)
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from mfrec.kernels import FASTMATH

#: Kernel codes of the update rules ("decay" is the constant rule with a per-epoch lr).
OPT_CONSTANT = 0
OPT_ADAGRAD = 1
OPT_MOMENTUM = 2
OPT_ADAM = 3


@njit(cache=True, fastmath=FASTMATH)
def apply_rows(
    X: NDArray[np.floating],
    rows: NDArray[np.integer],
    G: NDArray[np.floating],
    S1: NDArray[np.floating],
    S2: NDArray[np.floating],
    T: NDArray[np.int64],
    opt: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> None:
    """Apply one optimizer step to ``X[rows]`` in place (see the module docstring)."""
    k = X.shape[1]
    for s in range(rows.shape[0]):
        r = rows[s]
        x = X[r]
        g = G[s]
        if opt == OPT_CONSTANT:
            for f in range(k):
                x[f] -= lr * g[f]
        elif opt == OPT_ADAGRAD:
            s1 = S1[r]
            for f in range(k):
                s1[f] += g[f] * g[f]
                x[f] -= lr * g[f] / (np.sqrt(s1[f]) + eps)
        elif opt == OPT_MOMENTUM:
            s1 = S1[r]
            for f in range(k):
                s1[f] = beta1 * s1[f] + g[f]
                x[f] -= lr * s1[f]
        else:
            s1 = S1[r]
            s2 = S2[r]
            c1 = 1.0 - beta1 ** T[r]
            c2 = 1.0 - beta2 ** T[r]
            for f in range(k):
                s1[f] = beta1 * s1[f] + (1.0 - beta1) * g[f]
                s2[f] = beta2 * s2[f] + (1.0 - beta2) * g[f] * g[f]
                x[f] -= lr * (s1[f] / c1) / (np.sqrt(s2[f] / c2) + eps)


def apply_rows_reference(
    X: NDArray[np.floating],
    rows: NDArray[np.integer],
    G: NDArray[np.floating],
    S1: NDArray[np.floating],
    S2: NDArray[np.floating],
    T: NDArray[np.int64],
    opt: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> None:
    """Numpy twin of `apply_rows`, vectorised over the rows."""
    if opt == OPT_CONSTANT:
        X[rows] -= lr * G
    elif opt == OPT_ADAGRAD:
        S1[rows] += G * G
        X[rows] -= lr * G / (np.sqrt(S1[rows]) + eps)
    elif opt == OPT_MOMENTUM:
        S1[rows] = beta1 * S1[rows] + G
        X[rows] -= lr * S1[rows]
    else:
        t = T[rows][:, None]
        c1 = 1.0 - beta1**t
        c2 = 1.0 - beta2**t
        S1[rows] = beta1 * S1[rows] + (1.0 - beta1) * G
        S2[rows] = beta2 * S2[rows] + (1.0 - beta2) * G * G
        X[rows] -= lr * (S1[rows] / c1) / (np.sqrt(S2[rows] / c2) + eps)
