"""split and kfold: exact partitions, per-user hold-outs, latest-by-time, and the report."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfrec.errors import DataFormatError
from mfrec.ratings.ratingdata import RatingData
from mfrec.ratings.split import DEFAULT_MIN_RATINGS, SplitReport, kfold, split


def numbered(users, items=None, timestamps=None) -> RatingData:
    """Ratings whose value is the row number, so that any subset tells which rows it holds."""
    n = len(users)
    items = list(range(n)) if items is None else items
    return RatingData.from_ids(users, items, np.arange(n, dtype=float), timestamps)


def rows(data: RatingData) -> list[int]:
    return sorted(data.ratings.astype(int).tolist())


# -- hand-computed cases ----------------------------------------------------------------------


def test_random_split_holds_out_the_rounded_fraction():
    data = numbered(list("abcdefghij"))
    s = split(data, test_size=0.25, seed=1)
    assert len(s.test) == 3  # 2.5 rounds half up
    assert sorted(rows(s.train) + rows(s.test)) == list(range(10))
    assert s.train.user_map is data.user_map and s.test.item_map is data.item_map


@pytest.mark.parametrize(("test_size", "n_test"), [(0.01, 1), (0.99, 1)])
def test_random_split_keeps_at_least_one_rating_on_each_side(test_size, n_test):
    s = split(numbered(["a", "b"]), test_size=test_size, seed=0)
    assert (len(s.train), len(s.test)) == (2 - n_test, n_test)


def test_same_seed_same_split_and_generators_are_accepted():
    data = numbered(list(range(50)))
    assert rows(split(data, seed=7).test) == rows(split(data, seed=7).test)
    assert rows(split(data, seed=7).test) != rows(split(data, seed=8).test)
    rng = np.random.default_rng(7)
    assert rows(split(data, seed=rng).test) == rows(split(data, seed=7).test)


def test_user_split_holds_out_a_share_of_each_user_and_keeps_small_users_whole():
    # a: 5 ratings (2 held out at 0.4), b: 4 ratings (< min_ratings 5: all in train)
    data = numbered(list("aaaaabbbb"))
    s = split(data, test_size=0.4, by="user", seed=3)
    test_users = s.test.user_map.to_ids(s.test.users).tolist()
    assert test_users == ["a", "a"]
    assert s.report.n_train == 7


def test_user_split_rounds_each_user_half_up_but_leaves_one_in_train():
    data = numbered(["a"] * 5 + ["b"] * 2)
    s = split(data, test_size=0.5, by="user", min_ratings=2, seed=0)
    counts = np.bincount(s.test.users, minlength=2)
    assert counts.tolist() == [3, 1]  # a: round(2.5) = 3; b: round(1.0) = 1
    s = split(data, test_size=0.9, by="user", min_ratings=2, seed=0)
    assert np.bincount(s.test.users, minlength=2).tolist() == [4, 1]


def test_time_split_holds_out_each_users_latest_ratings():
    users = [*"aaaaa", *"bbbbb", *"cc"]
    stamps = [50, 40, 30, 20, 10, 7, 7, 7, 7, 1, 1, 2]
    s = split(numbered(users, timestamps=stamps), test_size=0.4, by="time")
    # a: the two latest are rows 0 and 1; b: four rows tie at 7, the later rows count as
    # later, so rows 2 and 3 of b (rows 7 and 8); c has fewer than 5 ratings.
    assert rows(s.test) == [0, 1, 7, 8]


def test_time_split_needs_timestamps():
    data = numbered(list("aaaaa"))
    with pytest.raises(DataFormatError) as info:
        split(data, by="time")
    assert str(info.value) == "a split by time needs timestamps, and these ratings have none"


def test_per_user_split_of_only_small_users_is_an_error():
    with pytest.raises(DataFormatError) as info:
        split(numbered(list("aabbc")), by="user")
    assert str(info.value) == (
        "no user has min_ratings=5 ratings or more, so by='user' holds out nothing; "
        "lower min_ratings or use by='random'"
    )


def test_random_split_of_one_rating_is_an_error():
    with pytest.raises(DataFormatError) as info:
        split(numbered(["a"]))
    assert str(info.value) == "a split needs at least 2 ratings, got 1"


def test_default_min_ratings_is_documented():
    assert DEFAULT_MIN_RATINGS == 5
    assert "default 5" in split.__doc__


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"test_size": 1.5}, "test_size=1.5: must be in (0, 1)"),
        ({"test_size": 0}, "test_size=0: must be in (0, 1)"),
        ({"test_size": 1}, "test_size=1: must be in (0, 1)"),
        ({"test_size": float("nan")}, "test_size=nan: must be in (0, 1)"),
        ({"test_size": "0.2"}, "test_size='0.2': must be a number in (0, 1)"),
        ({"by": "item"}, "by='item': must be one of random, user, time"),
        ({"min_ratings": 1}, "min_ratings=1: must be >= 2"),
        ({"min_ratings": 2.5}, "min_ratings=2.5: must be an integer >= 2"),
    ],
)
def test_split_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError) as info:
        split(numbered(list("aaaaa")), **kwargs)
    assert str(info.value) == message


def test_report_counts_test_users_and_items_that_train_lacks():
    # Leave-one-out: every fold tests one rating, so each report is known exactly.
    data = RatingData.from_ids(["a", "a", "b", "c"], ["1", "2", "1", "3"], [1, 2, 3, 4])
    reports = {}
    for s in kfold(data, 4, seed=0):
        (row,) = s.test.ratings.astype(int).tolist()
        reports[row] = s.report
    base = {"n_train": 3, "n_test": 1, "n_test_users": 1, "n_test_items": 1}
    assert reports[1] == SplitReport(
        **base, unknown_users=0, unknown_items=0, unknown_ratings=0
    )  # a rated 1 and 2; item 1 also by b
    assert reports[2] == SplitReport(**base, unknown_users=0, unknown_items=1, unknown_ratings=1)
    assert reports[3] == SplitReport(**base, unknown_users=1, unknown_items=0, unknown_ratings=1)
    assert reports[4] == SplitReport(**base, unknown_users=1, unknown_items=1, unknown_ratings=1)
    assert reports[4].to_dict() == {
        **base,
        "unknown_users": 1,
        "unknown_items": 1,
        "unknown_ratings": 1,
    }


def test_kfold_by_user_spreads_each_user_over_the_folds():
    data = numbered(["a"] * 6 + ["b"] * 3 + ["c"] * 1)
    per_fold = [np.bincount(s.test.users, minlength=3).tolist() for s in kfold(data, 3, 5, "user")]
    assert [f[0] for f in per_fold] == [2, 2, 2]
    assert [f[1] for f in per_fold] == [1, 1, 1]
    assert sorted(f[2] for f in per_fold) == [0, 0, 1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1,), "k=1: must be >= 2"),
        ((2.0,), "k=2.0: must be an integer >= 2"),
        ((3, None, "time"), "by='time': must be one of random, user"),
    ],
)
def test_kfold_parameters_are_checked_at_the_call(args, message):
    with pytest.raises(ValueError) as info:
        kfold(numbered(list("aaaaa")), *args)  # not iterated: the check must be eager
    assert str(info.value) == message


def test_kfold_with_more_folds_than_ratings():
    with pytest.raises(DataFormatError) as info:
        kfold(numbered(list("abc")), 4)
    assert str(info.value) == "k=4: more folds than ratings (3)"


# -- properties -------------------------------------------------------------------------------


@st.composite
def rating_sets(draw, min_size=2):
    n = draw(st.integers(min_size, 120))
    users = draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))
    stamps = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))  # many ties
    return numbered(users, timestamps=stamps)


def per_user(data: RatingData) -> np.ndarray:
    return np.bincount(data.users, minlength=data.n_users)


@settings(max_examples=150, deadline=None)
@given(
    data=rating_sets(),
    test_size=st.floats(0.01, 0.99),
    by=st.sampled_from(["random", "user", "time"]),
    min_ratings=st.integers(2, 6),
    seed=st.integers(0, 2**32),
)
def test_split_properties(data, test_size, by, min_ratings, seed):
    counts = per_user(data)
    if by != "random" and not (counts >= min_ratings).any():
        with pytest.raises(DataFormatError):
            split(data, test_size, by, seed, min_ratings)
        return
    s = split(data, test_size, by, seed, min_ratings)
    n = len(data)
    assert sorted(rows(s.train) + rows(s.test)) == list(range(n))
    assert s.report.n_train + s.report.n_test == n
    if by == "random":
        expected = min(max(int(np.floor(test_size * n + 0.5)), 1), n - 1)
        assert len(s.test) == expected
        return
    held = per_user(s.test)
    small = counts < min_ratings
    assert (held[small] == 0).all()
    big = ~small
    # Each big user: the requested share, rounded, but at least 1 and at most all but 1.
    target = np.clip(test_size * counts[big], 1, counts[big] - 1)
    assert (np.abs(held[big] - target) <= 0.5 + 1e-9).all()
    assert ((held[big] >= 1) & (held[big] <= counts[big] - 1)).all()
    if by == "time":
        key = data.timestamps * n + np.arange(n)  # (timestamp, row) order
        in_test = np.isin(np.arange(n), rows(s.test))
        for u in np.flatnonzero(held):
            mine = data.users == u
            assert key[in_test & mine].min() > key[~in_test & mine].max()


@settings(max_examples=100, deadline=None)
@given(data=rating_sets(), k=st.integers(2, 7), by=st.sampled_from(["random", "user"]))
def test_kfold_properties(data, k, by):
    n = len(data)
    if k > n:
        with pytest.raises(DataFormatError):
            kfold(data, k, seed=0, by=by)
        return
    folds = list(kfold(data, k, seed=0, by=by))
    assert len(folds) == k
    tested = sorted(r for s in folds for r in rows(s.test))
    assert tested == list(range(n))  # every rating in exactly one test fold
    for s in folds:
        assert sorted(rows(s.train) + rows(s.test)) == list(range(n))
    sizes = [len(s.test) for s in folds]
    assert max(sizes) - min(sizes) <= 1
    if by == "user":
        held = np.array([per_user(s.test) for s in folds])
        assert (held.max(axis=0) - held.min(axis=0) <= 1).all()
