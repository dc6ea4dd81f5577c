"""mfrec.experiments.cv.cross_validate: folds, figures per fold, mean and std."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import ML100K

import mfrec.model.evaluate
from mfrec.errors import ParameterError
from mfrec.experiments.cv import cross_validate
from mfrec.ratings.load import load_ratings
from mfrec.ratings.ratingdata import RatingData
from mfrec.ratings.split import kfold
from mfrec.ratings.write import write_ratings

FAST = {"factors": 3, "epochs": 5}
METRICS = [
    "rmse", "mae", "rmse_all", "mae_all", "precision@10", "recall@10", "ndcg@10", "map@10",
    "hit_rate@10", "coverage@10",
]  # fmt: skip


@pytest.fixture(scope="module")
def ratings() -> RatingData:
    """About 60% of a planted rank-2 matrix, 40 users x 30 items, ratings rounded to 1..5."""
    rng = np.random.default_rng(11)
    users, items = np.nonzero(rng.random((40, 30)) < 0.6)
    p, q = rng.normal(size=(40, 2)), rng.normal(size=(30, 2))
    r = np.clip(np.round(3 + np.einsum("nk,nk->n", p[users], q[items])), 1, 5)
    return RatingData.from_ids([f"u{u}" for u in users], [f"i{i}" for i in items], r)


def test_one_row_per_fold_and_a_consistent_summary(ratings):
    result = cross_validate(ratings, folds=4, **FAST)
    folds = result.folds
    assert list(folds.columns) == ["fold", "train", "test", *METRICS, "epochs", "seconds"]
    assert list(folds["fold"]) == [1, 2, 3, 4]
    assert (folds["train"] + folds["test"] == len(ratings)).all()
    assert folds["test"].sum() == len(ratings)
    assert (folds["epochs"] == 5).all()
    assert list(result.summary.index) == ["mean", "std"]
    assert list(result.summary.columns) == list(folds.columns[1:])
    for column in result.summary.columns:
        assert result.summary.loc["mean", column] == pytest.approx(folds[column].mean())
        assert result.summary.loc["std", column] == pytest.approx(
            np.std(folds[column], ddof=1), abs=1e-12
        )
    assert result.metric_columns() == METRICS
    assert (folds["rmse"] > 0).all() and (folds["rmse"] < 2).all()


def test_every_rating_is_tested_exactly_once_never_trained_on_in_its_fold(ratings, monkeypatch):
    calls = []
    evaluate = mfrec.model.evaluate.evaluate

    def spy(model, test, k=10):
        calls.append((set(model.user_map_.ids), _keys(test)))
        return evaluate(model, test, k)

    monkeypatch.setattr(mfrec.model.evaluate, "evaluate", spy)
    cross_validate(ratings, folds=5, seed=3, **FAST)
    tested = [key for _, keys in calls for key in keys]
    assert sorted(tested) == sorted(_keys(ratings))
    # The fold assignment is kfold's: the same seed gives `mfrec split --folds`'s folds.
    assert [keys for _, keys in calls] == [_keys(s.test) for s in kfold(ratings, 5, seed=3)]


def test_predefined_folds_as_data_or_as_files(ratings, tmp_path):
    pairs, paths = [], []
    for n, s in enumerate(kfold(ratings, 3, seed=1)):
        base, test = tmp_path / f"u{n}.base", tmp_path / f"u{n}.test"
        write_ratings(s.train.compact(), base)
        write_ratings(s.test.compact(), test)
        pairs.append((s.train, s.test))
        paths.append((base, str(test)))
    columns = ["train", "test", *METRICS]
    # The folds of kfold, given as data, are the folds `folds=3` draws with the same seed.
    from_data = cross_validate(folds_files=pairs, seed=1, **FAST).folds[columns]
    drawn = cross_validate(ratings, folds=3, seed=1, **FAST).folds[columns]
    pd.testing.assert_frame_equal(from_data, drawn)
    # Paths are read with the loader options: on a 0..10 scale no rating of 5 is relevant.
    wide = {"scale": (0.0, 10.0)}
    from_files = cross_validate(folds_files=paths, load_options=wide, **FAST)
    loaded = [(load_ratings(b, **wide), load_ratings(t, **wide)) for b, t in paths]
    pd.testing.assert_frame_equal(
        from_files.folds[columns], cross_validate(folds_files=loaded, **FAST).folds[columns]
    )
    assert list(from_files.folds["test"]) == [len(t) for _, t in pairs]
    assert from_files.folds["precision@10"].isna().all()
    assert from_data["precision@10"].notna().all()


def test_the_seed_fixes_folds_and_models_and_params_reach_the_estimator(ratings):
    a = cross_validate(ratings, folds=3, seed=2, **FAST).folds.drop(columns="seconds")
    pd.testing.assert_frame_equal(
        a, cross_validate(ratings, folds=3, seed=2, **FAST).folds.drop(columns="seconds")
    )
    assert not a.equals(
        cross_validate(ratings, folds=3, seed=9, **FAST).folds.drop(columns="seconds")
    )
    early = cross_validate(
        ratings, folds=3, factors=3, epochs=200, lr=0.1, reg=0.0, validation=0.2, patience=2
    )
    assert (early.folds["epochs"] < 200).all()


def test_k_names_the_ranking_columns(ratings):
    result = cross_validate(ratings, folds=2, k=3, **FAST)
    assert "ndcg@3" in result.folds and "ndcg@10" not in result.folds
    assert result.k == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"folds_files": []}, "folds_files=[]: no (train, test) pair given"),
        ({"folds": 1}, "folds=1: must be >= 2"),
        ({"colour": 1}, "colour=1: no such parameter; valid ones: "),
        ({"k": 0}, "k=0: must be an integer >= 1"),
        ({"seed": -1}, "seed=-1: must be an int >= 0, a Generator or None"),
    ],
)
def test_bad_arguments(ratings, kwargs, message):
    data = None if "folds_files" in kwargs else ratings
    with pytest.raises(ParameterError) as err:
        cross_validate(data, **kwargs)
    assert str(err.value).startswith(message)


def test_data_or_fold_files_not_both_nor_neither(ratings):
    with pytest.raises(ParameterError, match="give data or folds_files, not both"):
        cross_validate(ratings, folds_files=[(ratings, ratings)])
    with pytest.raises(ParameterError, match="give the ratings to cut into folds, or folds_files"):
        cross_validate()


@pytest.mark.movielens
@pytest.mark.skipif(not (ML100K / "u1.base").exists(), reason="MovieLens 100k not present")
def test_movielens_u1_u5_default_sgd_band():
    pairs = [(ML100K / f"u{n}.base", ML100K / f"u{n}.test") for n in range(1, 6)]
    result = cross_validate(folds_files=pairs, load_options={"preset": "ml-100k"}, solver="sgd")
    assert list(result.folds["train"]) == [80000] * 5
    # benchmarks/RESULTS.md: default sgd scores 0.9090 over all test ratings (mean of u1-u5).
    assert 0.90 < result.summary.loc["mean", "rmse_all"] < 0.925


def _keys(data: RatingData) -> list[tuple[str, str]]:
    frame = data.to_frame()
    return list(zip(frame["user"], frame["item"], strict=True))
