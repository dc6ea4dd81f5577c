"""Accuracy of predicted ratings and of top-k recommendation lists, as pure functions.

Rating metrics compare predictions with true ratings pair by pair::

    RMSE = sqrt( (1/n) Σ (r - r̂)² )        MAE = (1/n) Σ |r - r̂|

Ranking metrics compare each user's recommendation list with the set of items relevant to
that user. For user u, let L_u be the first min(k, len(list)) items of u's list, R_u the
relevant items, and hit_j = 1 when the item at rank j (1-based) is in R_u::

    precision@k = |L_u ∩ R_u| / |L_u|                     (0 when the list is empty)
    recall@k    = |L_u ∩ R_u| / |R_u|
    hit rate@k  = 1 if |L_u ∩ R_u| > 0 else 0
    NDCG@k      = DCG / IDCG,  DCG = Σ_{j=1..|L_u|} hit_j / log2(j + 1),
                               IDCG = Σ_{j=1..min(|R_u|, k)} 1 / log2(j + 1)
    AP@k        = Σ_{j=1..|L_u|} hit_j · precision@j / min(|R_u|, k);   MAP@k = mean AP@k

Relevance is binary. Precision divides by the length of the list, so a user with fewer than
k candidate items is not penalised for the slots that could not be filled; recall divides by
all of R_u, so it cannot reach 1 when |R_u| > k. Each ranking metric is the mean over the
users who have at least one relevant item: a user with none has no recall, NDCG or AP, and
leaving such users out of precision and hit rate too keeps every average over the same
users. `Hits.evaluated` says which users count. Lists are taken as ranked: ties in the
scores behind them must already be broken (mfrec breaks them by the lower item index).

Catalogue coverage is the share of the catalogue that appears in at least one list::

    coverage = |∪_u L_u| / n_items
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike, NDArray


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error of `y_pred` against `y_true`."""
    e = _errors("rmse", y_true, y_pred)
    return float(np.sqrt(np.mean(e * e)))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error of `y_pred` against `y_true`."""
    return float(np.mean(np.abs(_errors("mae", y_true, y_pred))))


def _errors(name: str, y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.float64]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if len(t) != len(p):
        raise ValueError(f"{name}: {len(t)} true ratings but {len(p)} predictions")
    if len(t) == 0:
        raise ValueError(f"{name}: no ratings")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError(f"{name}: ratings and predictions must be finite (found NaN or inf)")
    return p - t


@dataclass(frozen=True)
class Hits:
    """For each user: which of the first k recommended items are relevant.

    Every ranking metric is a function of these three arrays, so they are computed once
    (from lists with `from_lists`, or directly from index arrays by `mfrec.model.evaluate`).

    Attributes
    ----------
    hits
        Boolean (n_users, k): ``hits[u, j]`` is true when the item at rank j + 1 of user u's
        list is relevant; false past the end of a list shorter than k.
    listed
        Length of each user's list, cut at k.
    relevant
        Number of relevant items of each user, |R_u|.
    """

    hits: NDArray[np.bool_]
    listed: NDArray[np.int64]
    relevant: NDArray[np.int64]

    def __post_init__(self) -> None:
        n = self.hits.shape[0]
        if self.hits.ndim != 2 or len(self.listed) != n or len(self.relevant) != n:
            raise ValueError("Hits: hits must be (n_users, k) and listed, relevant (n_users,)")

    @classmethod
    def from_lists(
        cls, recommended: Sequence[Sequence[object]], relevant: Sequence[Collection[object]], k: int
    ) -> Hits:
        """Hits of ranked lists against relevant sets (any hashable item IDs).

        `recommended[u]` is user u's list, best first; `relevant[u]` the items relevant to u.
        """
        _check_k(k)
        if len(recommended) != len(relevant):
            raise ValueError(
                f"{len(recommended)} recommendation lists but {len(relevant)} relevant sets"
            )
        n = len(recommended)
        hits = np.zeros((n, k), dtype=bool)
        listed = np.zeros(n, dtype=np.int64)
        n_relevant = np.zeros(n, dtype=np.int64)
        for u, (ranked, truth) in enumerate(zip(recommended, relevant, strict=True)):
            top = list(ranked)[:k]
            if len(set(top)) != len(top):
                raise ValueError(f"the list of user {u} (0-based) holds an item twice")
            truth = set(truth)
            hits[u, : len(top)] = [item in truth for item in top]
            listed[u] = len(top)
            n_relevant[u] = len(truth)
        return cls(hits, listed, n_relevant)

    @property
    def k(self) -> int:
        """The cut-off: the number of ranks held per user."""
        return self.hits.shape[1]

    @property
    def evaluated(self) -> NDArray[np.bool_]:
        """Users who count in the averages: those with at least one relevant item."""
        return self.relevant > 0

    def _counted(self) -> tuple[NDArray[np.bool_], NDArray[np.int64], NDArray[np.int64]]:
        keep = self.evaluated
        return self.hits[keep], self.listed[keep], self.relevant[keep]

    def precision(self) -> NDArray[np.float64]:
        """precision@k of each evaluated user."""
        hits, listed, _ = self._counted()
        return hits.sum(axis=1) / np.maximum(listed, 1)

    def recall(self) -> NDArray[np.float64]:
        """recall@k of each evaluated user."""
        hits, _, relevant = self._counted()
        return hits.sum(axis=1) / relevant

    def hit_rate(self) -> NDArray[np.float64]:
        """1.0 for each evaluated user with a relevant item in the list, else 0.0."""
        hits, _, _ = self._counted()
        return hits.any(axis=1).astype(np.float64)

    def ndcg(self) -> NDArray[np.float64]:
        """NDCG@k (binary relevance) of each evaluated user."""
        hits, _, relevant = self._counted()
        discount = 1.0 / np.log2(np.arange(2, self.k + 2))
        ideal = np.cumsum(discount)[np.minimum(relevant, self.k) - 1]
        return (hits @ discount) / ideal

    def average_precision(self) -> NDArray[np.float64]:
        """AP@k of each evaluated user."""
        hits, _, relevant = self._counted()
        precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, self.k + 1)
        return (precision_at_rank * hits).sum(axis=1) / np.minimum(relevant, self.k)


def _mean(name: str, per_user: NDArray[np.float64], hits: Hits) -> float:
    if len(hits.relevant) == 0:
        raise ValueError(f"{name}: no users")
    if len(per_user) == 0:
        raise ValueError(f"{name}: no user has a relevant item")
    return float(per_user.mean())


def precision_at_k(
    recommended: Sequence[Sequence[object]], relevant: Sequence[Collection[object]], k: int
) -> float:
    """Mean precision@k over the users with a relevant item (see the module docstring)."""
    hits = Hits.from_lists(recommended, relevant, k)
    return _mean("precision_at_k", hits.precision(), hits)


def recall_at_k(
    recommended: Sequence[Sequence[object]], relevant: Sequence[Collection[object]], k: int
) -> float:
    """Mean recall@k over the users with a relevant item."""
    hits = Hits.from_lists(recommended, relevant, k)
    return _mean("recall_at_k", hits.recall(), hits)


def ndcg_at_k(
    recommended: Sequence[Sequence[object]], relevant: Sequence[Collection[object]], k: int
) -> float:
    """Mean NDCG@k (binary relevance) over the users with a relevant item."""
    hits = Hits.from_lists(recommended, relevant, k)
    return _mean("ndcg_at_k", hits.ndcg(), hits)


def map_at_k(
    recommended: Sequence[Sequence[object]], relevant: Sequence[Collection[object]], k: int
) -> float:
    """Mean average precision at k over the users with a relevant item."""
    hits = Hits.from_lists(recommended, relevant, k)
    return _mean("map_at_k", hits.average_precision(), hits)


def hit_rate(
    recommended: Sequence[Sequence[object]], relevant: Sequence[Collection[object]], k: int
) -> float:
    """Share of the users with a relevant item who find at least one in their top k."""
    hits = Hits.from_lists(recommended, relevant, k)
    return _mean("hit_rate", hits.hit_rate(), hits)


def coverage(recommended: Iterable[Sequence[object]], n_items: int, k: int | None = None) -> float:
    """Catalogue coverage: distinct items in the lists (each cut at `k`) / `n_items`."""
    if not isinstance(n_items, Integral) or n_items < 1:
        raise ValueError(f"n_items={n_items!r}: must be an integer >= 1")
    if k is not None:
        _check_k(k)
    lists = list(recommended)
    if not lists:
        raise ValueError("coverage: no users")
    distinct = {item for ranked in lists for item in list(ranked)[:k]}
    if len(distinct) > n_items:
        raise ValueError(f"coverage: {len(distinct)} distinct items but n_items={n_items}")
    return len(distinct) / n_items


def _check_k(k: object) -> None:
    if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k={k!r}: must be an integer >= 1")
