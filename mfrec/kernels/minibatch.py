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

The kernel takes the ratings, the shuffled order and the batch size as arrays and scalars, the
parameters it fits as a `Params` and the optimizer as an `Optimizer`: namedtuples, which numba
passes as structures of arrays and scalars.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from mfrec.kernels import FASTMATH
from mfrec.kernels.simd import gather_axpy, row_axpy, row_dot, row_scale
from mfrec.kernels.steps import apply_rows, apply_rows_reference

#: Batches of at least this many ratings run on all threads (module docstring).
PARALLEL_BATCH = 2048
#: A parallel pass hands the threads this many fixed chunks.
CHUNKS = 64


class Params(NamedTuple):
    """What an epoch fits: P, Q, bu, bi (updated in place; with ``use_bias`` off mu, bu and
    bi are left out of the predictions and not updated), and the objective's constants in the
    factors' dtype."""

    P: NDArray[np.floating]
    Q: NDArray[np.floating]
    bu: NDArray[np.floating]
    bi: NDArray[np.floating]
    mu: float
    use_bias: bool
    reg: float
    reg_bias: float


class Optimizer(NamedTuple):
    """The update rule (a `mfrec.kernels.steps` code) and its hyperparameters in the factors'
    dtype, its state (bias states are (n, 1) columns; a state the rule does not use is empty)
    and the rows' step counts, incremented here for every touched row. Flat: numba 0.68
    cannot hand a parallel loop a tuple taken out of another (TypeError when compiling)."""

    code: int
    lr: float
    beta1: float
    beta2: float
    eps: float
    P1: NDArray[np.floating]
    P2: NDArray[np.floating]
    Q1: NDArray[np.floating]
    Q2: NDArray[np.floating]
    bu1: NDArray[np.floating]
    bu2: NDArray[np.floating]
    bi1: NDArray[np.floating]
    bi2: NDArray[np.floating]
    tu: NDArray[np.int64]
    ti: NDArray[np.int64]


class Side(NamedTuple):
    """One side's (the users' or the items') scratch for a batch.

    Rows the batch touches get *slots* 0, 1, ... in order of first appearance."""

    slot: NDArray[np.int64]  # per row: its slot in this batch, -1 when untouched
    at: NDArray[np.int64]  # per rating m of the batch: its row
    slot_of: NDArray[np.int64]  # per rating m: its row's slot
    rows: NDArray[np.int64]  # per slot: its row
    cnt: NDArray[np.int64]  # per slot: its ratings
    ptr: NDArray[np.int64]  # ratings filed by slot (parallel batches): ptr[s]:ptr[s + 1]
    cols: NDArray[np.int64]  # per filed rating: the other side's row
    w: NDArray[np.floating]  # per filed rating: -e/|B|
    esum: NDArray[np.float64]  # per slot: Σe
    G: NDArray[np.floating]  # per slot: the gradient row
    gb: NDArray[np.floating]  # per slot: the bias gradient, (slots, 1)


@njit(cache=True, fastmath=FASTMATH)
def minibatch_epoch(
    users: NDArray[np.int32],
    items: NDArray[np.int32],
    ratings: NDArray[np.floating],
    order: NDArray[np.integer],
    batch_size: int,
    params: Params,
    opt: Optimizer,
) -> float:
    """One epoch of mini-batches, updating the parameters and the optimizer state in place.

    Returns the sum of the squared errors seen (at each batch's start parameters), in float64.
    """
    n = order.shape[0]
    cap = max(1, min(batch_size, n))
    us = _side(params.P, cap)
    its = _side(params.Q, cap)
    err = np.empty(cap, params.P.dtype)
    sse = 0.0
    for start in range(0, n, batch_size):
        batch = order[start : min(start + batch_size, n)]
        if batch.shape[0] < PARALLEL_BATCH:
            sse = _small_batch(sse, batch, users, items, ratings, params, opt, us, its, err)
        else:
            sse = _large_batch(sse, batch, users, items, ratings, params, opt, us, its, err)
    return sse


@njit(cache=True)
def _side(X, cap):
    """A side's scratch for batches of up to `cap` ratings; X is its factor matrix."""
    n_rows, k = X.shape
    slots = min(cap, n_rows)
    return Side(
        np.full(n_rows, -1, np.int64),
        np.empty(cap, np.int64),
        np.empty(cap, np.int64),
        np.empty(slots, np.int64),
        np.zeros(slots, np.int64),
        np.zeros(slots + 2, np.int64),
        np.empty(cap, np.int64),
        np.empty(cap, X.dtype),
        np.zeros(slots, np.float64),
        np.empty((slots, k), X.dtype),
        np.empty((slots, 1), X.dtype),
    )


@njit(cache=True, fastmath=FASTMATH)
def _small_batch(sse, batch, users, items, ratings, params, opt, us, its, err):
    """A batch on the calling thread, in one pass: each rating adds to its two rows right
    after its residual (p_u and q_i are still in cache), a slot's row starting at its first
    rating. Returns `sse` plus the batch's squared errors."""
    P, Q = params.P, params.Q
    cast = P.dtype.type
    nu = _number(batch, users, us, opt.tu)
    ni = _number(batch, items, its, opt.ti)
    b = batch.shape[0]
    inv_b = 1.0 / b
    # Slots are numbered in order of first appearance, so a slot's first rating is the one
    # whose slot equals the number of slots started so far.
    started_u = 0
    started_i = 0
    for m in range(b):
        _residuals(m, m + 1, batch, ratings, us.at, its.at, params, err)
        e = err[m]
        sse += e * e
        we = cast(-e * inv_b)
        u = us.at[m]
        i = its.at[m]
        su = us.slot_of[m]
        if su == started_u:
            row_scale(us.G, su, cast(params.reg * us.cnt[su] * inv_b), P, u)
            started_u += 1
        row_axpy(us.G, su, we, Q, i)
        us.esum[su] += e
        si = its.slot_of[m]
        if si == started_i:
            row_scale(its.G, si, cast(params.reg * its.cnt[si] * inv_b), Q, i)
            started_i += 1
        row_axpy(its.G, si, we, P, u)
        its.esum[si] += e
    if params.use_bias:
        for s in range(nu):
            _bias_row(s, us, params.bu, us.gb, params.reg_bias, inv_b)
        for s in range(ni):
            _bias_row(s, its, params.bi, its.gb, params.reg_bias, inv_b)
    _step(0, nu + ni, nu, params, opt, us, its)
    _clear(us, nu)
    _clear(its, ni)
    return sse


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _large_batch(sse, batch, users, items, ratings, params, opt, us, its, err):
    """A batch on all threads, in three parallel passes over `CHUNKS` fixed chunks: the
    residuals; then, after the ratings have been filed by slot in batch order on the calling
    thread, every row's gradient; then the steps. Returns `sse` plus the batch's squared
    errors."""
    cast = params.P.dtype.type
    nu = _number(batch, users, us, opt.tu)
    ni = _number(batch, items, its, opt.ti)
    touched = nu + ni
    b = batch.shape[0]
    inv_b = 1.0 / b
    for c in prange(CHUNKS):
        lo, hi = c * b // CHUNKS, (c + 1) * b // CHUNKS
        _residuals(lo, hi, batch, ratings, us.at, its.at, params, err)
    # File every rating under its slots. After the running sums ptr[s + 1] is where slot s
    # starts; filing moves it to where s ends, i.e. where s + 1 starts.
    _start_filing(us, nu)
    _start_filing(its, ni)
    for m in range(b):
        e = err[m]
        sse += e * e
        we = cast(-e * inv_b)
        _file(m, us, its.at[m], we, e)
        _file(m, its, us.at[m], we, e)
    # The gradient rows, users' slots first, then the items'. The arrays the loop assigns to
    # are bound out here: numba 0.68 can drop a parallel loop's assignments to an array it takes
    # out of a tuple itself (the writes of calls, the intrinsics and apply_rows, are kept).
    # The parallel-path test of tests/kernels/test_kernels.py fails when that happens.
    gbu, gbi = us.gb, its.gb
    for c in prange(CHUNKS):
        lo, hi = c * touched // CHUNKS, (c + 1) * touched // CHUNKS
        _gradients(lo, hi, nu, params, us, its, gbu, gbi, inv_b)
    # The optimizer steps.
    for c in prange(CHUNKS):
        lo, hi = c * touched // CHUNKS, (c + 1) * touched // CHUNKS
        _step(lo, hi, nu, params, opt, us, its)
    _clear(us, nu)
    _clear(its, ni)
    return sse


# The helpers are inlined (numba IR): as calls, each passing a dozen arrays, they cost ~20% of
# an epoch with batches of 1-64 ratings (measured on ml-100k, k=100).
@njit(cache=True, fastmath=FASTMATH, inline="always")
def _number(batch, rows_of, side, t):
    """Give the rows of one side that the batch touches their slots, count each slot's ratings
    and each touched row's step (t); returns the number of slots."""
    n_slots = 0
    for m in range(batch.shape[0]):
        x = rows_of[batch[m]]
        s = side.slot[x]
        if s < 0:
            s = n_slots
            side.slot[x] = s
            side.rows[s] = x
            t[x] += 1
            n_slots += 1
        side.at[m] = x
        side.slot_of[m] = s
        side.cnt[s] += 1
    return n_slots


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _residuals(lo, hi, batch, ratings, at_u, at_i, params, err):
    """err[m] for the batch's ratings m = lo..hi-1."""
    P, Q = params.P, params.Q
    for m in range(lo, hi):
        u = at_u[m]
        i = at_i[m]
        r = ratings[batch[m]]
        if params.use_bias:
            err[m] = (r - (params.mu + params.bu[u] + params.bi[i])) - row_dot(P, u, Q, i)
        else:
            err[m] = r - row_dot(P, u, Q, i)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _start_filing(side, n_slots):
    """ptr[s + 1] = where slot s's ratings start (ptr[1] = 0)."""
    side.ptr[1] = 0
    for s in range(n_slots):
        side.ptr[s + 2] = side.ptr[s + 1] + side.cnt[s]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _file(m, side, col, we, e):
    """File rating m under its slot of `side`: the other side's row `col` and -e/|B| (`we`)."""
    s = side.slot_of[m]
    pos = side.ptr[s + 1]
    side.ptr[s + 1] = pos + 1
    side.cols[pos] = col
    side.w[pos] = we
    side.esum[s] += e


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _gradients(lo, hi, nu, params, us, its, gbu, gbi, inv_b):
    """The gradient rows of slots lo..hi-1, counting the users' slots and then the items'
    (a parallel batch); the bias gradients go to `gbu` and `gbi` (``us.gb``, ``its.gb``)."""
    for t in range(lo, hi):
        if t < nu:
            _gradient_row(t, us, params.P, params.Q, params.reg, inv_b)
            if params.use_bias:
                _bias_row(t, us, params.bu, gbu, params.reg_bias, inv_b)
        else:
            s = t - nu
            _gradient_row(s, its, params.Q, params.P, params.reg, inv_b)
            if params.use_bias:
                _bias_row(s, its, params.bi, gbi, params.reg_bias, inv_b)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _gradient_row(s, side, X, Y, reg, inv_b):
    """G[s] for slot s of one side from its filed ratings: X is its factor matrix, Y the other
    side's. The same arithmetic, in the same order, as a small batch's."""
    row_scale(side.G, s, X.dtype.type(reg * side.cnt[s] * inv_b), X, side.rows[s])
    gather_axpy(side.G, s, Y, side.cols, 0, side.w, side.ptr[s], side.ptr[s + 1])


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _bias_row(s, side, bx, gb, reg_bias, inv_b):
    """gb[s] = (λ_b n_x b_x - Σe) / |B| for slot s of `side` (bx: its biases)."""
    gb[s, 0] = (reg_bias * side.cnt[s] * bx[side.rows[s]] - side.esum[s]) * inv_b


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _step(lo, hi, nu, params, opt, us, its):
    """The optimizer step on slots lo..hi-1, counting the users' slots and then the items'."""
    code, lr, beta1, beta2, eps, P1, P2, Q1, Q2, bu1, bu2, bi1, bi2, tu, ti = opt
    a, z = min(lo, nu), min(hi, nu)
    if a < z:
        rows = us.rows[a:z]
        apply_rows(params.P, rows, us.G[a:z], P1, P2, tu, code, lr, beta1, beta2, eps)
        if params.use_bias:
            bu2d = params.bu.reshape((params.bu.shape[0], 1))
            apply_rows(bu2d, rows, us.gb[a:z], bu1, bu2, tu, code, lr, beta1, beta2, eps)
    a, z = max(lo, nu) - nu, max(hi, nu) - nu
    if a < z:
        rows = its.rows[a:z]
        apply_rows(params.Q, rows, its.G[a:z], Q1, Q2, ti, code, lr, beta1, beta2, eps)
        if params.use_bias:
            bi2d = params.bi.reshape((params.bi.shape[0], 1))
            apply_rows(bi2d, rows, its.gb[a:z], bi1, bi2, ti, code, lr, beta1, beta2, eps)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _clear(side, n_slots):
    """Ready the side for the next batch: no row has a slot, every count and sum is zero."""
    # Plain loops: in a parallel function a slice assignment would start a region.
    for s in range(n_slots):
        side.slot[side.rows[s]] = -1
        side.cnt[s] = 0
        side.esum[s] = 0.0


def minibatch_epoch_reference(
    users: NDArray[np.int32],
    items: NDArray[np.int32],
    ratings: NDArray[np.floating],
    order: NDArray[np.integer],
    batch_size: int,
    params: Params,
    opt: Optimizer,
) -> float:
    """Numpy twin of `minibatch_epoch`: a Python loop over batches, vectorised within one."""
    P, Q, bu, bi, mu, use_bias, reg, reg_bias = params
    code, lr, beta1, beta2, eps, P1, P2, Q1, Q2, bu1, bu2, bi1, bi2, tu, ti = opt
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
        apply_rows_reference(P, rows_u, gP * scale, P1, P2, tu, code, lr, beta1, beta2, eps)
        apply_rows_reference(Q, rows_i, gQ * scale, Q1, Q2, ti, code, lr, beta1, beta2, eps)
        if use_bias:
            gbu = np.bincount(inv_u, weights=reg_bias * bu[u] - e, minlength=len(rows_u))
            gbi = np.bincount(inv_i, weights=reg_bias * bi[i] - e, minlength=len(rows_i))
            gbu = (gbu * scale).astype(P.dtype)[:, None]
            gbi = (gbi * scale).astype(Q.dtype)[:, None]
            apply_rows_reference(bu2d, rows_u, gbu, bu1, bu2, tu, code, lr, beta1, beta2, eps)
            apply_rows_reference(bi2d, rows_i, gbi, bi1, bi2, ti, code, lr, beta1, beta2, eps)
    return sse
