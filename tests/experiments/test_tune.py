"""mfrec.experiments.space (search-space syntax, trial generation), mfrec.experiments.tune
(the search itself) and mfrec.experiments.paramsfile (params files)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from mfrec.errors import DataFormatError, DivergenceError, ParameterError
from mfrec.experiments import tune as tune_module
from mfrec.experiments.paramsfile import read_params, write_params
from mfrec.experiments.space import Choice, Range, make_trials, parse_param, parse_space
from mfrec.experiments.tune import tune
from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.ratingdata import RatingData

SYNTAX = "expected LOW:HIGH[:lin|:log][:POINTS]"
SPACE = ["factors=2,4", "reg=0.01:0.3:log", "lr=0.01:0.05"]
FAST = {"epochs": 40, "patience": 3}


@pytest.fixture(scope="module")
def ratings() -> RatingData:
    """About 60% of a planted rank-2 matrix, 40 users x 30 items, ratings rounded to 1..5."""
    rng = np.random.default_rng(7)
    users, items = np.nonzero(rng.random((40, 30)) < 0.6)
    p, q = rng.normal(size=(40, 2)), rng.normal(size=(30, 2))
    r = np.clip(np.round(3 + np.einsum("nk,nk->n", p[users], q[items])), 1, 5)
    return RatingData.from_ids(users, items, r)


# -- search-space syntax --------------------------------------------------------------------


def test_a_list_keeps_its_values_and_their_types():
    p = parse_param("factors=16,32,64")
    assert p == Choice("factors", (16, 32, 64), "factors=16,32,64")
    assert all(type(v) is int for v in p.values)
    assert parse_param("reg=0.1, 1e-2").values == (0.1, 0.01)
    assert parse_param("optimizer=adam,constant").values == ("adam", "constant")
    assert parse_param("use_bias=true,False").values == (True, False)
    assert parse_param("lr=0.05").values == (0.05,)


def test_ranges_log_lin_integer_and_points():
    assert parse_param("reg=0.01:0.2:log") == Range(
        "reg", 0.01, 0.2, log=True, integer=False, points=None, spec="reg=0.01:0.2:log"
    )
    lin = parse_param("lr=0.001:0.1")
    assert (lin.log, lin.integer) == (False, False)
    ints = parse_param("factors=16:256:log:5")
    assert (ints.low, ints.high, ints.log, ints.integer, ints.points) == (16, 256, True, True, 5)
    assert parse_param("epochs=10:100:7:lin").points == 7
    assert parse_param("lr=1:2.0").integer is False


@pytest.mark.parametrize(
    ("spec", "param", "reason"),
    [
        ("reg", "param", "expected NAME=VALUES, e.g. factors=16,32,64 or reg=0.01:0.2:log"),
        ("=1,2", "param", "expected NAME=VALUES, e.g. factors=16,32,64 or reg=0.01:0.2:log"),
        ("reg=", "reg", "no values"),
        ("factors=16,,32", "factors", "empty value in the list"),
        ("factors=16,16", "factors", "a value is listed twice"),
        ("reg=abc:0.2", "reg", "LOW 'abc' is not a number"),
        ("reg=0.01:inf", "reg", "HIGH 'inf' is not a finite number"),
        ("reg=0.2:0.01", "reg", "LOW 0.2 must be below HIGH 0.01"),
        ("reg=0:0.2:log", "reg", "a log range needs LOW > 0"),
        ("reg=0.01:0.2:cubic", "reg", f"{SYNTAX}, got 'cubic' after HIGH"),
        ("reg=0.01:0.2:log:lin", "reg", f"{SYNTAX}, got 'lin' after HIGH"),
        ("reg=0.01:0.2:1", "reg", "POINTS must be at least 2"),
        ("seed=1,2", "seed", "cannot be searched: tune sets it (seed)"),
        ("threads=1,2", "threads", "cannot be searched: each trial runs on one thread; trials "
         "run side by side (jobs)"),
    ],
)  # fmt: skip
def test_bad_specifications_name_the_parameter(spec, param, reason):
    with pytest.raises(ParameterError) as err:
        parse_param(spec)
    assert (err.value.param, err.value.value, err.value.reason) == (param, spec, reason)


def test_an_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(ParameterError, match=r"^colour='colour=1': no such parameter; valid "):
        parse_param("colour=1")


def test_a_parameter_given_twice():
    with pytest.raises(ParameterError, match="the parameter is given twice"):
        parse_space(["reg=0.1", "reg=0.2"])


# -- trials ---------------------------------------------------------------------------------


def test_grid_is_every_combination_first_parameter_slowest():
    space = parse_space(["factors=2,4", "reg=0.01:0.1:log:3", "epochs=1:3:3"])
    trials = make_trials(space, "grid")
    assert len(trials) == 2 * 3 * 3
    assert trials[:4] == [
        {"factors": 2, "reg": 0.01, "epochs": 1},
        {"factors": 2, "reg": 0.01, "epochs": 2},
        {"factors": 2, "reg": 0.01, "epochs": 3},
        {"factors": 2, "reg": 0.0316, "epochs": 1},
    ]
    assert trials[-1] == {"factors": 4, "reg": 0.1, "epochs": 3}


def test_grid_needs_points_for_a_range_and_no_trials():
    space = parse_space(["reg=0.01:0.2:log"])
    with pytest.raises(ParameterError) as err:
        make_trials(space, "grid")
    assert (err.value.param, err.value.reason) == (
        "reg",
        "grid search needs a number of points for a range, e.g. reg=0.01:0.2:log:5",
    )
    with pytest.raises(ParameterError, match="trials=3: grid search tries every combination"):
        make_trials(parse_space(["factors=2,4"]), "grid", trials=3)


def test_random_trials_are_fixed_by_the_seed_distinct_and_in_range():
    space = parse_space(
        ["factors=8:64:log", "reg=0.001:1:log", "lr=0.01:0.02", "dtype=float32,float64"]
    )
    a = make_trials(space, "random", 50, seed=3)
    assert a == make_trials(space, "random", 50, seed=3)
    assert a != make_trials(space, "random", 50, seed=4)
    assert len({tuple(t.values()) for t in a}) == 50
    for t in a:
        assert 8 <= t["factors"] <= 64 and isinstance(t["factors"], int)
        assert 0.001 <= t["reg"] <= 1 and 0.01 <= t["lr"] <= 0.02
        assert t["dtype"] in ("float32", "float64")


def test_log_ranges_draw_evenly_in_the_logarithm():
    r = Range("reg", 0.001, 1.0, log=True)
    x = np.array([r.sample(np.random.default_rng(i)) for i in range(2000)])
    # Each decade holds about a third of the draws; a uniform draw would put 90% in the top.
    decades = np.histogram(np.log10(x), bins=[-3, -2, -1, 0])[0] / len(x)
    assert np.all(np.abs(decades - 1 / 3) < 0.05), decades


def test_integer_ranges_reach_both_ends():
    r = Range("factors", 1, 4, integer=True)
    rng = np.random.default_rng(0)
    assert {r.sample(rng) for _ in range(200)} == {1, 2, 3, 4}


def test_a_small_discrete_space_gives_fewer_random_trials():
    trials = make_trials(parse_space(["factors=2,4", "use_bias=true,false"]), "random", 10, 0)
    assert sorted(map(str, trials)) == sorted(
        map(str, [{"factors": f, "use_bias": b} for f in (2, 4) for b in (True, False)])
    )


# -- the search -----------------------------------------------------------------------------


def test_tune_ranks_the_trials_and_returns_the_winner(ratings):
    result = tune(ratings, SPACE, trials=5, seed=1, **FAST)
    table = result.results
    assert list(table.columns) == [
        "rank", "trial", "factors", "reg", "lr", "rmse", "rmse_std", "best_epoch", "seconds",
        "error",
    ]  # fmt: skip
    assert list(table["rank"]) == [1, 2, 3, 4, 5]
    assert table["rmse"].is_monotonic_increasing
    assert sorted(table["trial"]) == [0, 1, 2, 3, 4]
    assert table["rmse_std"].isna().all()  # one held-out part
    best = table.iloc[0]
    assert result.best_params == {
        "factors": best["factors"],
        "reg": best["reg"],
        "lr": best["lr"],
        "epochs": best["best_epoch"],
    }
    assert result.best_score == best["rmse"]


def test_the_winner_refits_on_all_ratings_for_the_epochs_it_kept(ratings):
    result = tune(ratings, SPACE, trials=3, seed=1, epochs=40)
    model = result.best_estimator().fit(ratings)
    assert model.n_epochs_ == result.best_params["epochs"] == result.results["best_epoch"].iloc[0]
    assert model.seed_ == result.seed == 1
    assert model.factors == result.results["factors"].iloc[0]


def test_a_fixed_seed_gives_the_same_trials_and_winner(ratings):
    a = tune(ratings, SPACE, trials=4, seed=5, epochs=30)
    b = tune(ratings, SPACE, trials=4, seed=5, epochs=30)
    pd.testing.assert_frame_equal(
        a.results.drop(columns="seconds"), b.results.drop(columns="seconds")
    )
    assert a.best_params == b.best_params
    c = tune(ratings, SPACE, trials=4, seed=6, epochs=30)
    assert not a.results[["factors", "reg", "lr"]].equals(c.results[["factors", "reg", "lr"]])


@pytest.mark.slow
def test_jobs_do_not_change_the_results(ratings):
    one = tune(ratings, SPACE, trials=4, seed=2, epochs=30, folds=2)
    two = tune(ratings, SPACE, trials=4, seed=2, epochs=30, folds=2, jobs=2)
    pd.testing.assert_frame_equal(
        one.results.drop(columns="seconds"), two.results.drop(columns="seconds")
    )
    assert one.best_params == two.best_params


def test_inner_folds_score_every_trial_on_each_fold(ratings, monkeypatch):
    seen = []

    class Spy(MatrixFactorization):
        def fit(self, data, validation=None):
            seen.append((data, validation))
            return super().fit(data, validation=validation)

    monkeypatch.setattr(tune_module, "MatrixFactorization", Spy)
    result = tune(ratings, ["factors=2,3"], search="grid", folds=3, epochs=5, seed=0)
    assert len(seen) == 2 * 3
    assert result.results["rmse_std"].notna().all()
    keys = _keys(ratings)
    held_out = [_keys(v) for _, v in seen[:3]]
    # The held-out parts of the first trial partition the ratings; each trains on the rest.
    assert sorted(k for part in held_out for k in part) == sorted(keys)
    for (train, _), part in zip(seen[:3], held_out, strict=True):
        assert sorted(_keys(train) + part) == sorted(keys)
    # Every trial sees the same parts.
    assert [_keys(v) for _, v in seen[3:]] == held_out


def test_a_validation_fraction_holds_out_part_of_the_data(ratings, monkeypatch):
    seen = []

    class Spy(MatrixFactorization):
        def fit(self, data, validation=None):
            seen.append((len(data), len(validation)))
            return super().fit(data, validation=validation)

    monkeypatch.setattr(tune_module, "MatrixFactorization", Spy)
    tune(ratings, ["factors=2"], validation=0.2, epochs=3)
    n = len(ratings)
    assert seen == [(n - 146, 146)]  # round(0.2 * 730)


def test_every_trial_uses_one_thread_and_early_stopping(ratings, monkeypatch):
    params = []

    class Spy(MatrixFactorization):
        def fit(self, data, validation=None):
            params.append(self.get_params())
            return super().fit(data, validation=validation)

    monkeypatch.setattr(tune_module, "MatrixFactorization", Spy)
    result = tune(ratings, ["factors=2"], epochs=7, patience=2, solver="bgd", seed=4)
    assert {k: params[0][k] for k in ("threads", "patience", "epochs", "solver", "seed")} == {
        "threads": 1, "patience": 2, "epochs": 7, "solver": "bgd", "seed": 4,
    }  # fmt: skip
    assert "threads" not in result.best_params and "patience" not in result.best_params


def test_a_diverging_trial_ranks_last_with_its_reason(ratings):
    result = tune(ratings, ["lr=0.02,50"], search="grid", epochs=20, reg=0.0)
    last = result.results.iloc[-1]
    assert last["lr"] == 50 and math.isnan(last["rmse"])
    assert last["error"].startswith("sgd diverged at epoch ")
    assert result.best_params["lr"] == 0.02
    with pytest.raises(DivergenceError, match=r"^every trial diverged; the first: sgd diverged"):
        tune(ratings, ["lr=50,60"], search="grid", epochs=20, reg=0.0)


@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_bad_value_stops_the_search_naming_the_parameter(ratings, jobs):
    with pytest.raises(ParameterError) as err:
        tune(ratings, ["factors=0,2"], search="grid", epochs=2, jobs=jobs)
    assert str(err.value) == "factors=0: must be >= 1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reg": 0.1}, "reg=0.1: given both as a fixed value and searched"),
        ({"seed": -1}, "seed=-1: must be an int >= 0, a Generator or None"),
        ({"folds": 3, "validation": 0.2}, "folds=3: give folds or validation, not both"),
        ({"folds": 1}, "folds=1: must be >= 2"),
        ({"jobs": 0}, "jobs=0: must be >= 1"),
        ({"metric": "auc"}, "metric='auc': must be one of rmse, mae"),
        ({"search": "bayes"}, "search='bayes': must be one of grid, random"),
        ({"trials": 0}, "trials=0: must be >= 1"),
        ({"validation": 1.5}, "test_size=1.5: must be in (0, 1)"),
        ({"patience": 0}, "patience=0: must be >= 1"),
        ({"progress": True}, "progress=True: cannot be fixed: not a model parameter"),
        (
            {"threads": 2},
            "threads=2: cannot be fixed: each trial runs on one thread; trials run "
            "side by side (jobs)",
        ),
    ],
)
def test_bad_options(ratings, kwargs, message):
    with pytest.raises(ParameterError) as err:
        tune(ratings, ["reg=0.01:0.1"], **kwargs)
    assert str(err.value) == message


def test_mae_as_the_metric(ratings):
    result = tune(ratings, ["factors=2,3"], search="grid", metric="mae", epochs=5)
    assert "mae" in result.results and "rmse" not in result.results
    assert result.metric == "mae" and result.best_score == result.results["mae"].min()


def _probe_threads(_: object) -> tuple[str | None, int]:
    import numba

    return os.environ.get("OPENBLAS_NUM_THREADS"), numba.get_num_threads()


@pytest.mark.slow
def test_workers_run_single_threaded_and_the_environment_is_restored():
    before = dict(os.environ)
    got = tune_module._map_trials(
        _probe_threads, [{}, {}], 2, _noop, (), lambda index, result: None
    )
    assert got == [("1", 1), ("1", 1)]
    assert dict(os.environ) == before


def _noop() -> None:
    return None


def _keys(data: RatingData) -> list[tuple[str, str]]:
    frame = data.to_frame()
    return list(zip(frame["user"], frame["item"], strict=True))


# -- params files ---------------------------------------------------------------------------


def test_params_round_trip_through_json(tmp_path):
    params = {"solver": "sgd", "factors": np.int64(64), "reg": np.float64(0.05), "use_bias": False}
    path = tmp_path / "best.json"
    write_params(path, params)
    assert json.loads(path.read_text()) == {
        "solver": "sgd",
        "factors": 64,
        "reg": 0.05,
        "use_bias": False,
    }
    assert read_params(path) == {"solver": "sgd", "factors": 64, "reg": 0.05, "use_bias": False}
    assert [p.name for p in tmp_path.iterdir()] == ["best.json"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"colour": 1}', "unknown parameter 'colour'; valid ones: "),
        ('{"validation": 0.1}', "unknown parameter 'validation'; valid ones: "),
        ("[1, 2]", "expected a JSON object of parameters"),
        ('{"factors": 64,\n}', "line 2: not valid JSON: "),
    ],
)
def test_bad_params_files(tmp_path, text, message):
    path = tmp_path / "best.json"
    path.write_text(text)
    with pytest.raises(DataFormatError) as err:
        read_params(path)
    assert str(err.value).startswith(
        f"{path}" + (", " if message.startswith("line") else ": ") + message
    )


def test_parameter_errors_survive_pickling_from_worker_processes():
    import pickle

    from mfrec.errors import ParameterError

    error = pickle.loads(pickle.dumps(ParameterError("reg", -1.0, "must be >= 0")))
    assert (type(error), str(error), error.param) == (
        ParameterError,
        "reg=-1.0: must be >= 0",
        "reg",
    )
