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
from numba import njit, prange
from numpy.typing import NDArray

from mfrec.kernels import FASTMATH

#: Kernel codes of the update rules ("decay" is the constant rule with a per-epoch lr).
OPT_CONSTANT = 0
OPT_ADAGRAD = 1
OPT_MOMENTUM = 2
OPT_ADAM = 3
#: `apply_rows_parallel` hands the threads this many fixed chunks of rows.
ROW_CHUNKS = 64


# error_model="numpy": a division by zero gives inf/nan (which the trainer reports as
# divergence) instead of a check per element, which kept LLVM from vectorising the loops (3-6x
# slower). The denominators here are never zero: 1 - beta^t > 0 for beta < 1, sqrt(.) + eps > 0.
@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
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
    # Constants in X's dtype: a float64 one would make float32 rows compute in float64.
    cast = X.dtype.type
    keep1 = cast(1.0 - beta1)
    keep2 = cast(1.0 - beta2)
    for s in range(rows.shape[0]):
        r = rows[s]
        if opt == OPT_CONSTANT:
            for f in range(k):
                X[r, f] -= lr * G[s, f]
        elif opt == OPT_ADAGRAD:
            for f in range(k):
                g = G[s, f]
                s1 = S1[r, f] + g * g
                S1[r, f] = s1
                X[r, f] -= lr * g / (np.sqrt(s1) + eps)
        elif opt == OPT_MOMENTUM:
            for f in range(k):
                s1 = beta1 * S1[r, f] + G[s, f]
                S1[r, f] = s1
                X[r, f] -= lr * s1
        else:
            # The bias corrections in float64, rounded once to X's dtype.
            c1 = cast(1.0 - float(beta1) ** T[r])
            c2 = cast(1.0 - float(beta2) ** T[r])
            for f in range(k):
                g = G[s, f]
                s1 = beta1 * S1[r, f] + keep1 * g
                s2 = beta2 * S2[r, f] + keep2 * g * g
                S1[r, f] = s1
                S2[r, f] = s2
                X[r, f] -= lr * (s1 / c1) / (np.sqrt(s2 / c2) + eps)


@njit(cache=True, fastmath=FASTMATH, parallel=True, error_model="numpy")
def apply_rows_parallel(
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
    """`apply_rows` with the rows cut into `ROW_CHUNKS` chunks run in parallel, for steps on
    many rows (bgd). Every row is computed as by `apply_rows`, so the result is the same."""
    n = rows.shape[0]
    chunks = max(1, min(n, ROW_CHUNKS))
    for c in prange(chunks):
        lo = c * n // chunks
        hi = (c + 1) * n // chunks
        apply_rows(X, rows[lo:hi], G[lo:hi], S1, S2, T, opt, lr, beta1, beta2, eps)


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
