"""The objective J, predictions and train RMSE on hand-computed cases; TrainSet grouping; the
fused evaluation kernels against their twins and the former formula."""

import numpy as np
import pytest
from conftest import DTYPES_SLOW64

from mfrec.kernels.layout import active_width
from mfrec.kernels.loss import (
    CHUNK,
    grid_squared_error_sum,
    grid_squared_error_sum_reference,
    squared_error_sum,
    squared_error_sum_reference,
    weighted_sq_norm,
    weighted_sq_norm_reference,
)
from mfrec.kernels.threads import numba_threads, resolve_threads
from mfrec.training import objective
from mfrec.training.blocks import build_grid
from mfrec.training.solvers.sgd import WorkingCopy
from mfrec.training.state import Factors, TrainSet


def tiny(use_bias: bool = True) -> tuple[Factors, TrainSet]:
    """2 users, 2 items, k=1, 3 ratings: (0,0)=4, (0,1)=2, (1,1)=5."""
    f = Factors(
        P=np.array([[1.0], [2.0]]),
        Q=np.array([[0.5], [-1.0]]),
        bu=np.array([0.25, -0.5]) if use_bias else np.zeros(2),
        bi=np.array([0.0, 1.0]) if use_bias else np.zeros(2),
        mu=3.0 if use_bias else 0.0,
        use_bias=use_bias,
    )
    train = TrainSet(
        users=np.array([0, 0, 1], dtype=np.int32),
        items=np.array([0, 1, 1], dtype=np.int32),
        ratings=np.array([4.0, 2.0, 5.0]),
        n_users=2,
        n_items=2,
    )
    return f, train


def test_predict_by_hand():
    f, train = tiny()
    # mu + bu + bi + p·q: 3+0.25+0+0.5, 3+0.25+1-1, 3-0.5+1-2
    np.testing.assert_allclose(
        objective.predict(f, train.users, train.items), [3.75, 3.25, 1.5], rtol=1e-12
    )


def test_predict_without_bias_ignores_mu_and_biases():
    f, train = tiny(use_bias=False)
    f.mu = 3.0
    f.bu[:] = 7.0
    np.testing.assert_allclose(objective.predict(f, train.users, train.items), [0.5, -1.0, -2.0])


def test_objective_by_hand_weights_regularisation_per_rating():
    f, train = tiny()
    reg, reg_bias = 0.1, 0.2
    sq_err = 0.25**2 + 1.25**2 + 3.5**2
    # user 0 has 2 ratings, user 1 one; item 0 one, item 1 two
    pen = reg * (2 * 1.0 + 1 * 4.0 + 1 * 0.25 + 2 * 1.0)
    pen_b = reg_bias * (2 * 0.0625 + 1 * 0.25 + 1 * 0.0 + 2 * 1.0)
    expected = (sq_err + pen + pen_b) / 3
    assert objective.objective(f, train, reg, reg_bias) == pytest.approx(expected, rel=1e-12)


def test_objective_without_bias_has_no_bias_penalty():
    f, train = tiny(use_bias=False)
    sq_err = (4 - 0.5) ** 2 + (2 + 1.0) ** 2 + (5 + 2.0) ** 2
    pen = 0.1 * (2 * 1.0 + 4.0 + 0.25 + 2 * 1.0)
    expected = (sq_err + pen) / 3
    assert objective.objective(f, train, 0.1, 100.0) == pytest.approx(expected, rel=1e-12)


def test_objective_and_gradient_returns_the_same_objective():
    f, train = tiny()
    value, _ = objective.objective_and_gradient(f, train, 0.1, 0.2)
    assert value == pytest.approx(objective.objective(f, train, 0.1, 0.2), rel=1e-12)


def test_rmse_by_hand():
    f, train = tiny()
    expected = np.sqrt((0.25**2 + 1.25**2 + 3.5**2) / 3)
    assert objective.rmse(f, train) == pytest.approx(expected, rel=1e-12)


def test_float32_factors_give_float32_predictions_and_float64_objective():
    f, train = tiny()
    f32 = Factors(*(a.astype(np.float32) for a in (f.P, f.Q, f.bu, f.bi)), f.mu, True)
    train32 = TrainSet(train.users, train.items, train.ratings.astype(np.float32), 2, 2)
    assert objective.predict(f32, train.users, train.items).dtype == np.float32
    assert objective.objective(f32, train32, 0.1, 0.2) == pytest.approx(
        objective.objective(f, train, 0.1, 0.2), rel=1e-6
    )
    _, grad = objective.objective_and_gradient(f32, train32, 0.1, 0.2)
    assert {g.dtype for g in grad} == {np.dtype(np.float32)}


@pytest.mark.parametrize(
    ("func", "message"),
    [
        (lambda f, t: objective.objective(f, t, 0.1, 0.1), "objective: no ratings"),
        (lambda f, t: objective.objective_and_gradient(f, t, 0.1, 0.1), "objective: no ratings"),
        (objective.rmse, "rmse: no ratings"),
    ],
)
def test_empty_training_set_raises(func, message):
    f, _ = tiny()
    empty = TrainSet(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0), 2, 2)
    with pytest.raises(ValueError, match=f"^{message}$"):
        func(f, empty)


def test_trainset_groups_by_user_and_item_and_caches():
    train = TrainSet(
        users=np.array([2, 0, 2, 1, 0], dtype=np.int32),
        items=np.array([1, 0, 0, 1, 2], dtype=np.int32),
        ratings=np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
        n_users=4,
        n_items=3,
    )
    by_user = train.by_user()
    np.testing.assert_array_equal(by_user.indptr, [0, 2, 3, 5, 5])  # user 3 has none
    np.testing.assert_array_equal(by_user.cols, [0, 2, 1, 1, 0])
    np.testing.assert_array_equal(by_user.vals, [2.0, 5.0, 4.0, 1.0, 3.0])
    np.testing.assert_array_equal(by_user.vals, train.ratings[by_user.order])
    np.testing.assert_array_equal(by_user.counts, [2, 1, 2, 0])
    by_item = train.by_item()
    np.testing.assert_array_equal(by_item.indptr, [0, 2, 4, 5])
    np.testing.assert_array_equal(by_item.cols, [0, 2, 2, 1, 0])
    assert train.by_user() is by_user
    assert train.by_item() is by_item


def test_objective_and_rmse_match_the_separate_functions():
    rng = np.random.default_rng(3)
    train = TrainSet(
        rng.integers(0, 6, 40).astype(np.int32),
        rng.integers(0, 5, 40).astype(np.int32),
        rng.uniform(1, 5, 40),
        6,
        5,
    )
    f = Factors.initial(6, 5, 3, mu=3.0, use_bias=True, init_std=0.5, dtype=np.float64, rng=rng)
    J, r = objective.objective_and_rmse(f, train, 0.1, 0.05)
    assert J == pytest.approx(objective.objective(f, train, 0.1, 0.05), rel=1e-12)
    assert r == pytest.approx(objective.rmse(f, train), rel=1e-12)


# -- the fused evaluation (mfrec.kernels.loss) -------------------------------------------


def random_problem(dtype, use_bias=True, n=3 * CHUNK + 123, seed=0):
    """More ratings than three evaluation chunks, over 500 users and 300 items, k=9."""
    rng = np.random.default_rng(seed)
    train = TrainSet(
        rng.integers(0, 500, n).astype(np.int32),
        rng.integers(0, 300, n).astype(np.int32),
        rng.integers(1, 11, n).astype(dtype) / 2,
        500,
        300,
    )
    f = Factors.initial(500, 300, 9, mu=3.1, use_bias=use_bias, init_std=0.3, dtype=dtype, rng=rng)
    if use_bias:
        f.bu[:] = rng.normal(0, 0.2, 500)
        f.bi[:] = rng.normal(0, 0.2, 300)
    return f, train


def kernel_args(f, train):
    return (
        f.P,
        f.Q,
        f.bu,
        f.bi,
        f.P.dtype.type(f.mu),
        f.use_bias,
        train.users,
        train.items,
        train.ratings,
    )


def former_objective_and_rmse(f, train, reg, reg_bias):
    """J and RMSE as computed before the fused kernels: from the array of residuals."""
    e = objective.residuals(f, train)
    sq = float(np.einsum("n,n->", e, e, dtype=np.float64))
    n_u, n_i = (c.astype(np.float64) for c in train.counts())

    def weighted(counts, X):
        return float(counts @ np.einsum("nk,nk->n", X, X, dtype=np.float64))

    total = sq + reg * (weighted(n_u, f.P) + weighted(n_i, f.Q))
    if f.use_bias:
        total += reg_bias * (weighted(n_u, f.bu[:, None]) + weighted(n_i, f.bi[:, None]))
    return total / len(e), float(np.sqrt(sq / len(e)))


FUSED_RTOL = {np.float32: 1e-7, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_bias", [True, False])
def test_squared_error_kernel_matches_its_twin(dtype, use_bias):
    f, train = random_problem(dtype, use_bias)
    args = kernel_args(f, train)
    assert squared_error_sum(*args) == pytest.approx(
        squared_error_sum_reference(*args), rel=FUSED_RTOL[dtype]
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weighted_norm_kernel_matches_its_twin(dtype):
    f, train = random_problem(dtype)
    n_u, n_i = train.counts()
    for X, w in ((f.P, n_u), (f.Q, n_i), (f.bu.reshape(-1, 1), n_u)):
        assert weighted_sq_norm(X, w) == pytest.approx(
            weighted_sq_norm_reference(X, w), rel=FUSED_RTOL[dtype]
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_bias", [True, False])
def test_objective_and_rmse_equal_the_former_formula(dtype, use_bias):
    f, train = random_problem(dtype, use_bias)
    J, rmse = objective.objective_and_rmse(f, train, 0.1, 0.05)
    J_before, rmse_before = former_objective_and_rmse(f, train, 0.1, 0.05)
    assert J == pytest.approx(J_before, rel=FUSED_RTOL[dtype])
    assert rmse == pytest.approx(rmse_before, rel=FUSED_RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_evaluation_is_bit_identical_whatever_the_thread_count(dtype):
    f, train = random_problem(dtype)
    figures = []
    for threads in (1, resolve_threads(None)):
        with numba_threads(threads):
            figures.append(
                (objective.objective_and_rmse(f, train, 0.1, 0.05), objective.rmse(f, train))
            )
    assert figures[0] == figures[1]


def test_evaluation_kernels_on_empty_input():
    f, train = random_problem(np.float64, n=0)
    assert squared_error_sum(*kernel_args(f, train)) == 0.0
    assert weighted_sq_norm(np.zeros((0, 3)), np.zeros(0, np.int64)) == 0.0


@pytest.mark.parametrize("dtype", DTYPES_SLOW64)
@pytest.mark.parametrize("use_bias", [True, False])
def test_grid_squared_error_matches_its_twin_and_the_factors_figure(dtype, use_bias):
    """On the grid's working rows it is Σ e² of the same factors (the sgd solver's figure)."""
    f, train = random_problem(dtype, use_bias)
    grid = build_grid(
        train.users, train.items, train.ratings, 500, 300, 4, np.random.default_rng(1)
    )
    work = WorkingCopy(f, grid, active_width(9, np.dtype(dtype).itemsize))
    work.load(f)
    args = (grid.users, grid.items, grid.codes, grid.values, grid.block_ptr, grid.user_start)
    args += (grid.item_start, *work.arrays(), f.P.dtype.type(f.mu), use_bias)
    sq = grid_squared_error_sum(*args)
    assert sq == pytest.approx(grid_squared_error_sum_reference(*args), rel=FUSED_RTOL[dtype])
    assert sq == pytest.approx(squared_error_sum(*kernel_args(f, train)), rel=FUSED_RTOL[dtype])
    figures = []
    for threads in (1, resolve_threads(None)):
        with numba_threads(threads):
            figures.append(grid_squared_error_sum(*args))
    assert figures[0] == figures[1]
