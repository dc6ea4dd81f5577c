"""Mini-batch gradient descent over the ratings (numba, with its numpy twin).

The ratings ``order[0:B], order[B:2B], ...`` form the batches (the last one may be shorter).
For each batch the half-gradient ``(1/|B|) Σ_{(u,i)∈B} (1/2) ∇ℓ_ui`` is accumulated at the
batch-start parameters into scratch rows for the users and items the batch touches, then one
optimizer step (`mfrec.kernels.steps`) is applied to those rows only. With B = 1 and the
constant rule this is exactly `mfrec.kernels.sgd.sgd_epoch`; with B = all ratings it is one
full-batch step.

A batch first numbers the users and items it touches in order of first appearance (their
*slots*), counts each slot's ratings n_x and each touched row's step. Each touched row's
gradient is then ``(λ n_x/|B|) x`` (`row_scale`) plus ``-(e/|B|) y`` for its ratings in batch
order, y the other side's row at the batch start (a fused multiply-add per element of the
whole vectors, a multiply and an add in the tail), and every touched row takes one optimizer
step (`apply_rows`).

Batches of fewer than `PARALLEL_BATCH` ratings run on the calling thread in one pass: each
rating's residual (`row_dot`), then its two terms (`row_axpy`) while p_u and q_i are in cache.
Larger ones run three parallel regions, each over `CHUNKS` fixed chunks: the residuals; then,
after the ratings have been filed by slot in batch order on the calling thread (a counting
sort), every row's gradient (`gather_axpy`, the row's sum held in registers); then the steps.
Every number is computed by one thread in a fixed order, so the result is the same, bit for
bit, whatever the thread count. The threshold is a batch size, never a thread count: a
parallel region costs 5-20 us to start, which a batch under ~2000 ratings does not pay back
(measured on 2 cores, k=100).

``state`` holds the optimizer state ``(P1, P2, Q1, Q2, bu1, bu2, bi1, bi2)`` (bias states are
(n, 1) columns); ``steps`` holds the per-row step counts ``(users, items)``, incremented here
for every touched row. ``hyper`` is ``(lr, beta1, beta2, eps)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mfrec.kernels import FASTMATH
from mfrec.kernels.jit import lazy, njit, prange
from mfrec.kernels.steps import apply_rows, apply_rows_reference

gather_axpy, row_axpy, row_dot, row_scale = lazy(
    "mfrec.kernels.simd", "gather_axpy", "row_axpy", "row_dot", "row_scale"
)

#: Batches of at least this many ratings run on all threads (module docstring).
PARALLEL_BATCH = 2048
#: A parallel pass hands the threads this many fixed chunks.
CHUNKS = 64


@njit(cache=True, fastmath=FASTMATH, parallel=True)
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
    tu, ti = steps
    n_users, k = P.shape
    n_items = Q.shape[0]
    n = order.shape[0]
    cap = max(1, min(batch_size, n))
    cap_u = min(cap, n_users)
    cap_i = min(cap, n_items)
    # Per rating of the batch: its rows, slots and residual.
    at_u = np.empty(cap, np.int64)
    at_i = np.empty(cap, np.int64)
    slot_of_u = np.empty(cap, np.int64)
    slot_of_i = np.empty(cap, np.int64)
    err = np.empty(cap, P.dtype)
    # The ratings filed by slot (parallel batches): the other side's row and -e/|B|.
    cols_u = np.empty(cap, np.int64)
    cols_i = np.empty(cap, np.int64)
    w_u = np.empty(cap, P.dtype)
    w_i = np.empty(cap, P.dtype)
    # Per slot: the row, its count, where its ratings are filed (ptr[s]:ptr[s + 1]), Σe and
    # the gradient.
    rows_u = np.empty(cap_u, np.int64)
    rows_i = np.empty(cap_i, np.int64)
    cnt_u = np.zeros(cap_u, np.int64)
    cnt_i = np.zeros(cap_i, np.int64)
    ptr_u = np.zeros(cap_u + 2, np.int64)
    ptr_i = np.zeros(cap_i + 2, np.int64)
    esum_u = np.zeros(cap_u, np.float64)
    esum_i = np.zeros(cap_i, np.float64)
    gP = np.empty((cap_u, k), P.dtype)
    gQ = np.empty((cap_i, k), Q.dtype)
    gbu = np.empty((cap_u, 1), P.dtype)
    gbi = np.empty((cap_i, 1), Q.dtype)
    slot_u = np.full(n_users, -1, np.int64)
    slot_i = np.full(n_items, -1, np.int64)
    cast = P.dtype.type

    sse = 0.0
    for start in range(0, n, batch_size):
        b = min(start + batch_size, n) - start
        inv_b = 1.0 / b
        # Slots and counts.
        nu = 0
        ni = 0
        for m in range(b):
            j = order[start + m]
            u = users[j]
            i = items[j]
            su = slot_u[u]
            if su < 0:
                su = nu
                slot_u[u] = su
                rows_u[su] = u
                tu[u] += 1
                nu += 1
            si = slot_i[i]
            if si < 0:
                si = ni
                slot_i[i] = si
                rows_i[si] = i
                ti[i] += 1
                ni += 1
            at_u[m] = u
            at_i[m] = i
            slot_of_u[m] = su
            slot_of_i[m] = si
            cnt_u[su] += 1
            cnt_i[si] += 1
        touched = nu + ni

        if b < PARALLEL_BATCH:
            # One pass: each rating adds to its two rows right after its residual
            # (p_u and q_i are still in cache), a slot's row starting at its first rating. Slots
            # are numbered in order of first appearance, so that rating is the one whose slot
            # equals the number of slots started so far.
            started_u = 0
            started_i = 0
            for m in range(b):
                _residuals(
                    m, m + 1, start, order, ratings, at_u, at_i, P, Q, bu, bi, mu, use_bias, err
                )
                e = err[m]
                sse += e * e
                we = cast(-e * inv_b)
                u = at_u[m]
                i = at_i[m]
                su = slot_of_u[m]
                if su == started_u:
                    row_scale(gP, su, cast(reg * cnt_u[su] * inv_b), P, u)
                    started_u += 1
                row_axpy(gP, su, we, Q, i)
                esum_u[su] += e
                si = slot_of_i[m]
                if si == started_i:
                    row_scale(gQ, si, cast(reg * cnt_i[si] * inv_b), Q, i)
                    started_i += 1
                row_axpy(gQ, si, we, P, u)
                esum_i[si] += e
            if use_bias:
                for s in range(nu):
                    _bias_row(s, rows_u, bu, cnt_u, esum_u, reg_bias, inv_b, gbu)
                for s in range(ni):
                    _bias_row(s, rows_i, bi, cnt_i, esum_i, reg_bias, inv_b, gbi)
            _step(
                0,
                touched,
                nu,
                rows_u,
                rows_i,
                P,
                Q,
                bu,
                bi,
                use_bias,
                (gP, gQ, gbu, gbi),
                opt,
                hyper,
                state,
                steps,
            )
        else:
            # Residuals.
            for c in prange(CHUNKS):
                _residuals(
                    c * b // CHUNKS,
                    (c + 1) * b // CHUNKS,
                    start,
                    order,
                    ratings,
                    at_u,
                    at_i,
                    P,
                    Q,
                    bu,
                    bi,
                    mu,
                    use_bias,
                    err,
                )
            # File every rating under its slots. After the running sums ptr[s + 1] is
            # where slot s starts; filing moves it to where s ends, i.e. where s + 1 starts.
            ptr_u[1] = 0
            for s in range(nu):
                ptr_u[s + 2] = ptr_u[s + 1] + cnt_u[s]
            ptr_i[1] = 0
            for s in range(ni):
                ptr_i[s + 2] = ptr_i[s + 1] + cnt_i[s]
            for m in range(b):
                e = err[m]
                sse += e * e
                we = cast(-e * inv_b)
                su = slot_of_u[m]
                pos = ptr_u[su + 1]
                ptr_u[su + 1] = pos + 1
                cols_u[pos] = at_i[m]
                w_u[pos] = we
                esum_u[su] += e
                si = slot_of_i[m]
                pos = ptr_i[si + 1]
                ptr_i[si + 1] = pos + 1
                cols_i[pos] = at_u[m]
                w_i[pos] = we
                esum_i[si] += e
            # The gradient rows, users' slots first, then the items'.
            sums = (
                gP,
                gQ,
                gbu,
                gbi,
                cnt_u,
                cnt_i,
                ptr_u,
                ptr_i,
                cols_u,
                cols_i,
                w_u,
                w_i,
                esum_u,
                esum_i,
            )
            for c in prange(CHUNKS):
                _gradients(
                    c * touched // CHUNKS,
                    (c + 1) * touched // CHUNKS,
                    nu,
                    rows_u,
                    rows_i,
                    P,
                    Q,
                    bu,
                    bi,
                    reg,
                    reg_bias,
                    use_bias,
                    inv_b,
                    sums,
                )
            # The optimizer steps.
            for c in prange(CHUNKS):
                _step(
                    c * touched // CHUNKS,
                    (c + 1) * touched // CHUNKS,
                    nu,
                    rows_u,
                    rows_i,
                    P,
                    Q,
                    bu,
                    bi,
                    use_bias,
                    (gP, gQ, gbu, gbi),
                    opt,
                    hyper,
                    state,
                    steps,
                )

        # Plain loops: in this parallel function a slice assignment would start a region.
        for s in range(nu):
            slot_u[rows_u[s]] = -1
            cnt_u[s] = 0
            esum_u[s] = 0.0
        for s in range(ni):
            slot_i[rows_i[s]] = -1
            cnt_i[s] = 0
            esum_i[s] = 0.0
    return sse


# The helpers are inlined (numba IR): as calls, each passing a dozen arrays, they cost ~20% of
# an epoch with batches of 1-64 ratings (measured on ml-100k, k=100).
@njit(cache=True, fastmath=FASTMATH, inline="always")
def _residuals(lo, hi, start, order, ratings, at_u, at_i, P, Q, bu, bi, mu, use_bias, err):
    """err[m] for the batch's ratings m = lo..hi-1."""
    for m in range(lo, hi):
        u = at_u[m]
        i = at_i[m]
        r = ratings[order[start + m]]
        if use_bias:
            err[m] = (r - (mu + bu[u] + bi[i])) - row_dot(P, u, Q, i)
        else:
            err[m] = r - row_dot(P, u, Q, i)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _gradients(lo, hi, nu, rows_u, rows_i, P, Q, bu, bi, reg, reg_bias, use_bias, inv_b, sums):
    """The gradient rows of slots lo..hi-1, counting the users' slots and then the items'
    (a parallel batch)."""
    gP, gQ, gbu, gbi, cnt_u, cnt_i, ptr_u, ptr_i, cols_u, cols_i, w_u, w_i, esum_u, esum_i = sums
    for t in range(lo, hi):
        if t < nu:
            _gradient_row(t, rows_u, P, Q, cnt_u, reg, inv_b, gP, ptr_u, cols_u, w_u)
            if use_bias:
                _bias_row(t, rows_u, bu, cnt_u, esum_u, reg_bias, inv_b, gbu)
        else:
            s = t - nu
            _gradient_row(s, rows_i, Q, P, cnt_i, reg, inv_b, gQ, ptr_i, cols_i, w_i)
            if use_bias:
                _bias_row(s, rows_i, bi, cnt_i, esum_i, reg_bias, inv_b, gbi)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _gradient_row(s, rows, X, Y, cnt, reg, inv_b, G, ptr, cols, w):
    """G[s] for slot s of one side from its filed ratings: X is its factor matrix, Y the other
    side's. The same arithmetic, in the same order, as a small batch's."""
    row_scale(G, s, X.dtype.type(reg * cnt[s] * inv_b), X, rows[s])
    gather_axpy(G, s, Y, cols, 0, w, ptr[s], ptr[s + 1])


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _bias_row(s, rows, bx, cnt, esum, reg_bias, inv_b, gb):
    """gb[s] = (λ_b n_x b_x - Σe) / |B| for slot s."""
    gb[s, 0] = (reg_bias * cnt[s] * bx[rows[s]] - esum[s]) * inv_b


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _step(lo, hi, nu, rows_u, rows_i, P, Q, bu, bi, use_bias, grads, opt, hyper, state, steps):
    """The optimizer step on slots lo..hi-1, counting the users' slots and then the items'."""
    lr, beta1, beta2, eps = hyper
    P1, P2, Q1, Q2, bu1, bu2, bi1, bi2 = state
    tu, ti = steps
    gP, gQ, gbu, gbi = grads
    a, z = min(lo, nu), min(hi, nu)
    if a < z:
        rows = rows_u[a:z]
        apply_rows(P, rows, gP[a:z], P1, P2, tu, opt, lr, beta1, beta2, eps)
        if use_bias:
            bu2d = bu.reshape((bu.shape[0], 1))
            apply_rows(bu2d, rows, gbu[a:z], bu1, bu2, tu, opt, lr, beta1, beta2, eps)
    a, z = max(lo, nu) - nu, max(hi, nu) - nu
    if a < z:
        rows = rows_i[a:z]
        apply_rows(Q, rows, gQ[a:z], Q1, Q2, ti, opt, lr, beta1, beta2, eps)
        if use_bias:
            bi2d = bi.reshape((bi.shape[0], 1))
            apply_rows(bi2d, rows, gbi[a:z], bi1, bi2, ti, opt, lr, beta1, beta2, eps)


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
