"""The per-epoch figures in one pass, without full-length temporaries (numba + numpy twins).

J and the RMSE need Σ (r - r̂)² over every rating. Building r̂ as an array costs several
arrays as long as the ratings (the prediction, the two bias gathers, the residuals): gigabytes
at 100M ratings. `squared_error_sum` predicts and sums rating by rating instead, and
`weighted_sq_norm` sums the penalty terms row by row.

Both cut their input into fixed chunks of `CHUNK` (ratings or rows) that run in parallel; each
chunk is summed in float64 on its own and the chunk sums are added in chunk order, so the
result is the same bit for bit whatever the number of threads. The prediction itself is made
in the factors' dtype, with the vector dot product of `mfrec.kernels.simd` (at k = 64 and
100 it took half the time of the element loop LLVM vectorises), so it can differ from
`mfrec.training.objective.predict` in the last bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from mfrec.kernels import FASTMATH
from mfrec.kernels.simd import row_dot

#: Ratings (or rows) per chunk: the unit of parallel work and of the summation order.
CHUNK = 1 << 16


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def squared_error_sum(
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    use_bias: bool,
    users: NDArray[np.integer],
    items: NDArray[np.integer],
    ratings: NDArray[np.floating],
) -> float:
    """Σ_n (ratings[n] - r̂(users[n], items[n]))², accumulated in float64.

    r̂ = P[u]·Q[i] + (bu[u] + bi[i] + mu) with biases, P[u]·Q[i] without; `mu` is expected
    in the factors' dtype.
    """
    n = ratings.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    if n_chunks <= 1:
        # One chunk (the same sum): no parallel region, which costs more than the chunk.
        return _chunk_squared_errors(P, Q, bu, bi, mu, use_bias, users, items, ratings, 0, n)
    sums = np.zeros(n_chunks)
    for c in prange(n_chunks):
        sums[c] = _chunk_squared_errors(
            P, Q, bu, bi, mu, use_bias, users, items, ratings, c * CHUNK, min(n, (c + 1) * CHUNK)
        )
    return _ordered_sum(sums)


@njit(cache=True, fastmath=FASTMATH)
def _chunk_squared_errors(P, Q, bu, bi, mu, use_bias, users, items, ratings, first, stop):
    """`squared_error_sum` over ratings first..stop-1."""
    total = 0.0
    for n in range(first, stop):
        u = users[n]
        i = items[n]
        dot = row_dot(P, u, Q, i)
        if use_bias:
            dot += bu[u] + bi[i] + mu
        e = np.float64(ratings[n] - dot)
        total += e * e
    return total


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def grid_squared_error_sum(
    users: NDArray[np.unsignedinteger],
    items: NDArray[np.unsignedinteger],
    codes: NDArray[np.unsignedinteger],
    values: NDArray[np.floating],
    block_ptr: NDArray[np.int64],
    user_start: NDArray[np.int64],
    item_start: NDArray[np.int64],
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    use_bias: bool,
) -> float:
    """`squared_error_sum` over ratings stored as a `mfrec.training.blocks.Grid`, with P, Q, bu, bi
    the
    working rows (`mfrec.training.solvers.sgd.WorkingCopy`): the sgd solver's figures without
    copying
    its rows back. One chunk per block, summed in block order."""
    width = user_start.shape[0] - 1
    n_blocks = block_ptr.shape[0] - 1
    sums = np.zeros(n_blocks)
    for blk in prange(n_blocks):
        base_u = user_start[blk // width]
        base_i = item_start[blk % width]
        total = 0.0
        for j in range(block_ptr[blk], block_ptr[blk + 1]):
            u = base_u + users[j]
            i = base_i + items[j]
            dot = row_dot(P, u, Q, i)
            if use_bias:
                dot += bu[u] + bi[i] + mu
            e = np.float64(values[codes[j]] - dot)
            total += e * e
        sums[blk] = total
    return _ordered_sum(sums)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def weighted_sq_norm(X: NDArray[np.floating], weights: NDArray[np.integer]) -> float:
    """Σ_rows weights[row]·|X[row]|², accumulated in float64 (X is 2-D)."""
    n = X.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    if n_chunks <= 1:
        # As in `squared_error_sum`: one chunk runs on the calling thread.
        return _chunk_weighted_sq(X, weights, 0, n)
    sums = np.zeros(n_chunks)
    for c in prange(n_chunks):
        sums[c] = _chunk_weighted_sq(X, weights, c * CHUNK, min(n, (c + 1) * CHUNK))
    return _ordered_sum(sums)


@njit(cache=True, fastmath=FASTMATH)
def _chunk_weighted_sq(X, weights, first, stop):
    """`weighted_sq_norm` over rows first..stop-1."""
    total = 0.0
    for r in range(first, stop):
        row = 0.0
        for f in range(X.shape[1]):
            x = np.float64(X[r, f])
            row += x * x
        total += np.float64(weights[r]) * row
    return total


@njit(cache=True)
def _ordered_sum(sums: NDArray[np.float64]) -> float:
    # Without fastmath: the chunk sums are added strictly left to right.
    total = 0.0
    for c in range(sums.shape[0]):
        total += sums[c]
    return total


def squared_error_sum_reference(
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    use_bias: bool,
    users: NDArray[np.integer],
    items: NDArray[np.integer],
    ratings: NDArray[np.floating],
) -> float:
    """Numpy twin of `squared_error_sum` (full-length temporaries: for tests)."""
    pred = np.einsum("nk,nk->n", P[users], Q[items])
    if use_bias:
        pred += bu[users] + bi[items] + mu
    e = (ratings - pred).astype(np.float64)
    return float(e @ e)


def grid_squared_error_sum_reference(
    users: NDArray[np.unsignedinteger],
    items: NDArray[np.unsignedinteger],
    codes: NDArray[np.unsignedinteger],
    values: NDArray[np.floating],
    block_ptr: NDArray[np.int64],
    user_start: NDArray[np.int64],
    item_start: NDArray[np.int64],
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    use_bias: bool,
) -> float:
    """Numpy twin of `grid_squared_error_sum`."""
    width = len(user_start) - 1
    block = np.repeat(np.arange(width * width), np.diff(block_ptr))
    rows_u = user_start[block // width] + users
    rows_i = item_start[block % width] + items
    ratings = values[codes]
    return squared_error_sum_reference(P, Q, bu, bi, mu, use_bias, rows_u, rows_i, ratings)


def weighted_sq_norm_reference(X: NDArray[np.floating], weights: NDArray[np.integer]) -> float:
    """Numpy twin of `weighted_sq_norm`."""
    X64 = X.astype(np.float64)
    return float(weights.astype(np.float64) @ (X64 * X64).sum(axis=1))
