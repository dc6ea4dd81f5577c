"""Mini-batch gradient descent over the ratings (numba, with its numpy twin).

The ratings ``order[0:B], order[B:2B], ...`` form the batches (the last one may be shorter).
For each batch the half-gradient ``(1/|B|) Σ_{(u,i)∈B} (1/2) ∇ℓ_ui`` is accumulated at the
batch-start parameters into scratch rows for the users and items the batch touches, then one
optimizer step (`mfrec.kernels.optim`) is applied to those rows only. With B = 1 and the
constant rule this is exactly `mfrec.kernels.sgd.sgd_epoch`; with B = all ratings it is one
full-batch step.

``state`` holds the optimizer state ``(P1, P2, Q1, Q2, bu1, bu2, bi1, bi2)`` (bias states are
(n, 1) columns); ``steps`` holds the per-row step counts ``(users, items)``, incremented here
for every touched row. ``hyper`` is ``(lr, beta1, beta2, eps)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from mfrec.kernels import FASTMATH
from mfrec.kernels.optim import apply_rows, apply_rows_reference


@njit(cache=True, fastmath=FASTMATH)
def minibatch_epoch(
    users: NDArray[np.int32],
    items: NDArray[np.int32],
    ratings: NDArray[np.floating],
    order: NDArray[np.integer],
    batch_size: int,
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    reg: float,
    reg_bias: float,
    use_bias: bool,
    opt: int,
    hyper: tuple[float, float, float, float],
    state: tuple[NDArray[np.floating], ...],
    steps: tuple[NDArray[np.int64], NDArray[np.int64]],
) -> float:
    """One epoch of mini-batches, updating P, Q, bu, bi and the optimizer state in place.

    Returns the sum of the squared errors seen (at each batch's start parameters), in float64.
    """
    lr, beta1, beta2, eps = hyper
    P1, P2, Q1, Q2, bu1, bu2, bi1, bi2 = state
    tu, ti = steps
    n_users, k = P.shape
    n_items = Q.shape[0]
    bu2d = bu.reshape((n_users, 1))
    bi2d = bi.reshape((n_items, 1))
    # Scratch: gradient rows of the touched users/items, and each row's slot (-1: untouched).
    cap_u = min(batch_size, n_users)
    cap_i = min(batch_size, n_items)
    gP = np.zeros((cap_u, k), P.dtype)
    gQ = np.zeros((cap_i, k), Q.dtype)
    gbu = np.zeros((cap_u, 1), P.dtype)
    gbi = np.zeros((cap_i, 1), Q.dtype)
    rows_u = np.empty(cap_u, np.int64)
    rows_i = np.empty(cap_i, np.int64)
    slot_u = np.full(n_users, -1, np.int64)
    slot_i = np.full(n_items, -1, np.int64)

    sse = 0.0
    n = order.shape[0]
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        nu = 0
        ni = 0
        for m in range(start, stop):
            j = order[m]
            u = users[j]
            i = items[j]
            su = slot_u[u]
            if su < 0:
                su = nu
                slot_u[u] = su
                rows_u[su] = u
                nu += 1
            si = slot_i[i]
            if si < 0:
                si = ni
                slot_i[i] = si
                rows_i[si] = i
                ni += 1
            p = P[u]
            q = Q[i]
            dot = p[0] * q[0]
            for f in range(1, k):
                dot += p[f] * q[f]
            if use_bias:
                e = ratings[j] - (mu + bu[u] + bi[i] + dot)
                gbu[su, 0] += reg_bias * bu[u] - e
                gbi[si, 0] += reg_bias * bi[i] - e
            else:
                e = ratings[j] - dot
            sse += e * e
            gp = gP[su]
            gq = gQ[si]
            for f in range(k):
                gp[f] += reg * p[f] - e * q[f]
                gq[f] += reg * q[f] - e * p[f]

        inv_b = 1.0 / (stop - start)
        for s in range(nu):
            tu[rows_u[s]] += 1
            for f in range(k):
                gP[s, f] *= inv_b
            gbu[s, 0] *= inv_b
        for s in range(ni):
            ti[rows_i[s]] += 1
            for f in range(k):
                gQ[s, f] *= inv_b
            gbi[s, 0] *= inv_b
        apply_rows(P, rows_u[:nu], gP[:nu], P1, P2, tu, opt, lr, beta1, beta2, eps)
        apply_rows(Q, rows_i[:ni], gQ[:ni], Q1, Q2, ti, opt, lr, beta1, beta2, eps)
        if use_bias:
            apply_rows(bu2d, rows_u[:nu], gbu[:nu], bu1, bu2, tu, opt, lr, beta1, beta2, eps)
            apply_rows(bi2d, rows_i[:ni], gbi[:ni], bi1, bi2, ti, opt, lr, beta1, beta2, eps)
        for s in range(nu):
            slot_u[rows_u[s]] = -1
            gbu[s, 0] = 0.0
            for f in range(k):
                gP[s, f] = 0.0
        for s in range(ni):
            slot_i[rows_i[s]] = -1
            gbi[s, 0] = 0.0
            for f in range(k):
                gQ[s, f] = 0.0
    return sse


def minibatch_epoch_reference(
    users: NDArray[np.int32],
    items: NDArray[np.int32],
    ratings: NDArray[np.floating],
    order: NDArray[np.integer],
    batch_size: int,
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    reg: float,
    reg_bias: float,
    use_bias: bool,
    opt: int,
    hyper: tuple[float, float, float, float],
    state: tuple[NDArray[np.floating], ...],
    steps: tuple[NDArray[np.int64], NDArray[np.int64]],
) -> float:
    """Numpy twin of `minibatch_epoch`: a Python loop over batches, vectorised within one."""
    lr, beta1, beta2, eps = hyper
    P1, P2, Q1, Q2, bu1, bu2, bi1, bi2 = state
    tu, ti = steps
    bu2d = bu.reshape(-1, 1)
    bi2d = bi.reshape(-1, 1)
    sse = 0.0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        u, i = users[batch], items[batch]
        pu, qi = P[u], Q[i]
        pred = np.einsum("nk,nk->n", pu, qi)
        if use_bias:
            pred = pred + mu + bu[u] + bi[i]
        e = ratings[batch] - pred
        sse += float(np.sum(e.astype(np.float64) ** 2))
        rows_u, inv_u = np.unique(u, return_inverse=True)
        rows_i, inv_i = np.unique(i, return_inverse=True)
        scale = 1.0 / len(batch)
        gP = np.zeros((len(rows_u), P.shape[1]), P.dtype)
        gQ = np.zeros((len(rows_i), Q.shape[1]), Q.dtype)
        np.add.at(gP, inv_u, reg * pu - e[:, None] * qi)
        np.add.at(gQ, inv_i, reg * qi - e[:, None] * pu)
        tu[rows_u] += 1
        ti[rows_i] += 1
        apply_rows_reference(P, rows_u, gP * scale, P1, P2, tu, opt, lr, beta1, beta2, eps)
        apply_rows_reference(Q, rows_i, gQ * scale, Q1, Q2, ti, opt, lr, beta1, beta2, eps)
        if use_bias:
            gbu = np.bincount(inv_u, weights=reg_bias * bu[u] - e, minlength=len(rows_u))
            gbi = np.bincount(inv_i, weights=reg_bias * bi[i] - e, minlength=len(rows_i))
            gbu = (gbu * scale).astype(P.dtype)[:, None]
            gbi = (gbi * scale).astype(Q.dtype)[:, None]
            apply_rows_reference(bu2d, rows_u, gbu, bu1, bu2, tu, opt, lr, beta1, beta2, eps)
            apply_rows_reference(bi2d, rows_i, gbi, bi1, bi2, ti, opt, lr, beta1, beta2, eps)
    return sse
