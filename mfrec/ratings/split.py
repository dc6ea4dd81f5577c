"""Train/test splits and k-fold cross-validation of ratings, vectorized over millions of rows.

Train and test share the parent's ID maps, so an index means the same user or item in both;
the report counts the test users and items that train never saw, which evaluation has to
treat as unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from mfrec.errors import DataFormatError
from mfrec.ratings.ratingdata import RatingData
from mfrec.utils.validation import check_choice, check_int, check_real

SPLIT_METHODS = ("random", "user", "time")
KFOLD_METHODS = ("random", "user")

#: Users with fewer ratings than this stay whole in train under ``by="user"`` / ``"time"``.
DEFAULT_MIN_RATINGS = 5

Seed = int | np.random.Generator | None


@dataclass(frozen=True)
class SplitReport:
    """Counts describing one split.

    `unknown_users` / `unknown_items` are the distinct test users / items without any rating
    in train; `unknown_ratings` the test ratings whose user or item is unknown.
    """

    n_train: int
    n_test: int
    n_test_users: int
    n_test_items: int
    unknown_users: int
    unknown_items: int
    unknown_ratings: int

    def to_dict(self) -> dict[str, int]:
        """The counts as a JSON-able dict."""
        return asdict(self)


@dataclass(eq=False)
class Split:
    """A train and a test set over the same ID maps as the data they came from."""

    train: RatingData
    test: RatingData
    report: SplitReport


def split(
    data: RatingData,
    test_size: float = 0.2,
    by: str = "random",
    seed: Seed = None,
    min_ratings: int = DEFAULT_MIN_RATINGS,
) -> Split:
    """Split the ratings into train and test.

    Parameters
    ----------
    test_size
        Fraction of ratings held out, in (0, 1). ``"random"`` holds out exactly
        ``round(test_size * n)`` ratings (at least 1, at most n - 1); ``"user"`` and ``"time"``
        hold out ``round(test_size * count)`` of each user's ratings (at least 1, at most
        count - 1), so every such user keeps ratings in train.
    by
        ``"random"``: uniform over all ratings. ``"user"``: a random fraction of each user's
        ratings. ``"time"``: each user's latest ratings (needs timestamps; of equal
        timestamps the later row counts as later).
    seed
        Seed or generator for ``"random"`` and ``"user"``; ``"time"`` is deterministic.
    min_ratings
        For ``"user"`` and ``"time"``: users with fewer ratings stay whole in train (default 5,
        at least 2).

    Raises
    ------
    ValueError
        A parameter out of range.
    DataFormatError
        ``by="time"`` without timestamps, or data too small to hold out any rating.
    """
    check_real("test_size", test_size, low=0, low_open=True, high=1)
    check_choice("by", by, SPLIT_METHODS)
    check_int("min_ratings", min_ratings, minimum=2)
    rng = np.random.default_rng(seed)
    n = len(data)
    if by == "random":
        if n < 2:
            raise DataFormatError(f"a split needs at least 2 ratings, got {n}", source=data.source)
        n_test = min(max(int(_round_half_up(test_size * n)), 1), n - 1)
        test = np.zeros(n, dtype=bool)
        test[rng.permutation(n)[:n_test]] = True
        return _make_split(data, test)
    if by == "time":
        if data.timestamps is None:
            raise DataFormatError(
                "a split by time needs timestamps, and these ratings have none", source=data.source
            )
        # A stable sort keeps rows of equal timestamps in file order.
        pre_order = np.argsort(data.timestamps, kind="stable")
    else:
        pre_order = rng.permutation(n)
    test = _last_of_each_user(data, pre_order, test_size, min_ratings)
    if not test.any():
        raise DataFormatError(
            f"no user has min_ratings={min_ratings} ratings or more, so by={by!r} holds out "
            "nothing; lower min_ratings or use by='random'",
            source=data.source,
        )
    return _make_split(data, test)


def kfold(data: RatingData, k: int, seed: Seed = None, by: str = "random") -> Iterator[Split]:
    """Yield `k` splits whose test sets partition the ratings: each rating is tested once.

    Fold sizes differ by at most one rating. With ``by="user"`` each user's ratings are also
    spread over the folds as evenly as possible (a user with fewer than `k` ratings is absent
    from some test folds, and a user with one rating is unknown to train in its test fold).

    Parameters are checked when `kfold` is called, not when the first fold is drawn.
    """
    check_int("k", k, minimum=2)
    check_choice("by", by, KFOLD_METHODS)
    n = len(data)
    if k > n:
        raise DataFormatError(f"k={k}: more folds than ratings ({n})", source=data.source)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if by == "user":
        # Users in random order, each user's ratings together in random order: dealing the
        # folds round-robin along this order spreads both the data and every user evenly.
        user_rank = rng.permutation(data.n_users)
        order = order[np.argsort(user_rank[data.users[order]], kind="stable")]
    fold = np.empty(n, dtype=np.int64)
    fold[order] = np.arange(n) % k
    return (_make_split(data, fold == f) for f in range(k))


def _last_of_each_user(
    data: RatingData, pre_order: NDArray[np.intp], test_size: float, min_ratings: int
) -> NDArray[np.bool_]:
    """Mask of the last ``round(test_size * count)`` ratings of each user along `pre_order`."""
    order = pre_order[np.argsort(data.users[pre_order], kind="stable")]
    counts = np.bincount(data.users, minlength=data.n_users)
    n_test = np.clip(_round_half_up(test_size * counts), 1, counts - 1)
    n_test[counts < min_ratings] = 0
    ends = np.cumsum(counts)
    sorted_users = data.users[order]
    from_end = ends[sorted_users] - np.arange(len(order))  # 1 for a user's last rating
    test = np.zeros(len(order), dtype=bool)
    test[order] = from_end <= n_test[sorted_users]
    return test


def _make_split(data: RatingData, test: NDArray[np.bool_]) -> Split:
    train_set, test_set = data.subset(~test), data.subset(test)
    in_train_u = np.bincount(train_set.users, minlength=data.n_users) > 0
    in_train_i = np.bincount(train_set.items, minlength=data.n_items) > 0
    in_test_u = np.bincount(test_set.users, minlength=data.n_users) > 0
    in_test_i = np.bincount(test_set.items, minlength=data.n_items) > 0
    unknown = ~in_train_u[test_set.users] | ~in_train_i[test_set.items]
    report = SplitReport(
        n_train=len(train_set),
        n_test=len(test_set),
        n_test_users=int(in_test_u.sum()),
        n_test_items=int(in_test_i.sum()),
        unknown_users=int((in_test_u & ~in_train_u).sum()),
        unknown_items=int((in_test_i & ~in_train_i).sum()),
        unknown_ratings=int(unknown.sum()),
    )
    return Split(train_set, test_set, report)


def _round_half_up(x: float | NDArray[np.floating]) -> NDArray[np.int64]:
    # np.rint rounds halves to even; a user with 5 ratings and test_size 0.5 should give 3.
    return np.floor(np.asarray(x) + 0.5).astype(np.int64)
