"""evaluate(): every figure by hand on the tiny model, against the metric functions on random
data, the edge cases, and a band on MovieLens 100k."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builders import random_model, tiny_model
from conftest import ML100K

from mfrec.errors import DataFormatError, ParameterError
from mfrec.model import metrics
from mfrec.model.evaluate import evaluate, relevance_threshold
from mfrec.ratings.ratingdata import RatingData

LOG3 = math.log2(3)
# Against the tiny model of test_recommend (scale 0..5, mean 3, no biases), top 2 lists:
#   u1 [b, d]   u2 [a, d]   007 [c, a]
TEST = [
    ("u1", "b", 4),  # predicted 1; relevant, hit at rank 1
    ("u1", "c", 5),  # predicted 0; relevant, not in the list
    ("u2", "d", 2),  # predicted 0; not relevant
    ("u2", "c", 5),  # predicted 3; rated in training: not a candidate, so not relevant
    ("zz", "a", 4),  # unknown user: fallback 3
    ("u1", "q", 5),  # unknown item: fallback 3
    ("yy", "q", 3),  # both unknown: fallback 3
    ("007", "a", 4),  # predicted 2; relevant, hit at rank 2
]


def test_relevance_threshold_rule():
    assert relevance_threshold((1, 5)) == 4.0
    assert relevance_threshold((0.5, 5)) == 3.875  # half stars: 4 and above
    assert relevance_threshold((1, 10)) == 7.75  # 8 and above
    assert relevance_threshold((0, 1)) == 0.75


def test_every_figure_by_hand():
    users, items, ratings = zip(*TEST, strict=True)
    report = evaluate(tiny_model(), RatingData.from_ids(users, items, ratings), k=2)
    assert report.threshold == 3.75
    assert report.pairs == {"scored": 5, "unknown_user": 1, "unknown_item": 1, "unknown_both": 1}
    assert report.rmse == pytest.approx(math.sqrt((9 + 25 + 4 + 4 + 4) / 5))
    assert report.mae == pytest.approx((3 + 5 + 2 + 2 + 2) / 5)
    assert report.rmse_all == pytest.approx(math.sqrt((46 + 1 + 4 + 0) / 8))
    assert report.mae_all == pytest.approx((14 + 1 + 2 + 0) / 8)
    assert (report.users, report.users_unknown) == (5, 2)
    assert (report.users_evaluated, report.users_without_relevant) == (2, 1)  # u2 left out
    assert report.pairs_in_training == 1
    # u1: hits [1, 0] of relevant {b, c}; 007: hits [0, 1] of relevant {a}.
    assert report.precision == pytest.approx(0.5)
    assert report.recall == pytest.approx((1 / 2 + 1) / 2)
    assert report.hit_rate == pytest.approx(1.0)
    assert report.ndcg == pytest.approx((1 / (1 + 1 / LOG3) + 1 / LOG3) / 2)
    assert report.map == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert report.coverage == pytest.approx(4 / 5)  # a, b, c, d; never e
    assert (report.items_recommended, report.n_items) == (4, 5)


def test_report_as_dict_and_text():
    users, items, ratings = zip(*TEST, strict=True)
    report = evaluate(tiny_model(), RatingData.from_ids(users, items, ratings), k=2)
    flat = report.to_dict()
    assert flat["pairs_unknown_item"] == 1 and "pairs" not in flat
    assert flat["scale"] == [0.0, 5.0]
    text = report.to_text()
    assert "rating accuracy on 5 of 8 test ratings" in text
    assert "not scored      3: unknown user 1, unknown item 1, both unknown 1" in text
    assert "users           5 in test: 2 evaluated, 1 without a relevant item, 2 unknown" in text
    assert "precision@2     0.5000" in text
    assert "1 test pairs were also training ratings" in text


def test_a_higher_threshold_changes_who_counts():
    users, items, ratings = zip(*TEST, strict=True)
    report = evaluate(tiny_model(), RatingData.from_ids(users, items, ratings), 2, threshold=5)
    assert report.users_evaluated == 1  # only u1 has a 5 that can be recommended
    assert report.recall == pytest.approx(0.0)


def test_nothing_known_gives_no_figures_instead_of_nan():
    report = evaluate(tiny_model(), RatingData.from_ids(["x", "y"], ["a", "q"], [4, 2]), k=2)
    assert report.pairs == {"scored": 0, "unknown_user": 1, "unknown_item": 0, "unknown_both": 1}
    assert report.rmse is report.mae is report.precision is report.coverage is None
    assert report.rmse_all == pytest.approx(math.sqrt((1 + 1) / 2))
    assert "RMSE            n/a" in report.to_text()


def test_bad_input():
    model = tiny_model()
    data = RatingData.from_ids(["u1"], ["a"], [4])
    with pytest.raises(DataFormatError, match=r"^no test ratings$"):
        evaluate(model, data.subset(np.zeros(1, dtype=bool)))
    with pytest.raises(ParameterError, match=r"^k=0: must be an integer >= 1$"):
        evaluate(model, data, k=0)
    with pytest.raises(ParameterError, match=r"^threshold=nan: must be a finite number$"):
        evaluate(model, data, threshold=float("nan"))


@pytest.mark.parametrize("seed", [0, 1])
def test_ranking_figures_agree_with_the_metric_functions(seed):
    model = random_model(seed)
    rng = np.random.default_rng(seed + 10)
    n = 400
    pairs = rng.choice(70 * 50, n, replace=False)
    users = [f"u{u}" for u in pairs // 50]  # u60.. are unknown
    items = [f"i{i}" for i in pairs % 50]  # i45.. are unknown
    test = RatingData.from_ids(users, items, rng.integers(1, 6, n))
    report = evaluate(model, test, k=5)

    frame = test.to_frame()
    known = frame[frame.user.isin(model.user_map_.ids) & frame.item.isin(model.item_map_.ids)]
    seen = {
        (model.user_map_.ids[u], model.item_map_.ids[i])
        for u in range(len(model.user_map_))
        for i in model.seen_indices_[model.seen_indptr_[u] : model.seen_indptr_[u + 1]]
    }
    test_users = sorted(set(known.user), key=model.user_map_.index)
    lists = [list(model.recommend(u, 5)[0]) for u in test_users]
    relevant = [
        {i for i, r in zip(g.item, g.rating, strict=True) if r >= 4 and (u, i) not in seen}
        for u in test_users
        for g in [known[known.user == u]]
    ]
    assert report.precision == pytest.approx(metrics.precision_at_k(lists, relevant, 5))
    assert report.recall == pytest.approx(metrics.recall_at_k(lists, relevant, 5))
    assert report.ndcg == pytest.approx(metrics.ndcg_at_k(lists, relevant, 5))
    assert report.map == pytest.approx(metrics.map_at_k(lists, relevant, 5))
    assert report.hit_rate == pytest.approx(metrics.hit_rate(lists, relevant, 5))
    assert report.users_evaluated == sum(1 for r in relevant if r)
    all_known = sorted(set(frame.user) & set(model.user_map_.ids), key=model.user_map_.index)
    all_lists = [list(model.recommend(u, 5)[0]) for u in all_known]
    assert report.coverage == pytest.approx(metrics.coverage(all_lists, len(model.item_map_)))
    assert report.pairs["scored"] == len(known)


@pytest.mark.movielens
@pytest.mark.skipif(not ML100K.exists(), reason="MovieLens 100k not present")
def test_movielens_u1_band():
    from mfrec.model.estimator import MatrixFactorization
    from mfrec.ratings.load import load_ratings

    train = load_ratings(ML100K / "u1.base", preset="ml-100k")
    test = load_ratings(ML100K / "u1.test", preset="ml-100k")
    report = evaluate(MatrixFactorization(seed=0).fit(train), test, k=10)
    assert report.pairs["unknown_item"] > 0 and report.pairs["unknown_user"] == 0
    assert 0.88 < report.rmse < 0.97
    assert report.users_evaluated > 400
    # Far better than chance: a random list of 10 of ~1,600 items hits ~0.3% of the time.
    assert report.precision > 0.05 and report.hit_rate > 0.3
    assert 0.0 < report.coverage < 1.0
