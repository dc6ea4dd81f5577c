"""Top-k recommendations, similar items and predictions with fallback flags, on a model whose
every score is known by hand, against brute force, and through the top-k kernel's twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builders import USERS, random_model, tiny_model

from mfrec.errors import ParameterError, UnknownItemError, UnknownUserError
from mfrec.kernels.topk import CHUNK, top_k_rows, top_k_rows_reference
from mfrec.model.estimator import MatrixFactorization
from mfrec.model.recommend import block_rows, iter_recommendations, recommend_indices, top_k
from mfrec.ratings.ratingdata import RatingData


@pytest.fixture
def model() -> MatrixFactorization:
    return tiny_model()


def listed(ids, scores):
    return list(ids), [float(s) for s in scores]


# -- recommend -------------------------------------------------------------------------------


def test_recommend_excludes_seen_items_and_breaks_ties_by_item_order(model):
    assert listed(*model.recommend("u1", 2)) == (["b", "d"], [1.0, 1.0])  # b, d tie at 1
    assert listed(*model.recommend("u2", 2)) == (["a", "d"], [0.0, 0.0])
    assert listed(*model.recommend("007", 3)) == (["c", "a", "b"], [3.0, 2.0, 2.0])


def test_include_seen_ranks_every_item(model):
    assert list(model.recommend("u1", 3, exclude_seen=False)[0]) == ["a", "b", "d"]
    assert list(model.recommend("u2", 2, exclude_seen=False)[0]) == ["c", "b"]


def test_k_larger_than_the_candidates_gives_a_shorter_list(model):
    ids, scores = model.recommend("u2", 10)
    assert list(ids) == ["a", "d", "e"]  # 5 items - 2 seen
    ids, scores = model.recommend(["u2", "007"], 10)
    assert ids.shape == scores.shape == (2, 5)  # min(k, n_items) columns
    assert list(ids[0]) == ["a", "d", "e", None, None]
    assert np.isnan(scores[0, 3:]).all()
    assert list(ids[1]) == ["c", "a", "b", "d", "e"]


def test_scores_are_predicted_ratings_with_biases():
    biased = tiny_model(user_bias=[0.5, 0, 0], item_bias=[0, 1.5, 0, 0, 0])
    ids, scores = biased.recommend("u1", 2)
    assert list(ids) == ["b", "d"]  # b: 3 + 0.5 + 1.5 + 1 = 6; d: 3 + 0.5 + 0 + 1 = 4.5
    np.testing.assert_allclose(scores, [6.0, 4.5])
    np.testing.assert_allclose(biased.predict(["u1"], ["b"], clip=False), [6.0])


def test_no_users_gives_empty_arrays(model):
    ids, scores = model.recommend([], 3)
    assert ids.shape == scores.shape == (0, 3)


def test_all_users_in_index_order_and_ids_kept_exactly(model):
    ids, _ = model.recommend(None, 1)
    assert ids[:, 0].tolist() == ["b", "a", "c"]
    with pytest.raises(UnknownUserError):
        model.recommend("7", 1)  # "007" is not "7"


def test_unknown_user_is_an_error_naming_it(model):
    with pytest.raises(UnknownUserError) as err:
        model.recommend(["u1", "zz", "yy"], 2)
    assert str(err.value) == (
        "unknown user 'zz' (and 1 more unknown users): not in the model's training data"
    )


def test_cold_start_popular_gives_the_most_rated_items(model):
    # Training counts: a 1, b 1, c 1, d 0, e 0 -> a, b, c (ties by item order).
    ids, scores = model.recommend(["zz", "u1"], 3, cold_start="popular")
    assert ids.tolist() == [["a", "b", "c"], ["b", "d", "c"]]
    np.testing.assert_allclose(scores[0], [3.0, 3.0, 3.0])  # unknown user: the mean (no bias)
    blocks = list(iter_recommendations(model, ["zz", "u1"], 1, cold_start="popular"))
    assert blocks[0].cold.tolist() == [True, False]


def test_bad_parameters(model):
    with pytest.raises(ParameterError, match=r"^k=0: must be an integer >= 1$"):
        model.recommend("u1", 0)
    with pytest.raises(
        ParameterError, match=r"^cold_start='guess': must be one of error, popular$"
    ):
        model.recommend("u1", 2, cold_start="guess")
    with pytest.raises(ParameterError, match=r"^memory_budget=0: must be >= 1 \(bytes\)$"):
        block_rows(10, 4, 0)


def brute_force(model, users, k, exclude_seen=True):
    """Every score in one dense matrix, ranked by (-score, item index)."""
    S = model.user_factors_.astype(np.float64) @ model.item_factors_.T.astype(np.float64)
    S += model.item_bias_
    if exclude_seen:
        for u in range(len(S)):
            S[u, model.seen_indices_[model.seen_indptr_[u] : model.seen_indptr_[u + 1]]] = -np.inf
    out = []
    for u in users:
        order = np.lexsort((np.arange(S.shape[1]), -S[u]))
        out.append([i for i in order[:k] if S[u, i] > -np.inf])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_blocked_top_k_matches_brute_force_at_every_block_size(seed, exclude_seen):
    m = random_model(seed)
    users = np.arange(len(m.user_map_))
    expected = brute_force(m, users, 7, exclude_seen)
    for budget in (1, 45 * 8 * 5, 10**9):  # one row per block, 5 rows, everything
        found = recommend_indices(m, users, 7, exclude_seen=exclude_seen, memory_budget=budget)
        got = [[i for i in row if i >= 0] for row in found.indices.tolist()]
        assert got == expected, budget
    assert (expected[0] == []) if exclude_seen else (len(expected[0]) == 7)


def test_top_k_handles_users_given_in_any_order():
    m = random_model(3)
    users = np.array([5, 2, 5, 40, 0])
    found = recommend_indices(m, users, 4, memory_budget=45 * 8 * 2)
    got = [[i for i in row if i >= 0] for row in found.indices.tolist()]
    assert got == brute_force(m, users, 4)


# -- the kernel and its twin ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 3, 12])
@pytest.mark.parametrize("m", [10, CHUNK, 3 * CHUNK + 7])  # inside a chunk, and across chunks
def test_top_k_kernel_matches_its_reference(dtype, k, m):
    rng = np.random.default_rng(k)
    n = 9
    S = rng.integers(-3, 4, (n, m)).astype(dtype)  # many ties
    S[4, 2] = np.nan  # never selected
    S[5, ::2] = np.nan
    S[6, m // 2 :] += 10  # the best columns late in the row
    bias = (rng.integers(-1, 2, m) / 2).astype(dtype)
    counts = rng.integers(0, 4, n)
    counts[7] = m  # every column excluded
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate([rng.choice(m, c, replace=False) for c in counts]).astype(np.int32)
    outs = []
    for kernel in (top_k_rows, top_k_rows_reference):
        idx = np.empty((n, k), dtype=np.int32)
        score = np.empty((n, k), dtype=dtype)
        kernel(S.copy(), bias, indptr, indices, idx, score)
        outs.append((idx, score))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    assert (outs[0][0][7] == -1).all()
    assert 2 not in outs[0][0][4]


def test_top_k_by_hand():
    left = np.ones((1, 1), dtype=np.float32)
    right = np.array([[1.0], [3.0], [3.0], [2.0]], dtype=np.float32)
    found = top_k(left, right, 3)
    assert found.indices.tolist() == [[1, 2, 3]]  # 3 and 3 tie: column 1 before 2
    assert found.scores.tolist() == [[3.0, 3.0, 2.0]]


# -- similar items ---------------------------------------------------------------------------


def test_similar_items_by_cosine(model):
    # Unit vectors: a (1,0)  b (.71,.71)  c (0,1)  d (1,0)  e (0,0).
    ids, sims = model.similar_items("a", 3)
    assert list(ids) == ["d", "b", "c"]
    np.testing.assert_allclose(sims, [1.0, math.sqrt(0.5), 0.0], atol=1e-6)
    ids, _ = model.similar_items("b", 3)
    assert list(ids) == ["a", "c", "d"]  # all at 0.71: item order


def test_similar_items_never_lists_the_item_itself(model):
    ids, sims = model.similar_items(["e", "c"], 10)
    assert ids.shape == (2, 4)  # 5 items, minus itself
    assert "e" not in ids[0] and "c" not in ids[1]
    np.testing.assert_array_equal(sims[0], 0.0)  # a zero vector is similar to nothing


def test_similar_items_unknown_item(model):
    with pytest.raises(UnknownItemError, match=r"^unknown item 'z': not in the model's"):
        model.similar_items("z")


# -- predict with fallback flags --------------------------------------------------------------


def test_predict_flags_what_the_model_knows():
    biased = tiny_model(user_bias=[0.5, 0, 0], item_bias=[0, 1.5, 0, 0, 0])
    pred, known = biased.predict(
        ["u1", "u1", "zz", "zz", "7"], ["b", "q", "b", "q", "a"], clip=False, return_known=True
    )
    assert known.tolist() == ["both", "user", "item", "none", "item"]
    np.testing.assert_allclose(pred, [6.0, 3.5, 4.5, 3.0, 3.0])
    np.testing.assert_allclose(biased.predict(["u1"], ["b"]), [5.0])  # clipped to 0..5


# -- building a model from factors ------------------------------------------------------------


def test_from_factors_checks_shapes():
    with pytest.raises(ParameterError, match=r"^item_factors=\(2, 3\): does not match"):
        MatrixFactorization.from_factors(np.ones((2, 2)), np.ones((2, 3)), "ab", "cd", scale=(1, 5))
    with pytest.raises(
        ParameterError, match=r"^user_ids=3: 3 user and 2 item IDs for factors of 2 users"
    ):
        MatrixFactorization.from_factors(
            np.ones((2, 2)), np.ones((2, 2)), ["a", "b", "c"], ["x", "y"], scale=(1, 5)
        )


def test_a_saved_model_recommends_the_same(model, tmp_path):
    model.save(tmp_path / "m.npz")
    loaded = MatrixFactorization.load(tmp_path / "m.npz")
    for user in USERS:
        assert listed(*loaded.recommend(user, 3)) == listed(*model.recommend(user, 3))
    assert loaded.describe()["stop_reason"] == "from_factors"


def test_describe_reports_final_and_best_figures():
    rng = np.random.default_rng(0)
    users, items = np.nonzero(rng.random((30, 20)) < 0.6)
    ratings = rng.integers(1, 6, len(users))
    data = RatingData.from_ids(users, items, ratings)
    fitted = MatrixFactorization(factors=2, epochs=8, validation=0.2, patience=1, seed=0)
    fitted.fit(data)
    info = fitted.describe()
    history = fitted.history_
    assert info["final"]["train_rmse"] == pytest.approx(history["train_rmse"].iloc[-1])
    best = history.loc[history["epoch"] == fitted.best_epoch_]
    assert info["best"]["validation_rmse"] == pytest.approx(best["validation_rmse"].iloc[0])
    assert info["best"]["validation_rmse"] == pytest.approx(history["validation_rmse"].min())
    assert (info["users"], info["items"], info["factors"]) == (30, 20, 2)
    assert info["ratings"] == len(fitted.seen_indices_)
