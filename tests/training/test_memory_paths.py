"""Memory on the training path: what must not build arrays as long as the ratings (or longer).

At 100M ratings every full-length array is 400-800 MB, so these tests count the bytes numpy
allocates (tracemalloc sees every numpy array) on a smaller problem, and check that the
counting-sort kernels give what the sorts they replace gave.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mfrec.training.state as solver_base
from mfrec.kernels.group import (
    group_by_row,
    group_by_row_reference,
    has_repeats,
    has_repeats_reference,
    row_counts,
)
from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.checks import has_duplicates
from mfrec.ratings.idmap import IdMap
from mfrec.ratings.ratingdata import RatingData
from mfrec.training import objective
from mfrec.training.blocks import build_grid
from mfrec.training.solvers.base import Solver
from mfrec.training.state import Factors, TrainSet
from mfrec.training.trainer import train

N = 200_000
N_USERS, N_ITEMS = 3_000, 500


def ratings(n=N, seed=0):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, N_USERS, n).astype(np.int32)
    items = rng.integers(0, N_ITEMS, n).astype(np.int32)
    return users, items, rng.integers(1, 6, n).astype(np.float32)


def traced_peak(fn, *args):
    """Peak bytes allocated (numpy included) while `fn(*args)` runs, above what was held."""
    fn(*args)  # compile or load the kernels first
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fn(*args)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


# -- evaluation ------------------------------------------------------------------------------


def test_evaluation_allocates_no_array_as_long_as_the_ratings():
    users, items, r = ratings()
    t = TrainSet(users, items, r, N_USERS, N_ITEMS)
    f = Factors.initial(
        N_USERS, N_ITEMS, 8, mu=3.0, use_bias=True, init_std=0.1, dtype=np.float32,
        rng=np.random.default_rng(1),
    )  # fmt: skip
    t.counts()
    # Before: the prediction, two bias gathers, their sum and the residuals, 4 bytes each.
    assert traced_peak(objective.objective_and_rmse, f, t, 0.1, 0.05) < N
    assert traced_peak(objective.rmse, f, t) < N


# -- grouping by row -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 4)), max_size=40),
    st.integers(0, 3),
)
def test_group_by_row_matches_a_stable_argsort(pairs, extra_rows):
    rows = np.array([p[0] for p in pairs], dtype=np.int32)
    cols = np.array([p[1] for p in pairs], dtype=np.int32)
    n_rows = 7 + extra_rows  # some rows without any entry
    indptr, grouped = group_by_row(rows, cols, n_rows)
    ref_indptr, ref_grouped = group_by_row_reference(rows, cols, n_rows)
    np.testing.assert_array_equal(indptr, ref_indptr)
    np.testing.assert_array_equal(grouped, ref_grouped)
    assert indptr.dtype == np.int64 and grouped.dtype == np.int32
    assert has_repeats(indptr, grouped, 5) == has_repeats_reference(indptr, grouped, 5)
    assert has_repeats(indptr, grouped, 5) == (len(set(pairs)) < len(pairs))


def test_group_by_row_allocates_only_its_output():
    users, items, _ = ratings()
    output_and_fill_pointers = 4 * N + 2 * 8 * (N_USERS + 1)
    # Before: an int64 argsort order (8 bytes a rating), then the grouped copies.
    assert traced_peak(group_by_row, users, items, N_USERS) < output_and_fill_pointers + 4096


def test_row_counts_match_bincount_without_copying_the_rows():
    users, _, _ = ratings()
    np.testing.assert_array_equal(
        row_counts(users, N_USERS + 7), np.bincount(users, minlength=N_USERS + 7)
    )
    # np.bincount first copies int32 rows to int64 (8 bytes a rating).
    assert traced_peak(row_counts, users, N_USERS) < 8 * N_USERS + 4096


def test_trainset_counts_and_the_sgd_grid_count_without_copying_the_ratings():
    users, items, values = ratings()

    def counts():
        return TrainSet(users, items, values, N_USERS, N_ITEMS).counts()

    assert traced_peak(counts) < 8 * (N_USERS + N_ITEMS) + 8192
    rng = np.random.default_rng(0)
    grid_bytes = traced_peak(build_grid, users, items, values, N_USERS, N_ITEMS, 4, rng)
    # The compact copy (uint16 + uint16 + uint8 a rating) and O(rows) besides.
    assert grid_bytes < 5 * N + 64 * (N_USERS + N_ITEMS) + 65536


def test_starting_factors_are_drawn_in_chunks_with_the_same_numbers(monkeypatch):
    monkeypatch.setattr(solver_base, "INIT_CHUNK_ROWS", 7)
    start = Factors.initial(
        50,
        30,
        4,
        mu=3.0,
        use_bias=True,
        init_std=0.1,
        dtype=np.float32,
        rng=np.random.default_rng(1),
    )
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(start.P, rng.normal(0, 0.1, (50, 4)).astype(np.float32))
    np.testing.assert_array_equal(start.Q, rng.normal(0, 0.1, (30, 4)).astype(np.float32))


def test_starting_factors_need_no_float64_copy_of_p():
    def draw():
        return Factors.initial(
            200_000,
            10,
            16,
            mu=3.0,
            use_bias=True,
            init_std=0.1,
            dtype=np.float32,
            rng=np.random.default_rng(1),
        )

    p_bytes = 200_000 * 16 * 4
    # Before: a float64 P (twice p_bytes) and then its float32 copy.
    assert (
        traced_peak(draw) < p_bytes + 8 * 16 * solver_base.INIT_CHUNK_ROWS + 2 * 200_000 * 4 + 65536
    )


def test_duplicate_check_needs_one_int32_per_rating():
    users, items, _ = ratings()
    # Before: a sorted int64 (user, item) key per rating.
    assert traced_peak(has_duplicates, users, items, N_USERS, N_ITEMS) < 4 * N + 64 * N_USERS


# -- compacting ------------------------------------------------------------------------------


def test_compact_copies_nothing_when_every_user_and_item_is_rated():
    users, items, r = ratings()
    data = RatingData(
        users, items, r, IdMap(np.arange(N_USERS).astype(str)),
        IdMap(np.arange(N_ITEMS).astype(str)), (1.0, 5.0),
    )  # fmt: skip
    assert data.compact() is data
    # Before: np.unique sorted a copy of each index array (4 bytes a rating).
    assert traced_peak(data.compact) < N


def test_compact_renumbers_as_before():
    rng = np.random.default_rng(4)
    users = rng.choice([0, 2, 3, 7], 50).astype(np.int32)
    items = rng.choice([1, 4, 5], 50).astype(np.int32)
    data = RatingData(
        users, items, np.ones(50), IdMap([f"u{k}" for k in range(9)]),
        IdMap([f"i{k}" for k in range(6)]), (1.0, 1.0),
    )  # fmt: skip
    small = data.compact()
    used_u, used_i = np.unique(users), np.unique(items)
    np.testing.assert_array_equal(small.users, np.searchsorted(used_u, users))
    np.testing.assert_array_equal(small.items, np.searchsorted(used_i, items))
    assert small.user_map == data.user_map.take(used_u)
    assert small.item_map == data.item_map.take(used_i)
    assert small.users.dtype == np.int32 and small.items.dtype == np.int32


# -- the estimator and the trainer -----------------------------------------------------------


def small_data(seed=0):
    rng = np.random.default_rng(seed)
    n = 6000
    return RatingData.from_ids(
        rng.integers(0, 300, n), rng.integers(0, 120, n), rng.integers(1, 6, n)
    )


@pytest.mark.slow
def test_sgd_fit_builds_no_grouped_copy_of_the_ratings(monkeypatch):
    def refuse(self):
        raise AssertionError("grouped copies of the ratings built on the sgd path")

    data = small_data()
    monkeypatch.setattr(TrainSet, "by_user", refuse)
    monkeypatch.setattr(TrainSet, "by_item", refuse)
    model = MatrixFactorization(factors=4, epochs=2, seed=0).fit(data)
    monkeypatch.undo()
    # The seen-items index is still the by-user grouping, in the same order as before.
    compact = data.compact()
    t = TrainSet(compact.users, compact.items, compact.ratings, compact.n_users, compact.n_items)
    by_user = t.by_user()
    np.testing.assert_array_equal(model.seen_indptr_, by_user.indptr)
    np.testing.assert_array_equal(model.seen_indices_, by_user.cols)


def test_the_trainer_counts_ratings_per_row_before_the_solver_is_built(monkeypatch):
    events = []
    counts = TrainSet.counts

    def counting(self):
        events.append("counts")
        return counts(self)

    class Probe(Solver):
        name = "probe"
        default_lr = 0.0

        def __init__(self, *args):
            events.append("solver")
            super().__init__(*args)

        def run_epoch(self, epoch):
            return 0

    monkeypatch.setattr(TrainSet, "counts", counting)
    users, items, r = ratings(n=500)
    train(TrainSet(users, items, r, N_USERS, N_ITEMS), Probe, epochs=1, seed=0, factors=2)
    # The count (np.bincount makes an int64 copy of the indices) runs while memory is lowest.
    assert events[:2] == ["counts", "solver"]


@pytest.mark.parametrize("solver", ["bgd", "als"])
def test_other_solvers_keep_the_same_seen_index(solver):
    data = small_data(1)
    model = MatrixFactorization(solver, factors=3, epochs=1, seed=0).fit(data)
    compact = data.compact()
    indptr, grouped = group_by_row_reference(compact.users, compact.items, compact.n_users)
    np.testing.assert_array_equal(model.seen_indptr_, indptr)
    np.testing.assert_array_equal(model.seen_indices_, grouped)
