"""Ratings grouped by row in O(n), without sorting (numba + numpy twins).

An argsort of 100M row indices needs an int64 order array (800 MB) and sort workspace; a
counting sort needs only the output and one fill pointer per row.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray


def group_by_row(
    rows: NDArray[np.integer], cols: NDArray[np.integer], n_rows: int
) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """CSR (indptr, grouped) of `cols` by `rows`: row x holds ``grouped[indptr[x]:indptr[x+1]]``,
    in input order (what a stable argsort of `rows` gives). Rows are in 0..n_rows-1."""
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    grouped = np.empty(len(cols), dtype=np.int32)
    _scatter(rows, cols, indptr, grouped)
    return indptr, grouped


def row_counts(rows: NDArray[np.integer], n_rows: int) -> NDArray[np.int64]:
    """Entries per row, ``np.bincount(rows, minlength=n_rows)`` without the int64 copy of
    `rows` that np.bincount makes first (763 MB at 100M int32 rows)."""
    counts = np.zeros(n_rows, dtype=np.int64)
    _count(rows, counts)
    return counts


@njit(cache=True)
def _count(rows, counts):
    for n in range(rows.shape[0]):
        counts[rows[n]] += 1


@njit(cache=True)
def _scatter(rows, cols, indptr, grouped):
    # Counted here rather than by np.bincount, which first copies int32 rows to int64.
    _count(rows, indptr[1:])
    for r in range(indptr.shape[0] - 1):
        indptr[r + 1] += indptr[r]
    fill = indptr[:-1].copy()
    for n in range(rows.shape[0]):
        r = rows[n]
        grouped[fill[r]] = cols[n]
        fill[r] += 1


def group_by_row_reference(
    rows: NDArray[np.integer], cols: NDArray[np.integer], n_rows: int
) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """Numpy twin of `group_by_row` (a stable argsort)."""
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    order = np.argsort(rows, kind="stable")
    return indptr, np.asarray(cols, dtype=np.int32)[order]


@njit(cache=True)
def has_repeats(indptr: NDArray[np.int64], grouped: NDArray[np.integer], n_cols: int) -> bool:
    """Whether some row of the CSR holds a column twice (columns in 0..n_cols-1)."""
    last_row = np.full(n_cols, -1, dtype=np.int64)
    for r in range(indptr.shape[0] - 1):
        for j in range(indptr[r], indptr[r + 1]):
            c = grouped[j]
            if last_row[c] == r:
                return True
            last_row[c] = r
    return False


def has_repeats_reference(
    indptr: NDArray[np.int64], grouped: NDArray[np.integer], n_cols: int
) -> bool:
    """Numpy twin of `has_repeats`."""
    row = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    key = np.sort(row * max(n_cols, 1) + grouped)
    return bool((key[1:] == key[:-1]).any())
