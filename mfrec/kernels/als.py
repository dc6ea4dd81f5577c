"""One ALS half-step: the exact minimiser of J over every row of one side (numba + numpy twin).

The rows being solved are X (with biases bx), the fixed side is Y (with biases by). Row x's
ratings are ``vals[indptr[x]:indptr[x+1]]`` against the fixed rows ``cols[...]``. With
n = its number of ratings and, with biases, z = [b_x, x], a_j = [1, y_j],
t_j = r_j - mu - b_j (without: z = x, a_j = y_j, t_j = r_j), the row's part of |R|·J is

    Σ_j (t_j - a_j·z)² + n (reg_bias b_x² + reg |x|²)

whose minimiser solves (AᵀA + n·diag(reg_bias, reg, ..., reg)) z = Aᵀt. Rows without ratings
do not appear in J and are left as they are.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from mfrec.kernels import FASTMATH

#: Rows of one half-step are solved in this many chunks (a fixed number, so that the sum of
#: squared errors does not depend on the thread count).
ROW_CHUNKS = 64


@njit(cache=True, fastmath=FASTMATH)
def _solve_spd(M: NDArray[np.floating], b: NDArray[np.floating]) -> None:
    """Solve M z = b in place (b becomes z) by Cholesky; M's lower triangle is overwritten.

    Written out rather than calling LAPACK: the systems are small, and a multithreaded BLAS
    makes thousands of tiny calls several times slower and its results thread-count dependent.
    """
    d = M.shape[0]
    for j in range(d):
        s = M[j, j]
        for c in range(j):
            s -= M[j, c] * M[j, c]
        ljj = np.sqrt(s)
        M[j, j] = ljj
        for r in range(j + 1, d):
            s = M[r, j]
            for c in range(j):
                s -= M[r, c] * M[j, c]
            M[r, j] = s / ljj
    for r in range(d):
        s = b[r]
        for c in range(r):
            s -= M[r, c] * b[c]
        b[r] = s / M[r, r]
    for r in range(d - 1, -1, -1):
        s = b[r]
        for c in range(r + 1, d):
            s -= M[c, r] * b[c]
        b[r] = s / M[r, r]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def als_half_step(
    indptr: NDArray[np.int64],
    cols: NDArray[np.int32],
    vals: NDArray[np.floating],
    X: NDArray[np.floating],
    bx: NDArray[np.floating],
    Y: NDArray[np.floating],
    by: NDArray[np.floating],
    mu: float,
    reg: float,
    reg_bias: float,
    use_bias: bool,
) -> float:
    """Replace each rated row of X (and bx) by its exact minimiser given Y and by.

    Needs reg > 0 (then the system is positive definite). Returns the sum of the squared
    errors before the update, in float64. Rows are solved in parallel, in `ROW_CHUNKS` fixed
    chunks: every row's solution, and the sum, are the same whatever the thread count.
    """
    n_rows = X.shape[0]
    n_chunks = max(1, min(n_rows, ROW_CHUNKS))
    sums = np.zeros(n_chunks)
    for chunk in prange(n_chunks):
        sums[chunk] = _solve_rows(
            indptr,
            cols,
            vals,
            X,
            bx,
            Y,
            by,
            mu,
            reg,
            reg_bias,
            use_bias,
            chunk * n_rows // n_chunks,
            (chunk + 1) * n_rows // n_chunks,
        )
    return sums.sum()


@njit(cache=True, fastmath=FASTMATH)
def _solve_rows(indptr, cols, vals, X, bx, Y, by, mu, reg, reg_bias, use_bias, first, stop):
    """`als_half_step` on rows first..stop-1; returns their squared errors."""
    k = X.shape[1]
    off = 1 if use_bias else 0
    d = k + off
    a = np.empty(d, X.dtype)
    M = np.empty((d, d), X.dtype)
    z = np.empty(d, X.dtype)
    sse = 0.0
    for x in range(first, stop):
        lo = indptr[x]
        n = indptr[x + 1] - lo
        if n == 0:
            continue
        M[:, :] = 0.0
        z[:] = 0.0
        for m in range(n):
            c = cols[lo + m]
            if use_bias:
                a[0] = 1.0
                t = vals[lo + m] - mu - by[c]
                e = t - bx[x]
            else:
                t = vals[lo + m]
                e = t
            a[off:] = Y[c]
            xr = X[x]
            for f in range(k):
                e -= Y[c, f] * xr[f]
            sse += e * e
            # Lower triangle of AᵀA, one rating (a row of A) at a time.
            for r in range(d):
                ar = a[r]
                z[r] += ar * t
                for col in range(r + 1):
                    M[r, col] += ar * a[col]
        for f in range(off, d):
            M[f, f] += n * reg
        if use_bias:
            M[0, 0] += n * reg_bias
        _solve_spd(M, z)
        if use_bias:
            bx[x] = z[0]
        X[x] = z[off:]
    return sse


def als_half_step_reference(
    indptr: NDArray[np.int64],
    cols: NDArray[np.int32],
    vals: NDArray[np.floating],
    X: NDArray[np.floating],
    bx: NDArray[np.floating],
    Y: NDArray[np.floating],
    by: NDArray[np.floating],
    mu: float,
    reg: float,
    reg_bias: float,
    use_bias: bool,
) -> float:
    """Numpy twin of `als_half_step`: a Python loop over rows, one `np.linalg.solve` each."""
    sse = 0.0
    for x in range(X.shape[0]):
        sl = slice(indptr[x], indptr[x + 1])
        n = sl.stop - sl.start
        if n == 0:
            continue
        c = cols[sl]
        if use_bias:
            A = np.column_stack([np.ones(n, X.dtype), Y[c]])
            t = vals[sl] - mu - by[c]
            z = np.concatenate([[bx[x]], X[x]])
            penalty = np.r_[reg_bias, np.full(X.shape[1], reg)]
        else:
            A, t, z = Y[c], vals[sl], X[x]
            penalty = np.full(X.shape[1], reg)
        sse += float(np.sum((t - A @ z).astype(np.float64) ** 2))
        sol = np.linalg.solve(A.T @ A + np.diag(n * penalty), A.T @ t)
        if use_bias:
            bx[x], X[x] = sol[0], sol[1:]
        else:
            X[x] = sol
    return sse
