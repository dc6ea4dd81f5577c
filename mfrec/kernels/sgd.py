"""Plain SGD over the ratings, one at a time in a given order (numba, with its numpy twin).

For rating (u, i, r), with e = r - r̂(u, i) measured before the update::

    b_u += lr (e - reg_bias b_u)          b_i += lr (e - reg_bias b_i)
    p_u += lr (e q_i - reg p_u)           q_i += lr (e p_u - reg q_i)

where the right-hand sides use the values from before the update. This is the step
``-lr * (1/2) ∇ℓ_ui`` on the rating's term of J (see docs/math.md). Scalars are expected in
the arrays' dtype, so float32 factors are updated in float32 arithmetic.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from mfrec.kernels import FASTMATH


@njit(cache=True, fastmath=FASTMATH)
def sgd_epoch(
    users: NDArray[np.int32],
    items: NDArray[np.int32],
    ratings: NDArray[np.floating],
    order: NDArray[np.integer],
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    lr: float,
    reg: float,
    reg_bias: float,
    use_bias: bool,
) -> float:
    """Visit ratings ``order[0], order[1], ...`` updating P, Q, bu, bi in place.

    Returns the sum of the squared errors seen (each before its update), in float64.
    """
    k = P.shape[1]
    sse = 0.0
    for n in range(order.shape[0]):
        j = order[n]
        u = users[j]
        i = items[j]
        p = P[u]
        q = Q[i]
        dot = p[0] * q[0]
        for f in range(1, k):
            dot += p[f] * q[f]
        if use_bias:
            e = ratings[j] - (mu + bu[u] + bi[i] + dot)
            bu[u] += lr * (e - reg_bias * bu[u])
            bi[i] += lr * (e - reg_bias * bi[i])
        else:
            e = ratings[j] - dot
        sse += e * e
        for f in range(k):
            pf = p[f]
            qf = q[f]
            p[f] = pf + lr * (e * qf - reg * pf)
            q[f] = qf + lr * (e * pf - reg * qf)
    return sse


def sgd_epoch_reference(
    users: NDArray[np.int32],
    items: NDArray[np.int32],
    ratings: NDArray[np.floating],
    order: NDArray[np.integer],
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    lr: float,
    reg: float,
    reg_bias: float,
    use_bias: bool,
) -> float:
    """Numpy twin of `sgd_epoch` (a Python loop over ratings: for tests on small data)."""
    sse = 0.0
    for j in order:
        u, i = users[j], items[j]
        pred = P[u] @ Q[i]
        if use_bias:
            pred = pred + mu + bu[u] + bi[i]
        e = ratings[j] - pred
        sse += float(e) ** 2
        if use_bias:
            bu[u] += lr * (e - reg_bias * bu[u])
            bi[i] += lr * (e - reg_bias * bi[i])
        p_old = P[u].copy()
        P[u] += lr * (e * Q[i] - reg * p_old)
        Q[i] += lr * (e * p_old - reg * Q[i])
    return sse
