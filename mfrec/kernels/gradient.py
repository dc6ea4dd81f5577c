"""Half the gradient of J in two parallel passes over the ratings (numba, with its numpy twin).

With e_ui = r_ui - r̂_ui and s = 1/|R| (docs/math.md, "Gradient"), half of ∇J is

    g(p_u) = s (reg n_u p_u - Σ_i e_ui q_i)        g(b_u) = s (reg_bias n_u b_u - Σ_i e_ui)
    g(q_i) = s (reg n_i q_i - Σ_u e_ui p_u)        g(b_i) = s (reg_bias n_i b_i - Σ_u e_ui)

The first pass runs over the ratings grouped by user (`TrainSet.by_user`): it computes every
residual, keeps it at the rating's position, and sums the user rows. The second runs over the
ratings grouped by item and sums the item rows from the kept residuals. Each row is summed by
one thread in a fixed order, so the result does not depend on the thread count; no two threads
write the same row. The rows of the other side, and the residuals, are prefetched `PREFETCH`
ratings ahead.
Without biases g(b) is zero.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from mfrec.kernels import FASTMATH
from mfrec.kernels.blocked import PREFETCH
from mfrec.kernels.simd import prefetch_row, row_dot

#: Rows are handed to the threads in this many fixed chunks.
ROW_CHUNKS = 64


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def half_gradient(
    user_ptr: NDArray[np.int64],
    user_items: NDArray[np.int32],
    user_ratings: NDArray[np.floating],
    user_pos: NDArray[np.int64],
    item_ptr: NDArray[np.int64],
    item_users: NDArray[np.int32],
    item_pos: NDArray[np.int64],
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    reg: float,
    reg_bias: float,
    use_bias: bool,
    residuals: NDArray[np.floating],
    gP: NDArray[np.floating],
    gQ: NDArray[np.floating],
    gbu: NDArray[np.floating],
    gbi: NDArray[np.floating],
) -> None:
    """Write ½∇J into gP, gQ, gbu, gbi and each rating's residual into ``residuals``.

    ``user_ptr``/``user_items``/``user_ratings``/``user_pos`` are the ratings grouped by user
    (CSR, with each rating's position in the training arrays), ``item_ptr``/``item_users``/
    ``item_pos`` the same grouped by item.
    """
    n_users, k = P.shape
    n_items = Q.shape[0]
    scale = 1.0 / residuals.shape[0]
    # The residuals are written and read at scattered positions: prefetch those too.
    spread = residuals.reshape((residuals.shape[0], 1))
    user_chunks = max(1, min(n_users, ROW_CHUNKS))
    for chunk in prange(user_chunks):
        for u in range(chunk * n_users // user_chunks, (chunk + 1) * n_users // user_chunks):
            g = gP[u]
            g[:] = 0.0
            sum_e = 0.0
            p = P[u]
            for m in range(user_ptr[u], user_ptr[u + 1]):
                if m + PREFETCH < user_ptr[-1]:
                    prefetch_row(Q, user_items[m + PREFETCH])
                    prefetch_row(spread, user_pos[m + PREFETCH])
                q = Q[user_items[m]]
                dot = row_dot(P, u, Q, user_items[m])
                if use_bias:
                    e = user_ratings[m] - (mu + bu[u] + bi[user_items[m]] + dot)
                else:
                    e = user_ratings[m] - dot
                residuals[user_pos[m]] = e
                sum_e += e
                for f in range(k):
                    g[f] -= e * q[f]
            n = user_ptr[u + 1] - user_ptr[u]
            for f in range(k):
                g[f] = scale * (reg * n * p[f] + g[f])
            gbu[u] = scale * (reg_bias * n * bu[u] - sum_e) if use_bias else 0.0
    item_chunks = max(1, min(n_items, ROW_CHUNKS))
    for chunk in prange(item_chunks):
        for i in range(chunk * n_items // item_chunks, (chunk + 1) * n_items // item_chunks):
            g = gQ[i]
            g[:] = 0.0
            sum_e = 0.0
            for m in range(item_ptr[i], item_ptr[i + 1]):
                if m + PREFETCH < item_ptr[-1]:
                    prefetch_row(P, item_users[m + PREFETCH])
                    prefetch_row(spread, item_pos[m + PREFETCH])
                e = residuals[item_pos[m]]
                p = P[item_users[m]]
                sum_e += e
                for f in range(k):
                    g[f] -= e * p[f]
            n = item_ptr[i + 1] - item_ptr[i]
            q = Q[i]
            for f in range(k):
                g[f] = scale * (reg * n * q[f] + g[f])
            gbi[i] = scale * (reg_bias * n * bi[i] - sum_e) if use_bias else 0.0


def half_gradient_reference(
    user_ptr: NDArray[np.int64],
    user_items: NDArray[np.int32],
    user_ratings: NDArray[np.floating],
    user_pos: NDArray[np.int64],
    item_ptr: NDArray[np.int64],
    item_users: NDArray[np.int32],
    item_pos: NDArray[np.int64],
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    reg: float,
    reg_bias: float,
    use_bias: bool,
    residuals: NDArray[np.floating],
    gP: NDArray[np.floating],
    gQ: NDArray[np.floating],
    gbu: NDArray[np.floating],
    gbi: NDArray[np.floating],
) -> None:
    """Numpy twin of `half_gradient` (scatter-adds over the by-user arrays)."""
    users = np.repeat(np.arange(P.shape[0]), np.diff(user_ptr))
    items = user_items
    pred = np.einsum("nk,nk->n", P[users], Q[items])
    if use_bias:
        pred = pred + mu + bu[users] + bi[items]
    e = (user_ratings - pred).astype(P.dtype)
    residuals[user_pos] = e
    scale = 1.0 / len(e)
    n_u = np.diff(user_ptr).astype(P.dtype)
    n_i = np.diff(item_ptr).astype(P.dtype)
    sum_p = np.zeros_like(P)
    sum_q = np.zeros_like(Q)
    np.add.at(sum_p, users, e[:, None] * Q[items])
    np.add.at(sum_q, items, e[:, None] * P[users])
    gP[:] = scale * (reg * n_u[:, None] * P - sum_p)
    gQ[:] = scale * (reg * n_i[:, None] * Q - sum_q)
    if use_bias:
        gbu[:] = scale * (reg_bias * n_u * bu - np.bincount(users, e, len(bu)))
        gbi[:] = scale * (reg_bias * n_i * bi - np.bincount(items, e, len(bi)))
    else:
        gbu[:] = 0.0
        gbi[:] = 0.0
