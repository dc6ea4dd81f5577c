"""The fast SGD paths: vector row operations, the block grid, the blocked (threaded) kernel and
the solver around it. Speed is measured in benchmarks/bench_speed.py; here only correctness."""

import numpy as np
import pytest
from conftest import DTYPES_SLOW64, NOISE
from conftest import planted as planted_data
from numba import njit

import mfrec.training.solvers.sgd as sgd_module
from mfrec.kernels.blocked import (
    PREFETCH,
    copy_in,
    copy_in_reference,
    copy_out,
    copy_out_reference,
    schedule,
    schedule_reference,
    sgd_strata,
    sgd_strata_reference,
    shuffle_blocks,
    shuffle_blocks_reference,
    shuffle_words,
    shuffle_words_reference,
    visit_walk,
    visit_walk_reference,
)
from mfrec.kernels.layout import active_width, lanes, padded_width
from mfrec.kernels.simd import prefetch_row, row_dot, row_step, row_step_dot
from mfrec.kernels.threads import available_threads, numba_threads, resolve_threads
from mfrec.training import objective
from mfrec.training.blocks import Grid, build_grid, grid_size
from mfrec.training.solvers.sgd import SGD, WorkingCopy, aligned_zeros
from mfrec.training.state import DEFAULT_INIT_STD, Factors, SolverParams, TrainSet

# float64 cases run with the slow tests: they compile a second specialization of each kernel.
DTYPES = DTYPES_SLOW64


def close(dtype):
    return {"rtol": 2e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}


def planted(dtype=np.float32, seed=0, n_users=300, n_items=200, density=0.3):
    """The shared planted data, large enough by default for the blocked path."""
    return planted_data(dtype, seed, n_users=n_users, n_items=n_items, density=density)


def run(train, params, epochs, factors=3, seed=0, blocks=None, monkeypatch=None):
    """Train with the SGD solver; `blocks` forces the grid size."""
    if blocks is not None:
        monkeypatch.setattr(sgd_module, "grid_size", lambda n: blocks)
    rng = np.random.default_rng(seed)
    f = Factors.initial(
        train.n_users,
        train.n_items,
        factors,
        mu=float(np.mean(train.ratings)),
        use_bias=True,
        init_std=DEFAULT_INIT_STD,
        dtype=train.ratings.dtype.type,
        rng=rng,
    )
    solver = SGD(f, train, params, rng)
    for epoch in range(epochs):
        solver.run_epoch(epoch)
    return solver.factors, solver


# --- vector row operations -----------------------------------------------------------------


@njit
def _dot(X, x, Y, y):
    return row_dot(X, x, Y, y)


@njit
def _step(X, x, Y, y, a, g):
    row_step(X, x, Y, y, a, g)


@njit
def _step_dot(X, x, Y, y, a, g, x2, y2):
    return row_step_dot(X, x, Y, y, a, g, x2, y2)


@njit
def _prefetch(X, x):
    prefetch_row(X, x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("k", "padded"), [(1, True), (16, True), (17, True), (100, True), (100, False), (37, False)]
)
def test_row_operations_match_numpy(dtype, k, padded):
    """Padded rows are all whole vectors; other lengths end element by element."""
    width = padded_width(k, np.dtype(dtype).itemsize) if padded else k
    assert width % lanes(np.dtype(dtype).itemsize) == 0 or not padded
    rng = np.random.default_rng(k)
    X = rng.normal(size=(5, width)).astype(dtype)
    Y = rng.normal(size=(4, width)).astype(dtype)
    X0, Y0 = X.copy(), Y.copy()
    a, g = dtype(0.9), dtype(-0.3)
    assert _dot(X, 2, Y, np.int32(3)) == pytest.approx(X0[2] @ Y0[3], rel=1e-5)
    _step(X, 1, Y, 2, a, g)
    np.testing.assert_allclose(X[1], a * X0[1] + g * Y0[2], **close(dtype))
    np.testing.assert_allclose(Y[2], a * Y0[2] + g * X0[1], **close(dtype))
    X1, Y1 = X.copy(), Y.copy()
    dot = _step_dot(X, 0, Y, 0, a, g, 3, np.int64(1))
    assert dot == pytest.approx(X1[3] @ Y1[1], rel=1e-5)
    np.testing.assert_allclose(X[0], a * X1[0] + g * Y1[0], **close(dtype))
    np.testing.assert_allclose(Y[0], a * Y1[0] + g * X1[0], **close(dtype))
    # only the stepped rows change; prefetching changes nothing
    _prefetch(X, 4)
    np.testing.assert_array_equal(X[2:], X1[2:])
    np.testing.assert_array_equal(Y[1:], Y1[1:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [4, 7, 12, 24, 104, 108, 110])
def test_row_operations_on_the_first_columns_of_padded_rows(dtype, width):
    """Rows of any length are covered by whole vectors, then half and quarter vectors, then
    single elements; on a view X[:, :width] of padded rows (the sgd working copy) the columns
    past the view are never touched."""
    padded = padded_width(width, np.dtype(dtype).itemsize)
    rng = np.random.default_rng(width)
    Xf = rng.normal(size=(5, padded)).astype(dtype)
    Yf = rng.normal(size=(4, padded)).astype(dtype)
    X, Y = Xf[:, :width], Yf[:, :width]
    X0, Y0, Xf0, Yf0 = X.copy(), Y.copy(), Xf.copy(), Yf.copy()
    a, g = dtype(0.9), dtype(-0.3)
    assert _dot(X, 2, Y, 3) == pytest.approx(X0[2] @ Y0[3], rel=1e-5)
    dot = _step_dot(X, 0, Y, 0, a, g, 3, 1)
    assert dot == pytest.approx(X0[3] @ Y0[1], rel=1e-5)
    np.testing.assert_allclose(X[0], a * X0[0] + g * Y0[0], **close(dtype))
    np.testing.assert_allclose(Y[0], a * Y0[0] + g * X0[0], **close(dtype))
    _step(X, 4, Y, 2, a, g)
    np.testing.assert_allclose(X[4], a * X0[4] + g * Y0[2], **close(dtype))
    np.testing.assert_array_equal(Xf[:, width:], Xf0[:, width:])
    np.testing.assert_array_equal(Yf[:, width:], Yf0[:, width:])


def test_active_width_rounds_up_to_half_vectors():
    assert active_width(100, 4) == 104 and padded_width(100, 4) == 112
    assert active_width(100, 8) == 100 and padded_width(100, 8) == 104
    assert active_width(1, 4) == 8 and active_width(16, 4) == 16 and active_width(17, 4) == 24


def test_aligned_zeros_starts_on_a_vector_boundary():
    for rows in (1, 7, 943):
        a = aligned_zeros((rows, 112), np.dtype(np.float32))
        assert a.ctypes.data % 64 == 0 and a.flags.c_contiguous
        assert a.shape == (rows, 112) and not a.any()


# --- the grid ------------------------------------------------------------------------------


def test_grid_size():
    assert grid_size(0) == 1
    assert grid_size(3_000) == 1  # too small to cut: the plain kernel
    assert grid_size(20_000) == 4
    assert grid_size(80_000) == 8  # MovieLens 100k
    assert grid_size(2_000_000) == 8
    assert grid_size(10_000_000) == 17
    assert grid_size(100_000_000) == 55


def check_grid(grid: Grid, train: TrainSet):
    b = grid.n_blocks
    # rows are permutations; each group is a contiguous run of working rows
    np.testing.assert_array_equal(np.sort(grid.user_rows), np.arange(train.n_users))
    np.testing.assert_array_equal(np.sort(grid.item_rows), np.arange(train.n_items))
    assert grid.user_start[0] == 0 and grid.user_start[-1] == train.n_users
    assert grid.block_ptr[-1] == len(train) and grid.block_sizes().shape == (b, b)
    users, items, ratings = grid.expanded()
    for blk in range(b * b):
        lo, hi = grid.block_ptr[blk], grid.block_ptr[blk + 1]
        a, c = divmod(blk, b)
        assert np.all(users[lo:hi] < grid.user_start[a + 1])
        assert np.all(items[lo:hi] < grid.item_start[c + 1])
    # the same ratings, as (user, item, rating) triples
    back = np.column_stack([grid.user_rows[users], grid.item_rows[items], ratings])
    given = np.column_stack([train.users, train.items, train.ratings])
    np.testing.assert_array_equal(back[np.lexsort(back.T[::-1])], given[np.lexsort(given.T[::-1])])


def test_grid_is_stored_compactly():
    train, _ = planted()
    grid = build_grid(
        train.users,
        train.items,
        train.ratings,
        train.n_users,
        train.n_items,
        3,
        np.random.default_rng(0),
    )
    assert (grid.users.dtype, grid.items.dtype) == (np.uint8, np.uint8)  # groups of < 256 rows
    assert grid.codes.dtype == np.uint16  # ~14k distinct real-valued ratings
    np.testing.assert_array_equal(grid.values, np.unique(train.ratings))
    stars = TrainSet(train.users, train.items, np.round(train.ratings), 300, 200)
    grid = build_grid(
        stars.users, stars.items, stars.ratings, 300, 200, 1, np.random.default_rng(0)
    )
    assert grid.users.dtype == np.uint16 and grid.codes.dtype == np.uint8


def test_grid_holds_every_rating_once_in_its_block():
    train, _ = planted()
    grid = build_grid(
        train.users,
        train.items,
        train.ratings,
        train.n_users,
        train.n_items,
        5,
        np.random.default_rng(3),
    )
    check_grid(grid, train)
    # groups carry about equal numbers of ratings
    per_user_group = grid.block_sizes().sum(axis=1)
    assert per_user_group.max() < 1.2 * len(train) / 5


def test_grid_with_unrated_rows_and_a_long_tail():
    rng = np.random.default_rng(0)
    n = 5000
    # item 0 takes 40% of the ratings; users 50..59 and items 90..99 are never rated
    items = np.where(rng.random(n) < 0.4, 0, rng.integers(1, 90, n)).astype(np.int32)
    train = TrainSet(
        rng.integers(0, 50, n).astype(np.int32),
        items,
        rng.uniform(1, 5, n).astype(np.float32),
        60,
        100,
    )
    grid = build_grid(train.users, train.items, train.ratings, 60, 100, 4, rng)
    check_grid(grid, train)


def test_grid_from_given_counts_is_the_grid_that_counts_them():
    train, _ = planted()
    args = (train.users, train.items, train.ratings, train.n_users, train.n_items, 4)
    counted = build_grid(*args, np.random.default_rng(3))
    given = build_grid(*args, np.random.default_rng(3), train.counts())
    for name in Grid.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(counted, name), getattr(given, name))


@pytest.mark.parametrize("b", [1, 2, 6, 55])
def test_schedule_is_a_latin_square_drawn_afresh_as_its_twin_draws_it(b):
    seed = np.uint64(2**64 - 7)
    s = schedule(b, seed)
    np.testing.assert_array_equal(s, schedule_reference(b, seed))
    assert sorted(s.ravel().tolist()) == list(range(b * b))
    for row in s:
        assert len(set(row // b)) == b and len(set(row % b)) == b
    if b > 2:
        assert not np.array_equal(s, schedule(b, np.uint64(8)))
        # pairings and sub-epoch order both change from seed to seed
        firsts = {tuple(schedule(b, np.uint64(n))[0]) for n in range(20)}
        assert len(firsts) > 10


# --- the blocked kernel and its twin -------------------------------------------------------


def blocked_problem(dtype, use_bias, seed=0):
    train, _ = planted(dtype, seed=seed, n_users=40, n_items=30, density=0.5)
    rng = np.random.default_rng(seed)
    grid = build_grid(train.users, train.items, train.ratings, 40, 30, 3, rng)
    k = 5
    width = padded_width(k, np.dtype(dtype).itemsize)
    P = np.zeros((40, width), dtype)
    Q = np.zeros((30, width), dtype)
    P[:, :k] = rng.normal(0, 0.3, (40, k))
    Q[:, :k] = rng.normal(0, 0.3, (30, k))
    bu = rng.normal(0, 0.3, 40).astype(dtype) if use_bias else np.zeros(40, dtype)
    bi = rng.normal(0, 0.3, 30).astype(dtype) if use_bias else np.zeros(30, dtype)
    strata = schedule(3, np.uint64(rng.integers(2**63)))
    seed = np.uint64(0xFEED_F00D_1234_5678)
    scalars = (dtype(3.0), dtype(0.05), dtype(0.1), dtype(0.2), use_bias)
    return grid, (P, Q, bu, bi), strata, seed, scalars


@pytest.mark.parametrize("dtype", DTYPES_SLOW64)
@pytest.mark.parametrize("use_bias", [True, False])
def test_blocked_kernel_matches_reference(dtype, use_bias):
    grid, params, strata, seed, scalars = blocked_problem(dtype, use_bias)
    runs = []
    for kernel, prefetch in ((sgd_strata, 0), (sgd_strata, 4), (sgd_strata_reference, 0)):
        data = [grid.users.copy(), grid.items.copy(), grid.codes.copy()]
        layout = (grid.values, grid.block_ptr, grid.user_start, grid.item_start)
        factors = [x.copy() for x in params]
        sse = kernel(*data, *layout, strata, seed, *factors, *scalars, 2, prefetch)
        runs.append((data, factors, sse))
    # Prefetching changes nothing, bit for bit.
    for x, y in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_array_equal(x, y)
    runs = runs[1:]
    (data_a, f_a, sse_a), (data_b, f_b, sse_b) = runs
    for x, y in zip(data_a, data_b, strict=True):  # the kernel only reads the ratings
        np.testing.assert_array_equal(x, y)
    for x, y in zip(data_a, (grid.users, grid.items, grid.codes), strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(f_a, f_b, strict=True):
        np.testing.assert_allclose(x, y, **close(dtype))
    assert sse_a == pytest.approx(sse_b, rel=1e-5)
    assert not np.allclose(f_a[0], params[0])
    assert not f_a[0][:, 5:].any() and not f_a[1][:, 5:].any()  # padding stays zero
    if not use_bias:
        np.testing.assert_array_equal(f_a[2], params[2])


@pytest.mark.parametrize(
    ("threads", "workers"),
    # more workers than threads: workers then run one after the other, and must not wait on
    # each other forever
    [(1, 1), (2, 2), (1, 3), (2, 5)],
)
def test_blocked_kernel_is_the_same_with_any_thread_count(threads, workers):
    grid, params, strata, seed, scalars = blocked_problem(np.float32, True)
    results = []
    for t, w in ((1, 1), (min(threads, available_threads()), workers)):
        data = [grid.users.copy(), grid.items.copy(), grid.codes.copy()]
        layout = (grid.values, grid.block_ptr, grid.user_start, grid.item_start)
        factors = [x.copy() for x in params]
        with numba_threads(t):
            sgd_strata(*data, *layout, strata, seed, *factors, *scalars, w, PREFETCH)
        results.append(factors)
    for x, y in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(x, y)


def test_copy_in_and_out_match_reference():
    rng = np.random.default_rng(0)
    P, Q = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    bu, bi = rng.normal(size=6), rng.normal(size=4)
    rows_u, rows_i = rng.permutation(6), rng.permutation(4)
    work = [np.zeros((6, 8)), np.zeros((4, 8)), np.zeros(6), np.zeros(4)]
    twin = [x.copy() for x in work]
    copy_in(P, Q, bu, bi, rows_u, rows_i, *work)
    copy_in_reference(P, Q, bu, bi, rows_u, rows_i, *twin)
    for x, y in zip(work, twin, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(work[0][:, :3], P[rows_u])
    assert not work[0][:, 3:].any()
    back = [np.zeros_like(x) for x in (P, Q, bu, bi)]
    back_twin = [x.copy() for x in back]
    copy_out(*work, rows_u, rows_i, *back)
    copy_out_reference(*work, rows_u, rows_i, *back_twin)
    for x, y, original in zip(back, back_twin, (P, Q, bu, bi), strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, original)


# --- the solver ----------------------------------------------------------------------------


def test_small_data_run_the_plain_kernel_and_larger_data_the_blocked_one():
    small, _ = planted(n_users=40, n_items=30, density=0.5)
    _, solver = run(small, SolverParams(), 1)
    assert solver.grid is None
    large, _ = planted()
    _, solver = run(large, SolverParams(), 1)
    assert solver.grid is not None and solver.grid.n_blocks == grid_size(len(large)) == 3


def test_working_copy_round_trips_the_factors():
    train, _ = planted()
    f, solver = run(train, SolverParams(), 0)
    w = WorkingCopy(f, solver.grid)
    assert w.P.shape[1] == padded_width(3, 4) and w.P.ctypes.data % 64 == 0
    before = f.copy()
    w.load(f)
    np.testing.assert_array_equal(w.P[:, :3], f.P[solver.grid.user_rows])
    for name in ("P", "Q", "bu", "bi"):
        getattr(f, name)[...] = 0
    w.store(f)
    for name in ("P", "Q", "bu", "bi"):
        np.testing.assert_array_equal(getattr(f, name), getattr(before, name))


@pytest.mark.parametrize("blocks", [2, 4])
def test_blocked_sgd_recovers_planted_data_as_well_as_the_plain_kernel(blocks, monkeypatch):
    train, test = planted()
    params = SolverParams(reg=0.01, reg_bias=0.01)
    plain, _ = run(train, params, 40, blocks=1, monkeypatch=monkeypatch)
    blocked, solver = run(train, params, 40, blocks=blocks, monkeypatch=monkeypatch)
    assert solver.grid.n_blocks == blocks
    plain_rmse, blocked_rmse = objective.rmse(plain, test), objective.rmse(blocked, test)
    assert blocked_rmse < 1.3 * NOISE
    assert abs(blocked_rmse - plain_rmse) < 0.05 * plain_rmse


def test_threaded_sgd_is_bit_identical_run_to_run_and_across_thread_counts():
    train, _ = planted()
    runs = [run(train, SolverParams(threads=t), 3, seed=4)[0] for t in (1, 2, 2, None)]
    for other in runs[1:]:
        for name in ("P", "Q", "bu", "bi"):
            np.testing.assert_array_equal(getattr(runs[0], name), getattr(other, name))
    different = run(train, SolverParams(threads=2), 3, seed=5)[0]
    assert not np.array_equal(runs[0].P, different.P)


def test_decay_schedule_reaches_the_blocked_kernel():
    train, _ = planted()
    slow = run(train, SolverParams(optimizer="decay", decay=100.0), 2)[0]
    fast = run(train, SolverParams(optimizer="decay", decay=0.0), 2)[0]
    assert not np.allclose(slow.P, fast.P)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 64, 97, 1000, 1250, 65_536])
def test_visit_walk_visits_every_rating_once_as_its_twin_does(n):
    seed = np.uint64(2**64 - 5)
    walks = set()
    for blk in range(6):
        start, step = visit_walk(seed, blk, n)
        walk = (int(start) + np.arange(n) * int(step)) % max(n, 1)
        np.testing.assert_array_equal(walk, visit_walk_reference(seed, blk, n))
        np.testing.assert_array_equal(np.sort(walk), np.arange(n))
        walks.add(tuple(walk[:3]))
    if n >= 64:
        assert len(walks) == 6  # every block walks its own way
        assert visit_walk(np.uint64(1), 0, n) != visit_walk(np.uint64(2), 0, n)


def test_walks_start_and_step_look_uniform():
    """Over many blocks, starts fill 0..n-1 evenly and every step coprime with n turns up."""
    n = 12
    draws = np.array([visit_walk(np.uint64(3), blk, n) for blk in range(6000)], np.int64)
    assert np.abs(np.bincount(draws[:, 0], minlength=n) - 500).max() < 100
    assert set(draws[:, 1]) == {1, 5, 7, 11}


@pytest.mark.parametrize("threads", [1, 2])
def test_shuffle_blocks_matches_its_twin_and_keeps_each_block(threads):
    train, _ = planted()
    rng = np.random.default_rng(0)
    grid = build_grid(train.users, train.items, train.ratings, 300, 200, 3, rng)
    arrays = [x.copy() for x in (grid.users, grid.items, grid.codes)]
    twin = [x.copy() for x in arrays]
    seed = np.uint64(99)
    with numba_threads(min(threads, available_threads())):
        shuffle_blocks(*arrays, grid.block_ptr, seed)
    shuffle_blocks_reference(*twin, grid.block_ptr, seed)
    for x, y in zip(arrays, twin, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(arrays[0], grid.users)
    for lo, hi in zip(grid.block_ptr[:-1], grid.block_ptr[1:], strict=True):
        before = sorted(zip(*(x[lo:hi] for x in (grid.users, grid.items, grid.codes)), strict=True))
        assert sorted(zip(*(x[lo:hi] for x in arrays), strict=True)) == before


def test_shuffle_words_match_reference_and_look_uniform():
    seed = np.uint64(2**64 - 3)  # sums past 2^64 must wrap alike in both
    for blk, n in ((0, 1), (7, 1000), (123, 50_000)):
        words = shuffle_words(seed, blk, n)
        np.testing.assert_array_equal(words, shuffle_words_reference(seed, blk, n))
    assert words.max() < 2**32
    # Uniform on [0, 2^32): each of 16 bins holds about n/16 (binomial sd ~ 54 here).
    counts = np.bincount((words >> np.uint64(28)).astype(np.int64), minlength=16)
    assert np.abs(counts - len(words) / 16).max() < 300
    # Different blocks and different seeds give unrelated streams.
    assert not np.array_equal(shuffle_words(seed, 1, 100), shuffle_words(seed, 2, 100))
    assert not np.array_equal(shuffle_words(seed, 1, 100), shuffle_words(np.uint64(5), 1, 100))


def test_factors_are_copied_in_once_and_back_when_read(monkeypatch):
    """The working copy is loaded before the first epoch only (the solver owns the factors while
    it trains) and copied back only when the factors are read through the solver; the per-epoch
    figures come from the working copy and equal those of the copied-back factors."""
    train, _ = planted()
    calls = []
    for name in ("copy_in", "copy_out"):
        original = getattr(sgd_module, name)

        def counting(*args, name=name, original=original):
            calls.append(name)
            return original(*args)

        monkeypatch.setattr(sgd_module, name, counting)
    rng = np.random.default_rng(0)
    f = Factors.initial(
        train.n_users,
        train.n_items,
        3,
        mu=3.0,
        use_bias=True,
        init_std=0.1,
        dtype=np.float32,
        rng=rng,
    )
    solver = SGD(f, train, SolverParams(), rng)
    for epoch in range(3):
        solver.run_epoch(epoch)
        before = f.P.copy()
        J, train_rmse = solver.objective_and_rmse(0.1, 0.05)
        np.testing.assert_array_equal(f.P, before)  # not copied back to evaluate
    assert calls == ["copy_in"]
    assert solver.factors is f and calls == ["copy_in", "copy_out"]
    assert not np.array_equal(f.P, before)  # now it is
    assert J == pytest.approx(objective.objective(f, train, 0.1, 0.05), rel=1e-6)
    assert train_rmse == pytest.approx(objective.rmse(f, train), rel=1e-6)
    assert solver.objective_and_rmse(0.1, 0.05) == objective.objective_and_rmse(f, train, 0.1, 0.05)
    solver.sync()
    solver.factors  # noqa: B018 (nothing newer to copy)
    assert calls == ["copy_in", "copy_out"]


# --- threads -------------------------------------------------------------------------------


def test_resolve_threads():
    most = available_threads()
    assert resolve_threads(None) == most
    assert resolve_threads(1) == 1
    assert resolve_threads(most + 5) == most


def test_numba_threads_restores_the_setting():
    import numba

    before = numba.get_num_threads()
    with numba_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


def test_threads_parameter_is_checked():
    from mfrec.errors import ParameterError
    from mfrec.model.estimator import MatrixFactorization
    from mfrec.ratings.ratingdata import RatingData

    data = RatingData.from_ids([1, 2], [1, 2], [3.0, 4.0])
    with pytest.raises(ParameterError, match=r"^threads=0: must be >= 1$"):
        MatrixFactorization(threads=0).fit(data)
    with pytest.raises(ParameterError, match=r"^threads=1.5: must be an integer >= 1$"):
        MatrixFactorization(threads=1.5).fit(data)


def test_cli_threads_option(tmp_path):
    from click.testing import CliRunner

    from mfrec.cli.app import cli

    ratings = tmp_path / "r.csv"
    ratings.write_text("user,item,rating\n1,1,3\n2,2,4\n1,2,5\n")
    result = CliRunner().invoke(
        cli, ["train", str(ratings), "-o", str(tmp_path / "m.npz"), "--threads", "0", "-q"]
    )
    assert result.exit_code == 2
    assert result.output.endswith("Error: --threads 0: must be >= 1\n")
    ok = CliRunner().invoke(
        cli,
        ["train", str(ratings), "-o", str(tmp_path / "m.npz"), "--threads", "1", "-q"],
        catch_exceptions=False,
    )
    assert ok.exit_code == 0, ok.output


def test_factors_refuse_rows_that_are_not_contiguous():
    P = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError, match="Factors: P must be a C-contiguous 2-D array"):
        Factors(P[:, ::2], P, np.zeros(4), np.zeros(4), 0.0)
    with pytest.raises(ValueError, match="Factors: Q must be a C-contiguous 2-D array"):
        Factors(P, np.asfortranarray(P), np.zeros(4), np.zeros(4), 0.0)
