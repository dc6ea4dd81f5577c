"""Evaluate a fitted model on held-out ratings: rating accuracy and top-k ranking quality.

Every test rating falls in one of four groups by what the model knows of it (the ``known``
values of `MatrixFactorization.predict`): ``both`` user and item, only the ``user``, only the
``item``, or ``none``. The groups are counted and reported (`PAIR_GROUPS`: scored, unknown
item, unknown user, unknown both); none is dropped without a word.

Rating accuracy
    RMSE and MAE over the ``both`` pairs, predictions clipped to the rating scale. For
    comparison, ``rmse_all`` / ``mae_all`` score every test rating, the others with the
    model's fallback prediction (mean plus whichever bias is known).

Ranking
    A test rating is *relevant* when it is at least the relevance threshold. The default
    threshold is ``min + 0.75 * (max - min)`` of the model's rating scale: 4 on 1..5 (so
    ratings 4 and 5), 3.875 on 0.5..5 (4 and above), 7.75 on 1..10 (8 and above).
    Each test user the model knows gets a top-k list from every item of the model except
    those the user rated in training (as `recommend` does). The relevant items of a user are
    the relevant test ratings whose item the model knows and the user did not rate in
    training (the others cannot appear in the list; the ones rated in training are counted
    in ``pairs_in_training``; a pair the test data repeats is relevant when any of its
    ratings is). precision@k, recall@k, NDCG@k, MAP@k and hit rate are then
    averaged over the users with at least one relevant item, as defined in `mfrec.model.metrics`;
    users without one are counted in ``users_without_relevant`` and left out of every
    ranking average. Catalogue coverage is the share of the model's items that appear in at
    least one list, over the lists of all test users the model knows. Ties in the scores
    rank the lower item index first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mfrec.errors import DataFormatError, ParameterError
from mfrec.model import metrics
from mfrec.model.estimator import known_labels
from mfrec.model.recommend import DEFAULT_MEMORY_BUDGET, check_k, recommend_indices
from mfrec.ratings.ratingdata import RatingData
from mfrec.utils.formatting import fixed, label_row
from mfrec.utils.validation import check_fitted

if TYPE_CHECKING:
    from mfrec.model.estimator import MatrixFactorization

#: The default relevance threshold sits this far up the rating scale (4 on 1..5).
RELEVANCE_POSITION = 0.75
#: The `known` value of a pair (see `mfrec.model.estimator.known_labels`) -> its name in the report.
PAIR_GROUPS = {
    "both": "scored",
    "item": "unknown_user",
    "user": "unknown_item",
    "none": "unknown_both",
}


def relevance_threshold(scale: tuple[float, float]) -> float:
    """The default relevance threshold of a rating scale: min + 0.75 (max - min)."""
    lo, hi = scale
    return lo + RELEVANCE_POSITION * (hi - lo)


@dataclass(frozen=True)
class Evaluation:
    """The figures `evaluate` found; `to_dict()` for JSON and CSV, `to_text()` for people.

    `pairs` counts the test ratings by group (`PAIR_GROUPS`). A figure that cannot be
    computed (no pair to score, no user to rank for) is None.
    """

    k: int
    threshold: float
    scale: tuple[float, float]
    ratings: int
    pairs: dict[str, int]
    rmse: float | None
    mae: float | None
    rmse_all: float
    mae_all: float
    users: int
    users_unknown: int
    users_without_relevant: int
    users_evaluated: int
    pairs_in_training: int
    precision: float | None
    recall: float | None
    ndcg: float | None
    map: float | None
    hit_rate: float | None
    coverage: float | None
    items_recommended: int
    n_items: int

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-able values; the pair counts become ``pairs_scored``,
        ``pairs_unknown_user``, ``pairs_unknown_item`` and ``pairs_unknown_both``."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if name == "pairs":
                out.update({f"pairs_{group}": count for group, count in value.items()})
            else:
                out[name] = list(value) if name == "scale" else value
        return out

    def to_text(self) -> str:
        """A report for people: rating accuracy, then the ranking metrics and who counted."""
        scored = self.pairs["scored"]
        lines = [
            f"rating accuracy on {scored:,} of {self.ratings:,} test ratings "
            "(user and item known; predictions clipped)",
            _row("RMSE", fixed(self.rmse)),
            _row("MAE", fixed(self.mae)),
            _row(
                "not scored",
                f"{self.ratings - scored:,}: unknown user {self.pairs['unknown_user']:,}, "
                f"unknown item {self.pairs['unknown_item']:,}, "
                f"both unknown {self.pairs['unknown_both']:,}",
            ),
        ]
        if scored < self.ratings:
            lines.append(
                _row(
                    "with fallback",
                    f"RMSE {fixed(self.rmse_all)}, MAE {fixed(self.mae_all)} over all "
                    f"{self.ratings:,} (mean plus the known bias where unknown)",
                )
            )
        k = self.k
        lines += [
            "",
            f"ranking: top {k}, relevant = test rating >= {self.threshold:g} "
            f"(scale {self.scale[0]:g}..{self.scale[1]:g}); training items excluded",
            _row(
                "users",
                f"{self.users:,} in test: {self.users_evaluated:,} evaluated, "
                f"{self.users_without_relevant:,} without a relevant item, "
                f"{self.users_unknown:,} unknown",
            ),
            _row(f"precision@{k}", fixed(self.precision)),
            _row(f"recall@{k}", fixed(self.recall)),
            _row(f"NDCG@{k}", fixed(self.ndcg)),
            _row(f"MAP@{k}", fixed(self.map)),
            _row(f"hit rate@{k}", fixed(self.hit_rate)),
            _row(
                "coverage",
                f"{fixed(self.coverage)} ({self.items_recommended:,} of {self.n_items:,} "
                "items recommended)",
            ),
        ]
        if self.pairs_in_training:
            lines.append(
                _row(
                    "note",
                    f"{self.pairs_in_training:,} test pairs were also training ratings: they "
                    "cannot be recommended and do not count as relevant",
                )
            )
        return "\n".join(lines)


def evaluate(
    model: MatrixFactorization,
    test: RatingData,
    k: int = 10,
    threshold: float | None = None,
    *,
    clip: bool = True,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Evaluation:
    """Score `model` on the `test` ratings (see the module docstring for every definition).

    Parameters
    ----------
    k
        Length of the recommendation lists.
    threshold
        Lowest relevant rating; default `relevance_threshold` of the model's scale.
    clip
        Clip predictions to the rating scale before RMSE and MAE (as `predict` does).
    memory_budget
        Bytes of scores held at once while ranking (see `mfrec.model.recommend`).
    """
    check_fitted(model)
    check_k(k)
    if threshold is None:
        threshold = relevance_threshold(model.scale_)
    elif not np.isfinite(threshold):
        raise ParameterError("threshold", threshold, "must be a finite number")
    if len(test) == 0:
        raise DataFormatError("no test ratings", source=test.source)
    u = model.user_map_.indices(test.user_map.ids)[test.users]
    i = model.item_map_.indices(test.item_map.ids)[test.items]
    r = np.asarray(test.ratings, dtype=np.float64)
    labels = known_labels(u, i)
    pairs = {
        report: int(np.count_nonzero(labels == known)) for known, report in PAIR_GROUPS.items()
    }
    pred = model.predict_indices(u, i, clip=clip)
    both = labels == "both"
    scored = both.any()

    n_items = len(model.item_map_)
    test_users = np.unique(test.users)
    known_users = np.unique(u[u >= 0])
    found = recommend_indices(model, known_users, k, memory_budget=memory_budget)
    ranked = _rank(model, known_users, found.indices, u[both], i[both], r[both] >= threshold)
    hits, in_training = ranked
    evaluated = int(hits.evaluated.sum())
    lists = [row[row >= 0].tolist() for row in found.indices]
    items_recommended = len({item for row in lists for item in row})

    def mean(per_user: NDArray[np.float64]) -> float | None:
        return float(per_user.mean()) if evaluated else None

    return Evaluation(
        k=k,
        threshold=float(threshold),
        scale=(float(model.scale_[0]), float(model.scale_[1])),
        ratings=len(test),
        pairs=pairs,
        rmse=metrics.rmse(r[both], pred[both]) if scored else None,
        mae=metrics.mae(r[both], pred[both]) if scored else None,
        rmse_all=metrics.rmse(r, pred),
        mae_all=metrics.mae(r, pred),
        users=len(test_users),
        users_unknown=len(test_users) - len(known_users),
        users_without_relevant=len(known_users) - evaluated,
        users_evaluated=evaluated,
        pairs_in_training=in_training,
        precision=mean(hits.precision()),
        recall=mean(hits.recall()),
        ndcg=mean(hits.ndcg()),
        map=mean(hits.average_precision()),
        hit_rate=mean(hits.hit_rate()),
        coverage=metrics.coverage(lists, n_items) if lists else None,
        items_recommended=items_recommended,
        n_items=n_items,
    )


def _rank(
    model: MatrixFactorization,
    users: NDArray[np.integer],
    top: NDArray[np.int32],
    pair_users: NDArray[np.integer],
    pair_items: NDArray[np.integer],
    relevant: NDArray[np.bool_],
) -> tuple[metrics.Hits, int]:
    """Hits of each user's list (rows of `top`, users sorted) against the relevant pairs not
    rated in training; also the number of test pairs that were training ratings."""
    n_items = len(model.item_map_)
    seen_users = np.repeat(np.arange(len(model.user_map_)), np.diff(model.seen_indptr_))
    seen_keys = np.sort(seen_users.astype(np.int64) * n_items + model.seen_indices_)
    keys = pair_users.astype(np.int64) * n_items + pair_items
    in_training = _member(keys, seen_keys)
    relevant_keys = np.unique(keys[relevant & ~in_training])
    top_keys = users.astype(np.int64)[:, None] * n_items + top
    hits = _member(top_keys, relevant_keys) & (top >= 0)
    n_relevant = np.bincount(
        np.searchsorted(users, relevant_keys // n_items), minlength=len(users)
    ).astype(np.int64)
    listed = (top >= 0).sum(axis=1).astype(np.int64)
    return metrics.Hits(hits, listed, n_relevant), int(in_training.sum())


def _member(values: NDArray[np.int64], sorted_keys: NDArray[np.int64]) -> NDArray[np.bool_]:
    """values ∈ sorted_keys, elementwise (binary search: no hash table of the training set)."""
    if len(sorted_keys) == 0:
        return np.zeros(values.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return sorted_keys[pos] == values


def _row(label: str, value: str) -> str:
    return label_row(label, value, width=16, indent="  ")
