"""The fast mini-batch paths (issue 6): the row intrinsics they add, and the solver on all threads
giving the same bits as on one. Speed itself is measured in benchmarks/, never asserted here."""

import numpy as np
import pytest
from conftest import DTYPES_SLOW64, planted
from numba import njit

from mfrec.kernels.minibatch import PARALLEL_BATCH
from mfrec.kernels.simd import gather_axpy, row_axpy, row_scale
from mfrec.kernels.threads import available_threads
from mfrec.training.solvers import get_solver
from mfrec.training.state import DEFAULT_INIT_STD, Factors, SolverParams

# float64 cases run with the slow tests: they compile a second specialization of each kernel.
DTYPES = DTYPES_SLOW64
THREADS = sorted({1, min(2, available_threads())})


@njit
def axpy_terms(Y, y, X, cols, weights):
    for m in range(cols.shape[0]):
        row_axpy(Y, y, weights[m], X, cols[m])


@njit
def gather_terms(Y, y, X, cols, weights):
    gather_axpy(Y, y, X, cols, 0, weights, 0, cols.shape[0])


@njit
def scale_row(Y, y, a, X, x):
    row_scale(Y, y, a, X, x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [3, 16, 37, 64])
def test_row_axpy_and_row_scale_match_numpy(dtype, k):
    rng = np.random.default_rng(k)
    X = rng.normal(size=(6, k)).astype(dtype)
    Y = rng.normal(size=(4, k)).astype(dtype)
    expected = Y.copy()
    expected[2] = dtype(1.5) * X[4]
    scale_row(Y, 2, dtype(1.5), X, 4)
    np.testing.assert_array_equal(Y, expected)
    expected[1] += dtype(-0.25) * X[5]
    axpy_terms(Y, 1, X, np.array([5]), np.array([-0.25], dtype))
    np.testing.assert_allclose(Y, expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [5, 37, 100])
def test_row_axpy_term_by_term_has_the_bits_of_gather_axpy(dtype, k):
    # the one-thread batches sum with row_axpy, the parallel ones with gather_axpy
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, k)).astype(dtype)
    start = rng.normal(size=(2, k)).astype(dtype)
    cols = rng.integers(0, 9, 40)
    weights = rng.normal(size=40).astype(dtype)
    a, b = start.copy(), start.copy()
    axpy_terms(a, 1, X, cols, weights)
    gather_terms(b, 1, X, cols, weights)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], start[0])


def fit_minibatch(train, optimizer, batch_size, threads, epochs=2):
    rng = np.random.default_rng(0)
    f = Factors.initial(
        train.n_users,
        train.n_items,
        10,
        mu=float(np.mean(train.ratings)),
        use_bias=True,
        init_std=DEFAULT_INIT_STD,
        dtype=train.ratings.dtype.type,
        rng=rng,
    )
    lr = 0.003 if optimizer == "adam" else 1.0
    params = SolverParams(lr=lr, optimizer=optimizer, batch_size=batch_size, threads=threads)
    solver = get_solver("minibatch")(f, train, params, rng)
    for epoch in range(epochs):
        solver.run_epoch(epoch)
    return f, solver.opt


@pytest.mark.parametrize("optimizer", ["constant", "adam"])
@pytest.mark.parametrize("batch_size", [32, PARALLEL_BATCH, 5000])
def test_minibatch_solver_is_bit_identical_across_thread_counts(optimizer, batch_size):
    train = planted()[0]
    assert len(train) > 5000 > PARALLEL_BATCH
    runs = [fit_minibatch(train, optimizer, batch_size, threads) for threads in THREADS]
    (f1, opt1), (f2, opt2) = runs[0], runs[-1]
    for name in ("P", "Q", "bu", "bi"):
        np.testing.assert_array_equal(getattr(f1, name), getattr(f2, name), err_msg=name)
    for x, y in zip(opt1.state + opt1.steps, opt2.state + opt2.steps, strict=True):
        np.testing.assert_array_equal(x, y)
    start = fit_minibatch(train, optimizer, batch_size, 1, epochs=0)[0]
    assert not np.allclose(f1.P, start.P)
