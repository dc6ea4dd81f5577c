"""The fast bgd path: run intrinsics, the block ordering, the grid gradient kernel and its twin,
the parallel optimizer step, and the solver around them. Speed is measured in
benchmarks/bench_speed.py (``--cases bgd``); here only correctness."""

import numpy as np
import pytest
from conftest import DTYPES_SLOW64, planted
from numba import njit

from mfrec.kernels.gradient import (
    half_gradient,
    half_gradient_reference,
    sort_blocks,
    sort_blocks_reference,
)
from mfrec.kernels.layout import padded_width
from mfrec.kernels.simd import gather_axpy, scatter_axpy
from mfrec.kernels.steps import (
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_CONSTANT,
    OPT_MOMENTUM,
    apply_rows,
    apply_rows_parallel,
    apply_rows_reference,
)
from mfrec.kernels.threads import available_threads, numba_threads
from mfrec.training import objective
from mfrec.training.blocks import PARALLEL_BLOCKS, build_grid
from mfrec.training.solvers.bgd import BGD
from mfrec.training.solvers.sgd import WorkingCopy
from mfrec.training.state import DEFAULT_INIT_STD, Factors, SolverParams

# float64 cases run with the slow tests: they compile a second specialization of each kernel.
DTYPES = DTYPES_SLOW64
THREADS = sorted({1, available_threads()})


def close(dtype):
    return {"rtol": 2e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}


# --- run intrinsics ------------------------------------------------------------------------


@njit
def _gather(Y, y, X, cols, base, weights, lo, hi):
    gather_axpy(Y, y, X, cols, base, weights, lo, hi)


@njit
def _scatter(Y, cols, base, X, x, weights, lo, hi):
    scatter_axpy(Y, cols, base, X, x, weights, lo, hi)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [3, 8, 16, 64, 100, 112])
@pytest.mark.parametrize("cols_dtype", [np.uint16, np.int64])
def test_gather_and_scatter_axpy_match_numpy(dtype, k, cols_dtype):
    """Lengths with groups of vectors, single vectors and an element-by-element tail."""
    rng = np.random.default_rng(k)
    X = rng.normal(size=(9, k)).astype(dtype)
    Y = rng.normal(size=(7, k)).astype(dtype)
    cols = np.array([0, 2, 2, 4, 1, 3, 0], cols_dtype)  # repeats: added one after the other
    weights = rng.normal(size=7).astype(dtype)
    base, lo, hi = 2, 1, 6
    expected = Y.copy()
    expected[5] += (weights[lo:hi, None] * X[base + cols[lo:hi].astype(np.int64)]).sum(axis=0)
    G = Y.copy()
    _gather(G, 5, X, cols, base, weights, lo, hi)
    np.testing.assert_allclose(G, expected, **close(dtype))
    np.testing.assert_array_equal(np.delete(G, 5, axis=0), np.delete(Y, 5, axis=0))

    expected = X.copy()
    for m in range(lo, hi):
        expected[base + int(cols[m])] += weights[m] * Y[6]
    S = X.copy()
    _scatter(S, cols, base, Y, 6, weights, lo, hi)
    np.testing.assert_allclose(S, expected, **close(dtype))
    untouched = [r for r in range(9) if r - base not in cols[lo:hi]]
    np.testing.assert_array_equal(S[untouched], X[untouched])


def test_gather_and_scatter_axpy_of_an_empty_run_change_nothing():
    X = np.ones((3, 20), np.float32)
    Y = np.ones((2, 20), np.float32)
    cols, weights = np.array([1, 2], np.uint8), np.ones(2, np.float32)
    _gather(Y, 0, X, cols, 0, weights, 1, 1)
    _scatter(X, cols, 0, Y, 1, weights, 2, 2)
    assert (X == 1).all() and (Y == 1).all()


# --- the grid, ordered by user -------------------------------------------------------------


def test_sort_blocks_orders_each_block_by_user_and_keeps_its_ratings():
    train, _ = planted(n_users=60, n_items=40, density=0.5)
    rng = np.random.default_rng(3)
    grid = build_grid(train.users, train.items, train.ratings, 60, 40, 3, rng)
    before = [
        sorted(zip(*(a[lo:hi].tolist() for a in (grid.users, grid.items, grid.codes)), strict=True))
        for lo, hi in zip(grid.block_ptr[:-1], grid.block_ptr[1:], strict=True)
    ]
    twin = [a.copy() for a in (grid.users, grid.items, grid.codes)]
    sort_blocks(grid.users, grid.items, grid.codes, grid.block_ptr, grid.user_start)
    sort_blocks_reference(*twin, grid.block_ptr, grid.user_start)
    for a, b in zip((grid.users, grid.items, grid.codes), twin, strict=True):
        np.testing.assert_array_equal(a, b)
    for n, (lo, hi) in enumerate(zip(grid.block_ptr[:-1], grid.block_ptr[1:], strict=True)):
        assert (np.diff(grid.users[lo:hi].astype(np.int64)) >= 0).all()
        block = zip(*(a[lo:hi].tolist() for a in (grid.users, grid.items, grid.codes)), strict=True)
        assert sorted(block) == before[n]


# --- the gradient kernel -------------------------------------------------------------------


def gradient_problem(dtype, use_bias, padded, k=5, seed=0):
    """A grid, working copies and the kernel's other arguments, with random factors."""
    train, _ = planted(dtype, seed=seed, n_users=70, n_items=50, density=0.4)
    rng = np.random.default_rng(seed)
    f = Factors.initial(70, 50, k, mu=3.0, use_bias=use_bias, init_std=0.3, dtype=dtype, rng=rng)
    if use_bias:
        f.bu[:] = rng.normal(0, 0.3, 70)
        f.bi[:] = rng.normal(0, 0.3, 50)
    grid = build_grid(train.users, train.items, train.ratings, 70, 50, 3, rng)
    sort_blocks(grid.users, grid.items, grid.codes, grid.block_ptr, grid.user_start)
    work = WorkingCopy(f, grid)
    work.load(f)
    working = list(work.arrays())
    if not padded:
        working[:2] = [np.ascontiguousarray(x[:, :k]) for x in working[:2]]
    assert working[0].shape[1] == (padded_width(k, np.dtype(dtype).itemsize) if padded else k)
    data = (grid.users, grid.items, grid.codes, grid.values, grid.block_ptr)
    rows = (grid.user_start, grid.item_start, grid.user_rows, grid.item_rows, *train.counts())
    scalars = (dtype(f.mu), dtype(0.1), dtype(0.05), use_bias)
    return train, f, grid, (*data, *rows, *working, *scalars)


def outputs(train, f, working):
    """Residuals, scratch sums shaped like the working copies, and ½∇J shaped like f, all NaN."""
    return [np.full_like(train.ratings, np.nan)] + [
        np.full_like(x, np.nan) for x in (*working, f.P, f.Q, f.bu, f.bi)
    ]


@pytest.mark.parametrize("dtype", DTYPES_SLOW64)
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("padded", [True, False])
def test_half_gradient_matches_reference_and_objective(dtype, use_bias, padded):
    train, f, grid, args = gradient_problem(dtype, use_bias, padded)
    working = args[11:15]
    results = []
    for kernel in (half_gradient, half_gradient_reference):
        out = outputs(train, f, working)
        kernel(*args, *out)
        results.append(out)
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, **close(dtype))
    # the residuals are in grid order
    users, items, r = grid.expanded()
    u, i = grid.user_rows[users], grid.item_rows[items]
    pred = np.einsum("nk,nk->n", f.P[u], f.Q[i]) + (f.mu + f.bu[u] + f.bi[i] if use_bias else 0)
    np.testing.assert_allclose(results[0][0], r - pred, **close(dtype))
    # ½∇J in the factors' order, padding of the sums zero
    _, grad = objective.objective_and_gradient(f, train, 0.1, 0.05)
    for half, full in zip(results[0][5:], grad, strict=True):
        np.testing.assert_allclose(half, 0.5 * full, **close(dtype))
    k = f.P.shape[1]
    assert not results[0][1][:, k:].any() and not results[0][2][:, k:].any()


def test_half_gradient_is_the_same_with_any_thread_count():
    train, f, _, args = gradient_problem(np.float32, True, True, k=20)
    results = []
    for threads in THREADS:
        out = outputs(train, f, args[11:15])
        with numba_threads(threads):
            half_gradient(*args, *out)
        results.append(out)
    for a, b in zip(results[0], results[-1], strict=True):
        np.testing.assert_array_equal(a, b)


# --- the optimizer step on all rows --------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", [OPT_CONSTANT, OPT_ADAGRAD, OPT_MOMENTUM, OPT_ADAM])
def test_apply_rows_parallel_is_apply_rows_with_any_thread_count(dtype, opt):
    rng = np.random.default_rng(opt)
    n, k = 300, 7
    X = rng.normal(size=(n, k)).astype(dtype)
    G = rng.normal(size=(n, k)).astype(dtype)
    S = [np.abs(rng.normal(size=(n, k))).astype(dtype) for _ in range(2)]
    T = rng.integers(1, 50, n)
    rows = rng.permutation(n)
    hyper = tuple(dtype(x) for x in (0.01, 0.9, 0.999, 1e-8))
    serial = [x.copy() for x in (X, *S)]
    apply_rows(serial[0], rows, G, serial[1], serial[2], T, opt, *hyper)
    reference = [x.copy() for x in (X, *S)]
    apply_rows_reference(reference[0], rows, G, reference[1], reference[2], T, opt, *hyper)
    for a, b in zip(serial, reference, strict=True):
        np.testing.assert_allclose(a, b, **close(dtype))
    for threads in THREADS:
        parallel = [x.copy() for x in (X, *S)]
        with numba_threads(threads):
            apply_rows_parallel(parallel[0], rows, G, parallel[1], parallel[2], T, opt, *hyper)
        for a, b in zip(parallel, serial, strict=True):
            np.testing.assert_array_equal(a, b)


def test_apply_rows_gives_nan_rather_than_raising_on_a_zero_denominator():
    # (only with eps = 0 and a zero gradient: the trainer then reports the NaN as divergence)
    X, S1 = np.zeros((1, 2)), np.zeros((1, 2))
    apply_rows(
        X, np.array([0]), np.zeros((1, 2)), S1, S1, np.array([1]), OPT_ADAGRAD, 0.1, 0.9, 0.9, 0.0
    )
    assert np.isnan(X).all()


# --- the solver ----------------------------------------------------------------------------


def fit(train, threads, epochs=3, line_search=False):
    rng = np.random.default_rng(0)
    f = Factors.initial(
        train.n_users,
        train.n_items,
        6,
        mu=float(np.mean(train.ratings)),
        use_bias=True,
        init_std=DEFAULT_INIT_STD,
        dtype=train.ratings.dtype.type,
        rng=rng,
    )
    solver = BGD(f, train, SolverParams(threads=threads, line_search=line_search), rng)
    for epoch in range(epochs):
        solver.run_epoch(epoch)
    return f, solver


def test_bgd_grid_has_at_most_parallel_blocks_a_side_each_block_ordered_by_user():
    train, _ = planted(n_users=400, n_items=300, density=0.6)  # 58k ratings: 7 a side
    grid = fit(train, 1, epochs=0)[1].grid
    assert 1 < grid.n_blocks <= PARALLEL_BLOCKS
    for lo, hi in zip(grid.block_ptr[:-1], grid.block_ptr[1:], strict=True):
        assert (np.diff(grid.users[lo:hi].astype(np.int64)) >= 0).all()


@pytest.mark.parametrize("line_search", [False, True])
def test_bgd_is_bit_identical_across_thread_counts(line_search):
    train, _ = planted(n_users=300, n_items=200, density=0.3)
    runs = [fit(train, threads, line_search=line_search)[0] for threads in THREADS]
    for name in ("P", "Q", "bu", "bi"):
        np.testing.assert_array_equal(getattr(runs[0], name), getattr(runs[-1], name))
