"""Rating and ranking metrics against hand-computed values, edge cases and a naive oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfrec.model.metrics import (
    Hits,
    coverage,
    hit_rate,
    mae,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    rmse,
)

RANKING = [precision_at_k, recall_at_k, ndcg_at_k, map_at_k, hit_rate]
LOG3 = math.log2(3)

# User A: rank 2 is a hit, 3 relevant items. User B: a list of 2 < k items, rank 2 a hit.
RECS = [["a", "b", "c", "d"], ["x", "y"]]
TRUTH = [{"b", "d", "e"}, {"y"}]
K = 3
PER_USER = {
    precision_at_k: (1 / 3, 1 / 2),  # B's list has 2 items: 1/2, not 1/3
    recall_at_k: (1 / 3, 1.0),
    ndcg_at_k: ((1 / LOG3) / (1 + 1 / LOG3 + 1 / 2), 1 / LOG3),
    map_at_k: ((1 / 2) / 3, (1 / 2) / 1),
    hit_rate: (1.0, 1.0),
}


def test_rmse_and_mae_by_hand():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3)
    assert mae([4.0], [3.5]) == pytest.approx(0.5)


@pytest.mark.parametrize("metric", [rmse, mae])
def test_rating_metrics_refuse_empty_mismatched_and_nan(metric):
    name = metric.__name__
    with pytest.raises(ValueError, match=f"^{name}: no ratings$"):
        metric([], [])
    with pytest.raises(ValueError, match=f"^{name}: 2 true ratings but 1 predictions$"):
        metric([1, 2], [1])
    with pytest.raises(ValueError, match=r"must be finite \(found NaN or inf\)$"):
        metric([1, 2], [1, np.nan])


@pytest.mark.parametrize("metric", RANKING)
def test_ranking_metrics_by_hand(metric):
    expected = sum(PER_USER[metric]) / 2
    assert metric(RECS, TRUTH, K) == pytest.approx(expected)


@pytest.mark.parametrize("metric", RANKING)
def test_a_user_without_relevant_items_is_left_out_of_the_mean(metric):
    with_c = metric([*RECS, ["p", "q"]], [*TRUTH, set()], K)
    assert with_c == pytest.approx(metric(RECS, TRUTH, K))


def test_per_user_values_and_which_users_count():
    hits = Hits.from_lists([*RECS, ["p"]], [*TRUTH, []], K)
    assert hits.evaluated.tolist() == [True, True, False]
    assert hits.hits.tolist() == [[False, True, False], [False, True, False], [False] * 3]
    assert hits.listed.tolist() == [3, 2, 1]
    assert hits.relevant.tolist() == [3, 1, 0]
    np.testing.assert_allclose(hits.precision(), PER_USER[precision_at_k])
    np.testing.assert_allclose(hits.ndcg(), PER_USER[ndcg_at_k])


def test_a_perfect_list_scores_one_and_an_empty_list_zero():
    perfect = (["a", "b", "c"], {"a", "b", "c", "d"})
    for metric in (precision_at_k, ndcg_at_k, map_at_k, hit_rate):
        assert metric([perfect[0]], [perfect[1]], 3) == pytest.approx(1.0)
    assert recall_at_k([perfect[0]], [perfect[1]], 3) == pytest.approx(3 / 4)
    for metric in RANKING:
        assert metric([[]], [{"a"}], 3) == 0.0


def test_k_larger_than_every_list():
    # One hit at rank 2 of a 2-item list; k = 10 changes nothing but the cut.
    assert precision_at_k([["x", "y"]], [{"y"}], 10) == pytest.approx(1 / 2)
    assert ndcg_at_k([["x", "y"]], [{"y"}], 10) == pytest.approx(1 / LOG3)
    assert map_at_k([["x", "y"]], [{"y", "z"}], 10) == pytest.approx((1 / 2) / 2)


def test_order_within_the_list_matters_and_ties_are_the_callers():
    # The same items in another order: a different NDCG, the same precision.
    assert ndcg_at_k([["b", "a"]], [{"b"}], 2) == pytest.approx(1.0)
    assert ndcg_at_k([["a", "b"]], [{"b"}], 2) == pytest.approx(1 / LOG3)
    assert precision_at_k([["a", "b"]], [{"b"}], 2) == precision_at_k([["b", "a"]], [{"b"}], 2)


@pytest.mark.parametrize("metric", RANKING)
def test_ranking_metrics_refuse_bad_input(metric):
    name = metric.__name__
    with pytest.raises(ValueError, match=f"^{name}: no users$"):
        metric([], [], 5)
    with pytest.raises(ValueError, match=f"^{name}: no user has a relevant item$"):
        metric([["a"]], [set()], 5)
    with pytest.raises(ValueError, match=r"^k=0: must be an integer >= 1$"):
        metric([["a"]], [{"a"}], 0)
    with pytest.raises(ValueError, match=r"^2 recommendation lists but 1 relevant sets$"):
        metric([["a"], ["b"]], [{"a"}], 5)
    with pytest.raises(ValueError, match=r"^the list of user 0 \(0-based\) holds an item twice$"):
        metric([["a", "a"]], [{"a"}], 5)


def test_coverage():
    lists = [["a", "b", "c"], ["b", "d"]]
    assert coverage(lists, 10) == pytest.approx(0.4)
    assert coverage(lists, 10, k=2) == pytest.approx(0.3)
    assert coverage([[], []], 5) == 0.0
    with pytest.raises(ValueError, match=r"^coverage: no users$"):
        coverage([], 5)
    with pytest.raises(ValueError, match=r"^n_items=0: must be an integer >= 1$"):
        coverage(lists, 0)
    with pytest.raises(ValueError, match=r"^coverage: 4 distinct items but n_items=3$"):
        coverage(lists, 3)


# -- a naive per-user oracle written straight from the definitions -----------------------


def naive(ranked: list[int], truth: set[int], k: int) -> dict[str, float]:
    top = ranked[:k]
    rel = [1.0 if item in truth else 0.0 for item in top]
    n_hits = sum(rel)
    dcg = sum(r / math.log2(j + 2) for j, r in enumerate(rel))
    idcg = sum(1 / math.log2(j + 2) for j in range(min(len(truth), k)))
    ap = sum(rel[j] * sum(rel[: j + 1]) / (j + 1) for j in range(len(top)))
    return {
        "precision": n_hits / len(top) if top else 0.0,
        "recall": n_hits / len(truth),
        "hit_rate": float(n_hits > 0),
        "ndcg": dcg / idcg,
        "map": ap / min(len(truth), k),
    }


users = st.lists(
    st.tuples(
        st.lists(st.integers(0, 15), unique=True, max_size=12),
        st.sets(st.integers(0, 15), min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=6,
)


@given(users=users, k=st.integers(1, 14))
def test_metrics_agree_with_the_naive_definitions(users, k):
    recs = [ranked for ranked, _ in users]
    truth = [rel for _, rel in users]
    per_user = [naive(ranked, rel, k) for ranked, rel in users]
    funcs = {
        "precision": precision_at_k,
        "recall": recall_at_k,
        "hit_rate": hit_rate,
        "ndcg": ndcg_at_k,
        "map": map_at_k,
    }
    for name, func in funcs.items():
        expected = sum(u[name] for u in per_user) / len(per_user)
        assert func(recs, truth, k) == pytest.approx(expected), name
        assert 0.0 <= func(recs, truth, k) <= 1.0
