"""Top-k columns of each row of a score block (numba, with its numpy twin).

One pass per row keeps the k best (score, column) pairs in a small sorted buffer: a column
that does not beat the current k-th score costs one comparison, so selecting from a block is
a fraction of the cost of the matrix product that made it, and far cheaper than
``argpartition`` (which also needs an int64 array as large as the block). The comparisons
run `CHUNK` columns at a time in vector registers; only a chunk holding a column that beats
the k-th score is walked column by column (most chunks hold none once k are held).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

#: Columns compared at once before any is looked at one by one (a fixed count, so that the
#: loop is unrolled into vector comparisons; 32-64 measured fastest on 20k-column blocks).
CHUNK = 64


@njit(cache=True, inline="always")
def _insert(s, j, idx, score, count, k):
    """Put score `s` of column `j` into the sorted buffer (idx, score) holding `count` of at
    most `k`, behind any equal score (which has a lower column); return the new count."""
    pos = count if count < k else k - 1
    while pos > 0 and s > score[pos - 1]:
        score[pos] = score[pos - 1]
        idx[pos] = idx[pos - 1]
        pos -= 1
    score[pos] = s
    idx[pos] = j
    return count + 1 if count < k else count


@njit(cache=True, parallel=True)
def top_k_rows(
    S: NDArray[np.floating],
    bias: NDArray[np.floating],
    excl_indptr: NDArray[np.int64],
    excl_indices: NDArray[np.int32],
    out_idx: NDArray[np.int32],
    out_score: NDArray[np.floating],
) -> None:
    """For each row r: the k = out_idx.shape[1] columns j with the highest S[r, j] + bias[j].

    Columns ``excl_indices[excl_indptr[r]:excl_indptr[r + 1]]`` are left out (S is
    overwritten with -inf there: it is a scratch block). Rows come out best first; equal
    scores go to the lower column, so the result does not depend on the order of the scan.
    A row with fewer than k candidates (finite scores) is padded with column -1, score -inf.
    """
    n, m = S.shape
    k = out_idx.shape[1]
    full = m - m % CHUNK
    for r in prange(n):
        row = S[r]
        for p in range(excl_indptr[r], excl_indptr[r + 1]):
            row[excl_indices[p]] = -np.inf
        idx = out_idx[r]
        score = out_score[r]
        count = 0
        # The score to beat, in the scores' dtype (a float32 compared with a float64 would
        # be widened column by column): -inf until k are held (so -inf and NaN, which are
        # not greater, never enter), then the k-th best. An equal score never displaces one
        # already held, which has the lower column.
        score[k - 1] = -np.inf
        worst = score[k - 1]
        for start in range(0, full, CHUNK):
            above = 0
            for t in range(CHUNK):
                above += row[start + t] + bias[start + t] > worst
            if above == 0:
                continue
            for j in range(start, start + CHUNK):
                s = row[j] + bias[j]
                if s > worst:
                    count = _insert(s, j, idx, score, count, k)
                    if count == k:
                        worst = score[k - 1]
        for j in range(full, m):
            s = row[j] + bias[j]
            if s > worst:
                count = _insert(s, j, idx, score, count, k)
                if count == k:
                    worst = score[k - 1]
        for p in range(count, k):
            idx[p] = -1
            score[p] = -np.inf


def top_k_rows_reference(
    S: NDArray[np.floating],
    bias: NDArray[np.floating],
    excl_indptr: NDArray[np.int64],
    excl_indices: NDArray[np.int32],
    out_idx: NDArray[np.int32],
    out_score: NDArray[np.floating],
) -> None:
    """Numpy twin of `top_k_rows`: a full sort of every row (memory and time grow with S)."""
    n, m = S.shape
    k = out_idx.shape[1]
    counts = np.diff(excl_indptr)
    rows = np.repeat(np.arange(n), counts)
    S[rows, excl_indices[excl_indptr[0] : excl_indptr[-1]]] = -np.inf
    scores = S + bias
    scores[np.isnan(scores)] = -np.inf
    columns = np.broadcast_to(np.arange(m), (n, m))
    order = np.lexsort((columns, -scores), axis=-1)[:, :k]
    best = np.take_along_axis(scores, order, axis=1)
    found = best > -np.inf
    out_idx[:] = -1
    out_score[:] = -np.inf
    width = order.shape[1]
    out_idx[:, :width] = np.where(found, order, -1)
    out_score[:, :width] = np.where(found, best, -np.inf)
