"""Every numba kernel against its numpy twin (both dtypes), plus hand-computed updates."""

import numpy as np
import pytest
from conftest import DTYPES_SLOW64

from mfrec.kernels.als import als_half_step, als_half_step_reference
from mfrec.kernels.minibatch import (
    PARALLEL_BATCH,
    Optimizer,
    Params,
    minibatch_epoch,
    minibatch_epoch_reference,
)
from mfrec.kernels.predict import pair_dots, pair_dots_reference
from mfrec.kernels.sgd import sgd_epoch, sgd_epoch_reference
from mfrec.kernels.steps import (
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_CONSTANT,
    OPT_MOMENTUM,
    apply_rows,
    apply_rows_reference,
)
from mfrec.kernels.threads import available_threads, numba_threads
from mfrec.training.optimizers import OptimizerState
from mfrec.training.state import Factors

# float64 cases run with the slow tests: they compile a second specialization of each kernel.
DTYPES = DTYPES_SLOW64
OPTS = [OPT_CONSTANT, OPT_ADAGRAD, OPT_MOMENTUM, OPT_ADAM]


def close(dtype):
    """Tolerances for kernel-vs-twin agreement (summation order differs)."""
    return {"rtol": 2e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}


def problem(dtype, n_users=7, n_items=5, k=4, n=60, seed=0):
    """Random ratings (pairs may repeat; user 6 is never rated) and a starting point."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users - 1, n).astype(np.int32)
    items = rng.integers(0, n_items, n).astype(np.int32)
    ratings = rng.uniform(1, 5, n).astype(dtype)
    params = {
        "P": rng.normal(0, 0.3, (n_users, k)).astype(dtype),
        "Q": rng.normal(0, 0.3, (n_items, k)).astype(dtype),
        "bu": rng.normal(0, 0.3, n_users).astype(dtype),
        "bi": rng.normal(0, 0.3, n_items).astype(dtype),
    }
    return users, items, ratings, params, rng


def copies(params):
    return {k: v.copy() for k, v in params.items()}


def assert_params_close(a, b, dtype):
    for key in a:
        np.testing.assert_allclose(a[key], b[key], **close(dtype), err_msg=key)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_sgd_kernel_matches_reference(dtype, use_bias):
    users, items, ratings, params, rng = problem(dtype)
    order = rng.permutation(len(ratings))
    scalars = (dtype(3.0), dtype(0.05), dtype(0.1), dtype(0.2), use_bias)
    a, b = copies(params), copies(params)
    sse_a = sgd_epoch(users, items, ratings, order, a["P"], a["Q"], a["bu"], a["bi"], *scalars)
    sse_b = sgd_epoch_reference(
        users, items, ratings, order, b["P"], b["Q"], b["bu"], b["bi"], *scalars
    )
    assert_params_close(a, b, dtype)
    assert sse_a == pytest.approx(sse_b, rel=1e-5)
    assert not np.allclose(a["P"], params["P"])
    if not use_bias:
        np.testing.assert_array_equal(a["bu"], params["bu"])


def test_sgd_kernel_single_rating_by_hand():
    P, Q = np.array([[1.0, 2.0]]), np.array([[3.0, -1.0]])
    bu, bi = np.array([0.5]), np.array([-0.25])
    one = np.zeros(1, dtype=np.int32)
    # r̂ = 3 + 0.5 - 0.25 + (3 - 2) = 4.25, e = 0.75
    sse = sgd_epoch(
        one, one, np.array([5.0]), np.zeros(1, np.int64), P, Q, bu, bi, 3.0, 0.1, 0.2, 0.4, True
    )
    assert sse == pytest.approx(0.5625)
    assert bu[0] == pytest.approx(0.5 + 0.1 * (0.75 - 0.4 * 0.5))
    assert bi[0] == pytest.approx(-0.25 + 0.1 * (0.75 + 0.4 * 0.25))
    np.testing.assert_allclose(P[0], [1 + 0.1 * (0.75 * 3 - 0.2), 2 + 0.1 * (-0.75 - 0.4)])
    # q uses the p from before the update
    np.testing.assert_allclose(Q[0], [3 + 0.1 * (0.75 - 0.6), -1 + 0.1 * (1.5 + 0.2)])


def optimizer_state(params, opt):
    """(state, steps) for the mini-batch kernel, as the solvers create them."""
    name = {OPT_CONSTANT: "constant", OPT_ADAGRAD: "adagrad", OPT_MOMENTUM: "momentum"}
    f = Factors(params["P"], params["Q"], params["bu"], params["bi"], 3.0)
    opt_state = OptimizerState.create(name.get(opt, "adam"), f)
    assert opt_state.code == opt
    return opt_state.state, opt_state.steps


def minibatch_args(params, mu, use_bias, reg, reg_bias, opt, hyper, state, steps):
    """The kernel's `Params` and `Optimizer` over the arrays of `params` (a dict)."""
    fitted = Params(
        params["P"], params["Q"], params["bu"], params["bi"], mu, use_bias, reg, reg_bias
    )
    return fitted, Optimizer(opt, *hyper, *state, *steps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("opt", OPTS)
@pytest.mark.parametrize("batch_size", [1, 7, 60])
def test_minibatch_kernel_matches_reference(dtype, use_bias, opt, batch_size):
    users, items, ratings, params, rng = problem(dtype)
    hyper = (dtype(0.05), dtype(0.9), dtype(0.999), dtype(1e-8))
    a, b = copies(params), copies(params)
    state_a, steps_a = optimizer_state(params, opt)
    state_b, steps_b = optimizer_state(params, opt)
    for _ in range(2):  # the second epoch starts from non-zero optimizer state
        order = rng.permutation(len(ratings))
        common = (dtype(3.0), use_bias, dtype(0.05), dtype(0.1), opt, hyper)
        args_a = minibatch_args(a, *common, state_a, steps_a)
        args_b = minibatch_args(b, *common, state_b, steps_b)
        sse_a = minibatch_epoch(users, items, ratings, order, batch_size, *args_a)
        sse_b = minibatch_epoch_reference(users, items, ratings, order, batch_size, *args_b)
        assert sse_a == pytest.approx(sse_b, rel=1e-5)
    assert_params_close(a, b, dtype)
    for sa, sb in zip(state_a, state_b, strict=True):
        np.testing.assert_allclose(sa, sb, **close(dtype))
    for ta, tb in zip(steps_a, steps_b, strict=True):
        np.testing.assert_array_equal(ta, tb)
    # every rated user row took one step per batch it appeared in; user 6 none
    assert steps_a[0][6] == 0
    assert steps_a[0].sum() >= 2 * -(-len(ratings) // batch_size)


@pytest.mark.parametrize("dtype", DTYPES)
def test_minibatch_kernel_batch_one_is_sgd_kernel(dtype):
    users, items, ratings, params, rng = problem(dtype)
    order = rng.permutation(len(ratings))
    a, b = copies(params), copies(params)
    state, steps = optimizer_state(params, OPT_CONSTANT)
    hyper = (dtype(0.05), dtype(0.9), dtype(0.999), dtype(1e-8))
    args = minibatch_args(
        a, dtype(3.0), True, dtype(0.1), dtype(0.2), OPT_CONSTANT, hyper, state, steps
    )
    minibatch_epoch(users, items, ratings, order, 1, *args)
    sgd_epoch(
        users,
        items,
        ratings,
        order,
        *b.values(),
        dtype(3.0),
        dtype(0.05),
        dtype(0.1),
        dtype(0.2),
        True,
    )
    assert_params_close(a, b, dtype)


def run_minibatch(kernel, problem_, opt, batch_size, epochs=2, seed=1):
    """(params, state, steps, sses) after `epochs` epochs of `kernel` on `problem_`."""
    users, items, ratings, params, _ = problem_
    dtype = ratings.dtype.type
    rng = np.random.default_rng(seed)
    p = copies(params)
    state, steps = optimizer_state(p, opt)
    hyper = (dtype(0.05), dtype(0.9), dtype(0.999), dtype(1e-8))
    args = minibatch_args(p, dtype(3.0), True, dtype(0.05), dtype(0.1), opt, hyper, state, steps)
    sses = []
    for _ in range(epochs):
        order = rng.permutation(len(ratings))
        sses.append(kernel(users, items, ratings, order, batch_size, *args))
    return p, state, steps, sses


# k = 37: whole vectors and a tail in both dtypes. 3000 ratings: the one-thread path (batches
# under PARALLEL_BATCH) and the parallel one, sizes that do and do not divide n, and all of n.
# (Batch 1 is tested above: over 3000 float32 adam steps rounding drifts past the tolerance,
# with the old scalar kernel too.)
BIG = {"n_users": 150, "n_items": 120, "k": 37, "n": 3000}
BIG_BATCHES = [100, PARALLEL_BATCH - 1, PARALLEL_BATCH, 1500, 3000]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", [OPT_CONSTANT, OPT_ADAM])
@pytest.mark.parametrize("batch_size", BIG_BATCHES)
def test_minibatch_kernel_matches_reference_on_both_paths(dtype, opt, batch_size):
    data = problem(dtype, **BIG)
    a = run_minibatch(minibatch_epoch, data, opt, batch_size)
    b = run_minibatch(minibatch_epoch_reference, data, opt, batch_size)
    assert_params_close(a[0], b[0], dtype)
    for sa, sb in zip(a[1], b[1], strict=True):
        np.testing.assert_allclose(sa, sb, **close(dtype))
    for ta, tb in zip(a[2], b[2], strict=True):
        np.testing.assert_array_equal(ta, tb)
    np.testing.assert_allclose(a[3], b[3], rtol=1e-5)
    assert not np.allclose(a[0]["Q"], data[3]["Q"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [64, PARALLEL_BATCH, 3000])
def test_minibatch_kernel_is_the_same_with_any_thread_count(dtype, batch_size):
    data = problem(dtype, **BIG)
    runs = []
    for threads in sorted({1, min(2, available_threads())}):
        with numba_threads(threads):
            runs.append(run_minibatch(minibatch_epoch, data, OPT_ADAM, batch_size))
    first, last = runs[0], runs[-1]
    for key in first[0]:
        np.testing.assert_array_equal(first[0][key], last[0][key], err_msg=key)
    for x, y in zip(first[1] + first[2], last[1] + last[2], strict=True):
        np.testing.assert_array_equal(x, y)
    assert first[3] == last[3]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", OPTS)
def test_apply_rows_matches_reference(dtype, opt):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 3)).astype(dtype)
    rows = np.array([4, 0, 2])
    G = rng.normal(size=(3, 3)).astype(dtype)
    S1 = np.abs(rng.normal(size=(6, 3))).astype(dtype)
    S2 = np.abs(rng.normal(size=(6, 3))).astype(dtype)
    T = np.array([3, 1, 2, 1, 5, 1], dtype=np.int64)
    args = (opt, 0.1, 0.8, 0.99, 1e-8)
    a = [X.copy(), S1.copy(), S2.copy()]
    b = [X.copy(), S1.copy(), S2.copy()]
    apply_rows(a[0], rows, G, a[1], a[2], T, *args)
    apply_rows_reference(b[0], rows, G, b[1], b[2], T, *args)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, **close(dtype))
    np.testing.assert_array_equal(a[0][[1, 3, 5]], X[[1, 3, 5]])  # untouched rows
    assert not np.allclose(a[0][rows], X[rows])


def test_apply_rows_adam_first_step_is_lr_times_sign():
    X = np.zeros((1, 2))
    S1, S2 = np.zeros((1, 2)), np.zeros((1, 2))
    apply_rows(
        X,
        np.array([0]),
        np.array([[3.0, -0.5]]),
        S1,
        S2,
        np.array([1]),
        OPT_ADAM,
        0.01,
        0.9,
        0.999,
        0.0,
    )
    np.testing.assert_allclose(X, [[-0.01, 0.01]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_als_kernel_matches_reference(dtype, use_bias):
    users, items, ratings, params, _ = problem(dtype)
    order = np.argsort(users, kind="stable")
    indptr = np.zeros(8, np.int64)
    np.cumsum(np.bincount(users, minlength=7), out=indptr[1:])
    a, b = copies(params), copies(params)
    csr = (indptr, items[order], ratings[order])
    scalars = (dtype(3.0), dtype(0.05), dtype(0.1), use_bias)
    sse_a = als_half_step(*csr, a["P"], a["bu"], a["Q"], a["bi"], *scalars)
    sse_b = als_half_step_reference(*csr, b["P"], b["bu"], b["Q"], b["bi"], *scalars)
    assert sse_a == pytest.approx(sse_b, rel=1e-5)
    assert_params_close(a, b, dtype)
    np.testing.assert_array_equal(a["P"][6], params["P"][6])  # no ratings: left as it was
    np.testing.assert_array_equal(a["Q"], params["Q"])  # the fixed side
    if not use_bias:
        np.testing.assert_array_equal(a["bu"], params["bu"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pair_dots_matches_reference(dtype):
    _, _, _, params, rng = problem(dtype)
    users = rng.integers(0, 7, 50)
    items = rng.integers(0, 5, 50)
    a = np.empty(50, dtype)
    b = np.empty(50, dtype)
    pair_dots(params["P"], params["Q"], users, items, a)
    pair_dots_reference(params["P"], params["Q"], users, items, b)
    np.testing.assert_allclose(a, b, **close(dtype))
