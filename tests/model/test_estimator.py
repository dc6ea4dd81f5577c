"""MatrixFactorization: estimator conventions, fitting, prediction on raw IDs, save/load."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from conftest import ML100K

from mfrec.errors import DivergenceError, ModelFileError, NotFittedError, ParameterError
from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.idmap import IdMap
from mfrec.ratings.ratingdata import RatingData
from mfrec.training import objective
from mfrec.training.solvers import SOLVERS

NOT_FITTED = "This MatrixFactorization is not fitted yet: call fit(data) first"


def planted(seed: int = 3, n_users: int = 40, n_items: int = 25) -> RatingData:
    """About half of a rank-2 rating matrix on a 1-5 scale; user IDs 'u0'.., items '0'.."""
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.5)
    P = rng.normal(size=(n_users, 2))
    Q = rng.normal(size=(n_items, 2))
    r = 3 + np.einsum("nk,nk->n", P[users], Q[items]) + rng.normal(0, 0.3, len(users))
    return RatingData.from_ids(
        [f"u{u}" for u in users], items, np.clip(np.round(r), 1, 5), scale=(1.0, 5.0)
    )


def small(**params) -> MatrixFactorization:
    return MatrixFactorization(**{"factors": 3, "epochs": 5, "seed": 0, **params})


@pytest.fixture(scope="module")
def fitted() -> MatrixFactorization:
    return small().fit(planted())


# -- estimator conventions ---------------------------------------------------------------------


def test_init_only_stores_parameters():
    model = MatrixFactorization("foo", factors=0, lr=-1.0)
    assert (model.solver, model.factors, model.lr) == ("foo", 0, -1.0)
    assert not [name for name in vars(model) if name.endswith("_")]


def test_get_params_round_trips_through_the_constructor():
    model = MatrixFactorization("bgd", factors=7, lr=0.1, optimizer="adam", patience=2)
    params = model.get_params()
    assert set(params) == {
        "solver", "factors", "epochs", "lr", "reg", "reg_bias", "batch_size", "optimizer",
        "decay", "momentum", "line_search", "use_bias", "init_std", "dtype", "validation",
        "patience", "seed", "progress", "threads",
    }  # fmt: skip
    assert MatrixFactorization(**params).get_params() == params


def test_set_params_returns_self_and_refuses_unknown_names():
    model = MatrixFactorization()
    assert model.set_params(factors=5, solver="als") is model
    assert (model.factors, model.solver) == (5, "als")
    with pytest.raises(ParameterError, match=r"^factor=5: no such parameter; valid ones: solver,"):
        model.set_params(factor=5)


def test_repr_shows_the_parameters_that_differ_from_the_defaults():
    assert repr(MatrixFactorization()) == "MatrixFactorization()"
    assert (
        repr(MatrixFactorization("als", factors=8))
        == "MatrixFactorization(solver='als', factors=8)"
    )


@pytest.mark.parametrize("method", ["predict", "save", "to_factors"])
def test_methods_needing_a_fitted_model_say_so(method, tmp_path):
    model = MatrixFactorization()
    args = {"predict": (["1"], ["2"]), "save": (tmp_path / "m.npz",), "to_factors": ()}[method]
    with pytest.raises(NotFittedError) as info:
        getattr(model, method)(*args)
    assert str(info.value) == NOT_FITTED


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"solver": "foo"}, "solver='foo': must be one of als, bgd, minibatch, sgd"),
        ({"factors": 0}, "factors=0: must be >= 1"),
        ({"factors": 2.5}, "factors=2.5: must be an integer >= 1"),
        ({"factors": True}, "factors=True: must be an integer >= 1"),
        ({"epochs": -1}, "epochs=-1: must be >= 1"),
        ({"lr": 0}, "lr=0: must be > 0"),
        ({"lr": float("nan")}, "lr=nan: must be > 0"),
        ({"lr": "0.1"}, "lr='0.1': must be a number > 0"),
        ({"reg": -0.1}, "reg=-0.1: must be >= 0"),
        ({"reg_bias": float("inf")}, "reg_bias=inf: must be >= 0"),
        ({"batch_size": 0}, "batch_size=0: must be >= 1"),
        (
            {"optimizer": "sgd"},
            "optimizer='sgd': must be one of constant, decay, adagrad, momentum, adam",
        ),
        ({"decay": -1}, "decay=-1: must be >= 0"),
        ({"momentum": 1.0}, "momentum=1.0: must be in [0, 1)"),
        ({"line_search": 1}, "line_search=1: must be True or False"),
        ({"line_search": True}, "line_search=True: only the bgd solver has one, not sgd"),
        ({"use_bias": "no"}, "use_bias='no': must be True or False"),
        ({"init_std": 0.0}, "init_std=0.0: must be > 0"),
        ({"dtype": "float16"}, "dtype='float16': must be one of float32, float64"),
        (
            {"dtype": "double precision"},
            "dtype='double precision': must be one of float32, float64",
        ),
        ({"validation": 1.0}, "validation=1.0: must be a fraction in (0, 1) or a RatingData"),
        ({"validation": "0.2"}, "validation='0.2': must be a fraction in (0, 1) or a RatingData"),
        ({"patience": 0, "validation": 0.2}, "patience=0: must be >= 1"),
        ({"patience": 3}, "patience=3: early stopping needs validation (a fraction or data)"),
        ({"seed": -1}, "seed=-1: must be an int >= 0, a Generator or None"),
        ({"seed": 1.5}, "seed=1.5: must be an int >= 0, a Generator or None"),
        ({"progress": None}, "progress=None: must be True or False"),
    ],
)
def test_fit_checks_parameters_with_messages_naming_them(params, message):
    with pytest.raises(ParameterError) as info:
        small(**params).fit(planted())
    assert str(info.value) == message
    assert info.value.exit_code == 2


def test_numpy_scalars_are_accepted_and_shown_plainly():
    small(factors=np.int64(2), lr=np.float32(0.01), epochs=np.int32(1)).fit(planted())
    with pytest.raises(ParameterError, match=r"^reg=-1\.5: must be >= 0$"):
        small(reg=np.float64(-1.5)).fit(planted())


def test_fit_validation_argument_is_checked_too():
    with pytest.raises(ParameterError, match=r"^validation=2: must be a fraction"):
        small().fit(planted(), validation=2)


def test_empty_data_is_refused():
    empty = planted().subset(np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="no ratings to train on"):
        small().fit(empty)


# -- fitting -----------------------------------------------------------------------------------


def test_fit_returns_self_with_fitted_attributes(fitted):
    data = planted()
    m = fitted
    assert m.user_factors_.shape == (data.n_users, 3)
    assert m.item_factors_.shape == (data.n_items, 3)
    assert m.user_factors_.dtype == np.float32
    assert m.user_bias_.shape == (data.n_users,)
    assert m.item_bias_.shape == (data.n_items,)
    assert m.global_mean_ == pytest.approx(data.ratings.mean())
    assert m.user_map_ == data.user_map
    assert m.item_map_ == data.item_map
    assert m.scale_ == (1.0, 5.0)
    assert list(m.history_["epoch"]) == [0, 1, 2, 3, 4, 5]
    assert (m.n_epochs_, m.best_epoch_, m.stop_reason_, m.seed_) == (5, 5, "epochs", 0)
    assert m.train_rmse_ == m.history_["train_rmse"].iloc[-1]
    assert np.isnan(m.validation_rmse_)


def test_seen_items_are_the_training_ratings_per_user(fitted):
    data = planted()
    for u in range(data.n_users):
        seen = fitted.seen_indices_[fitted.seen_indptr_[u] : fitted.seen_indptr_[u + 1]]
        assert sorted(seen) == sorted(data.items[data.users == u])


def test_fit_compacts_ids_without_ratings():
    data = planted()
    keep = data.users != data.user_map.index("u0")
    m = small().fit(data.subset(keep))
    assert "u0" not in m.user_map_
    assert len(m.user_map_) == data.n_users - 1


@pytest.mark.parametrize("dtype", ["float64", np.float64])
def test_dtype_float64(dtype):
    m = small(dtype=dtype, epochs=1).fit(planted())
    assert m.user_factors_.dtype == np.float64


def test_seed_none_stores_a_seed_that_reproduces_the_fit():
    first = small(seed=None).fit(planted())
    assert isinstance(first.seed_, int)
    again = small(seed=first.seed_).fit(planted())
    assert np.array_equal(first.user_factors_, again.user_factors_)
    assert np.array_equal(first.item_bias_, again.item_bias_)


def test_generator_seed_is_turned_into_an_int_seed():
    m = small(seed=np.random.default_rng(9)).fit(planted())
    again = small(seed=m.seed_).fit(planted())
    assert np.array_equal(m.item_factors_, again.item_factors_)


def test_same_seed_same_model_twice():
    a = small(seed=11).fit(planted())
    b = small(seed=11).fit(planted())
    assert np.array_equal(a.user_factors_, b.user_factors_)
    assert np.array_equal(a.item_factors_, b.item_factors_)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_every_solver_fits_and_lowers_the_objective(solver):
    m = MatrixFactorization(solver, factors=3, epochs=4, seed=0).fit(planted())
    j = m.history_["objective"]
    assert j.iloc[-1] < j.iloc[0]
    assert m.train_rmse_ < m.history_["train_rmse"].iloc[0]


def test_validation_fraction_is_held_out_at_random_and_seeded():
    data = planted()
    a = small(validation=0.25).fit(data)
    b = small(validation=0.25).fit(data)
    assert "validation_rmse" in a.history_
    assert a.validation_rmse_ == a.history_["validation_rmse"].iloc[-1]
    assert a.history_["validation_rmse"].equals(b.history_["validation_rmse"])
    # The training part lost a quarter of the ratings.
    assert a.seen_indptr_[-1] == len(data) - round(0.25 * len(data))
    c = small(validation=0.25, seed=1).fit(data)
    assert c.seen_indptr_[-1] == a.seen_indptr_[-1]
    assert not np.array_equal(a.seen_indices_, c.seen_indices_)


def test_fit_validation_data_overrides_the_parameter_and_unknown_ids_are_left_out(caplog):
    data = planted()
    extra = RatingData.from_ids(["u1", "u2", "nobody"], ["1", "nothing", "2"], [4.0, 3.0, 5.0])
    with caplog.at_level(logging.INFO, logger="mfrec.training.fitting"):
        m = small(validation=0.5).fit(data, validation=extra)
    # Only (u1, 1) has both a known user and a known item.
    assert m.seen_indptr_[-1] == len(data)
    u, i = data.user_map.index("u1"), data.item_map.index("1")
    f = m.to_factors()
    expected = abs(4.0 - objective.predict(f, np.array([u]), np.array([i]))[0])
    assert m.history_["validation_rmse"].iloc[-1] == pytest.approx(expected, rel=1e-5)
    assert "validation: 2 of 3 ratings left out (user or item not in training)" in caplog.text


def test_validation_without_any_known_pair_is_refused():
    extra = RatingData.from_ids(["nobody"], ["1"], [4.0])
    with pytest.raises(ParameterError) as info:
        small().fit(planted(), validation=extra)
    assert str(info.value).endswith(
        ": none of its 1 ratings has a user and an item seen in training"
    )


def test_early_stopping_keeps_the_best_epoch():
    # A large learning rate overfits the small set fast, so validation RMSE turns up.
    m = small(validation=0.3, patience=2, epochs=60, factors=10, lr=0.1, reg=0.0).fit(planted())
    h = m.history_
    best = h["validation_rmse"].idxmin()
    assert m.stop_reason_ == "patience"
    assert m.best_epoch_ == h["epoch"][best] < m.n_epochs_
    assert m.validation_rmse_ == h["validation_rmse"].min()


def test_divergence_reaches_the_caller():
    with pytest.raises(DivergenceError, match=r"^sgd diverged at epoch 1 .* with lr=50: "):
        small(lr=50.0).fit(planted())


# -- predict -----------------------------------------------------------------------------------


def test_predict_known_pairs_is_mu_plus_biases_plus_dot(fitted):
    m = fitted
    u, i = m.user_map_.index("u5"), m.item_map_.index("3")
    expected = (
        m.global_mean_
        + m.user_bias_[u]
        + m.item_bias_[i]
        + float(m.user_factors_[u] @ m.item_factors_[i])
    )
    assert m.predict(["u5"], ["3"], clip=False)[0] == pytest.approx(expected, rel=1e-6)


def test_predict_falls_back_for_unknown_ids(fitted):
    m = fitted
    u, i = m.user_map_.index("u5"), m.item_map_.index("3")
    got = m.predict(["u5", "nobody", "nobody"], ["nothing", "3", "nothing"], clip=False)
    assert got == pytest.approx(
        [m.global_mean_ + m.user_bias_[u], m.global_mean_ + m.item_bias_[i], m.global_mean_]
    )
    assert got.dtype == np.float64


def test_predict_clips_to_the_scale_unless_asked_not_to():
    m = small().fit(planted())
    m.user_bias_[m.user_map_.indices(["u1", "u2"])] = [10.0, -10.0]
    raw = m.predict(["u1", "u2", "u3"], ["1", "1", "1"], clip=False)
    assert raw[0] > 5
    assert raw[1] < 1
    assert np.array_equal(m.predict(["u1", "u2", "u3"], ["1", "1", "1"]), np.clip(raw, 1, 5))


def test_ids_with_leading_zeros_are_distinct():
    data = RatingData.from_ids(["007", "7", "007", "7"], ["1", "1", "2", "2"], [5.0, 1.0, 5.0, 1.0])
    m = small(epochs=50, lr=0.05).fit(data)
    high, low = m.predict(["007", "7"], ["1", "1"])
    assert high > 4 > 2 > low


def test_predict_takes_ints_and_scalars_as_ids(fitted):
    assert fitted.predict([3], [3]).shape == (1,)
    assert fitted.predict("u3", 3) == pytest.approx(fitted.predict(["u3"], ["3"]))


@pytest.mark.parametrize("lookup", ["dict", "arrow", "pandas"])
def test_many_ids_are_looked_up_alike_whatever_the_lookup(lookup, fitted, monkeypatch):
    rng = np.random.default_rng(0)
    users = np.array([*fitted.user_map_.ids, "nobody", "u01", "U1", "u1 "], dtype=object)
    items = np.array([*fitted.item_map_.ids, "", "03", "3.0"], dtype=object)
    u = users[rng.integers(0, len(users), 500)]
    i = items[rng.integers(0, len(items), 500)]
    one_by_one = [
        (fitted.user_map_.index(a), fitted.item_map_.index(b)) for a, b in zip(u, i, strict=True)
    ]
    expected = fitted.predict_indices(*np.array(one_by_one).T)
    if lookup != "dict":
        monkeypatch.setattr("mfrec.ratings.idmap.DICT_LOOKUP_MAX", 10)
    if lookup == "pandas":
        monkeypatch.setattr(IdMap, "_arrow_indices", lambda self, arr: None)
    assert np.array_equal(fitted.predict(u, i), expected)
    assert np.array_equal(fitted.predict(u.astype(str), list(i)), expected)


def test_many_ids_that_are_not_all_strings_are_looked_up_by_pandas(monkeypatch):
    monkeypatch.setattr("mfrec.ratings.idmap.DICT_LOOKUP_MAX", 0)
    ids = IdMap(["a", "1", "b"])
    assert ids.indices(np.array([1, "b", None, "1"], dtype=object)).tolist() == [-1, 2, -1, 1]


def test_ids_are_compared_as_numpy_strings():
    # Raw IDs go through numpy's str: ints become their text; a trailing NUL is dropped.
    model = MatrixFactorization.from_factors(
        np.ones((2, 1)), np.ones((2, 1)), ["7", "a"], ["x", "y"], scale=(0.0, 5.0)
    )
    users = np.array([7, "a\x00", "a", np.str_("7")], dtype=object)
    assert model.predict(users, ["x"] * 4, return_known=True)[1].tolist() == ["both"] * 4


def test_predict_refuses_mismatched_lengths(fitted):
    with pytest.raises(ValueError, match=r"^predict: 2 users but 1 items$"):
        fitted.predict(["u1", "u2"], ["1"])


def test_without_bias_predictions_are_dot_products_and_the_mean_is_the_fallback():
    m = small(use_bias=False).fit(planted())
    assert not m.user_bias_.any()
    u, i = m.user_map_.index("u2"), m.item_map_.index("4")
    dot = float(m.user_factors_[u] @ m.item_factors_[i])
    got = m.predict(["u2", "u2"], ["4", "nothing"], clip=False)
    assert got == pytest.approx([dot, m.global_mean_], rel=1e-6)


# -- save and load -----------------------------------------------------------------------------


def test_save_load_round_trip(fitted, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    back = MatrixFactorization.load(path)
    assert back.get_params() == fitted.get_params()
    for name in (
        "user_factors_", "item_factors_", "user_bias_", "item_bias_", "seen_indptr_",
        "seen_indices_",
    ):  # fmt: skip
        assert np.array_equal(getattr(back, name), getattr(fitted, name)), name
    for name in (
        "global_mean_", "scale_", "seed_", "best_epoch_", "n_epochs_", "stop_reason_",
        "train_rmse_", "user_map_", "item_map_",
    ):  # fmt: skip
        assert getattr(back, name) == getattr(fitted, name), name
    pd.testing.assert_frame_equal(back.history_, fitted.history_)
    users, items = ["u1", "u7", "nobody"], ["0", "nothing", "3"]
    assert np.array_equal(back.predict(users, items), fitted.predict(users, items))


def test_saved_parameters_drop_objects_json_cannot_hold(tmp_path):
    data = planted()
    m = small(seed=np.random.default_rng(1), validation=data.subset(np.arange(20))).fit(data)
    m.save(tmp_path / "m.npz")
    back = MatrixFactorization.load(tmp_path / "m.npz")
    assert back.seed is None
    assert back.validation is None
    assert back.seed_ == m.seed_


def test_ids_with_leading_zeros_survive_save_and_load(tmp_path):
    data = RatingData.from_ids(["007", "7", "007"], ["01", "1", "1"], [5.0, 1.0, 3.0])
    m = small(epochs=2).fit(data)
    m.save(tmp_path / "m.npz")
    back = MatrixFactorization.load(tmp_path / "m.npz")
    assert back.user_map_.ids.tolist() == ["007", "7"]
    assert back.item_map_.ids.tolist() == ["01", "1"]


def test_load_refuses_hyperparameters_this_version_does_not_know(fitted, tmp_path):
    path = tmp_path / "m.npz"
    fitted.save(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["hyperparameters"] = np.array(json.dumps({"solver": "sgd", "rank": 3}))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(ModelFileError, match=r"m\.npz: unexpected hyperparameters \(.*'rank'"):
        MatrixFactorization.load(path)


# -- real data ---------------------------------------------------------------------------------


@pytest.mark.movielens
@pytest.mark.skipif(not (ML100K / "u1.base").exists(), reason="needs ml-100k")
def test_default_sgd_on_movielens_u1_lands_in_the_band():
    from mfrec.ratings.load import load_ratings

    train = load_ratings(ML100K / "u1.base", preset="ml-100k")
    test = load_ratings(ML100K / "u1.test", preset="ml-100k").to_frame()
    m = MatrixFactorization(seed=0).fit(train)
    pred = m.predict(test["user"].to_numpy(), test["item"].to_numpy())
    rmse = float(np.sqrt(np.mean((pred - test["rating"].to_numpy()) ** 2)))
    assert 0.88 < rmse < 0.95
