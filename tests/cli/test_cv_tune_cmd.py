"""`mfrec cv`, `mfrec tune` and `mfrec train --params` through CliRunner."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import mfrec.cli.options
import mfrec.experiments.space
import mfrec.experiments.tune
from mfrec.cli import cli
from mfrec.cli.tune_cmd import DEFAULTS
from mfrec.experiments.paramsfile import read_params
from mfrec.model.estimator import MatrixFactorization

FAST = ["--factors", 3, "--epochs", 5]
SEARCH = ["--param", "factors=2,3", "--param", "reg=0.01:0.2:log", "--trials", 3, "--epochs", 20]


@pytest.fixture
def ratings(tmp_path):
    """A small CSV: about 60% of a planted rank-2 matrix, 30 users x 20 items."""
    return _ratings_file(tmp_path / "ratings.csv", seed=4)


def _ratings_file(path, seed, flip=False):
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((30, 20)) < 0.6)
    p, q = rng.normal(size=(30, 2)), rng.normal(size=(20, 2))
    r = np.clip(np.round(3 + np.einsum("nk,nk->n", p[users], q[items])), 1, 5)
    pd.DataFrame(
        {"user": [f"u{u}" for u in users], "item": items, "rating": 6 - r if flip else r}
    ).to_csv(path, index=False)
    return path


def run(*args, ok=True):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=not ok)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def fails(*args):
    result = run(*args, ok=False)
    assert result.exit_code == 2, result.output
    return result.output


@pytest.mark.parametrize("command", ["cv", "tune"])
def test_help(command):
    out = run(command, "--help").output
    assert out.startswith(f"Usage: cli {command} [OPTIONS]")
    assert "--reg-bias" in out and "--init-std" in out and "--preset" in out


def test_train_help_lists_params_and_init_std():
    out = run("train", "--help").output
    assert "--params FILE" in out and "--init-std FLOAT" in out


def test_defaults_shown_in_help_are_the_library_ones():
    assert DEFAULTS == {
        "trials": mfrec.experiments.space.DEFAULT_TRIALS,
        "validation": mfrec.experiments.tune.DEFAULT_VALIDATION,
        "patience": mfrec.experiments.tune.DEFAULT_PATIENCE,
        "max_epochs": mfrec.experiments.tune.DEFAULT_MAX_EPOCHS,
    }


# -- cv -------------------------------------------------------------------------------------


def test_cv_prints_each_fold_and_mean_and_std(ratings, tmp_path):
    out_csv = tmp_path / "cv.csv"
    result = run("cv", ratings, "--folds", 3, *FAST, "-o", out_csv)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["fold", "1", "fold", "2", "fold", "3", "mean", "std"]
    assert [line.split()[0] for line in lines[1:]] == [
        "train", "test", "rmse", "mae", "rmse_all", "mae_all", "precision@10", "recall@10",
        "ndcg@10", "map@10", "hit_rate@10", "coverage@10", "epochs", "seconds",
    ]  # fmt: skip
    assert result.stderr.count("fold ") == 3
    frame = pd.read_csv(out_csv)
    assert list(frame["fold"]) == ["1", "2", "3", "mean", "std"]
    rmse = frame["rmse"].to_numpy()
    assert rmse[3] == pytest.approx(rmse[:3].mean())
    assert rmse[4] == pytest.approx(np.std(rmse[:3], ddof=1))
    assert lines[3].split()[4] == f"{rmse[3]:.4f}"


def test_cv_csv_and_json(ratings):
    csv_out = run("cv", ratings, "--folds", 2, *FAST, "-k", 5, "--format", "csv", "-q").stdout
    frame = pd.read_csv(io.StringIO(csv_out))
    assert "ndcg@5" in frame and list(frame["fold"]) == ["1", "2", "mean", "std"]
    doc = json.loads(run("cv", ratings, "--folds", 2, *FAST, "--format", "json", "-q").stdout)
    assert doc["k"] == 10 and len(doc["folds"]) == 2
    assert doc["mean"]["rmse"] == pytest.approx(np.mean([f["rmse"] for f in doc["folds"]]))


def test_cv_fold_files_with_a_range(ratings, tmp_path):
    frame = pd.read_csv(ratings)
    for n in (1, 2):
        test = frame.iloc[n - 1 :: 2]
        frame.drop(test.index).to_csv(tmp_path / f"u{n}.base", index=False)
        test.to_csv(tmp_path / f"u{n}.test", index=False)
    pattern = [str(tmp_path / "u{1..2}.base"), str(tmp_path / "u{1..2}.test")]
    ranged = run("cv", "--fold-files", *pattern, *FAST, "--format", "csv", "-q").stdout
    listed = run(
        "cv", *FAST, "--format", "csv", "-q",
        "--fold-files", tmp_path / "u1.base", tmp_path / "u1.test",
        "--fold-files", tmp_path / "u2.base", tmp_path / "u2.test",
    ).stdout  # fmt: skip
    a, b = (pd.read_csv(io.StringIO(t)).drop(columns="seconds") for t in (ranged, listed))
    pd.testing.assert_frame_equal(a, b)
    assert list(a["test"][:2]) == [len(frame.iloc[0::2]), len(frame.iloc[1::2])]


def test_cv_fold_file_errors(ratings, tmp_path):
    base, test = tmp_path / "u{1..3}.base", tmp_path / "u{1..2}.test"
    assert fails("cv", "--fold-files", base, test) == (
        f"Error: --fold-files '{base}' '{test}': BASE names 3 file(s) and TEST 2\n"
    )
    missing = tmp_path / "u1.base"
    assert fails("cv", "--fold-files", missing, ratings) == (
        f"Error: --fold-files: {missing}: no such file\n"
    )
    assert fails("cv", "--fold-files", "u{1..2}{1..2}", "t") == (
        "Error: --fold-files 'u{1..2}{1..2}': at most one {A..B} range per path\n"
    )
    assert fails("cv", "--fold-files", "u{3..1}", "t{3..1}") == (
        "Error: --fold-files 'u{3..1}': the range {3..1} counts down\n"
    )
    assert fails("cv") == (
        "Error: give RATINGS to cut into --folds folds, or --fold-files BASE TEST\n"
    )
    assert fails("cv", ratings, "--fold-files", ratings, ratings) == (
        "Error: give RATINGS or --fold-files, not both\n"
    )
    assert fails("cv", "--folds", 3, "--fold-files", ratings, ratings) == (
        "Error: --folds: not with --fold-files (each pair is a fold)\n"
    )


def test_cv_bad_model_option(ratings):
    assert fails("cv", ratings, "--factors", 0) == "Error: --factors 0: must be >= 1\n"


# -- tune -----------------------------------------------------------------------------------


def test_tune_prints_writes_results_and_best_params(ratings, tmp_path):
    results, best = tmp_path / "results.csv", tmp_path / "best.json"
    result = run("tune", ratings, *SEARCH, "-o", results, "--best-params", best, "--seed", 3)
    frame = pd.read_csv(results)
    assert list(frame["rank"]) == [1, 2, 3] and frame["rmse"].is_monotonic_increasing
    params = read_params(best)
    top = frame.iloc[0]
    assert params == {
        "solver": "sgd",
        "dtype": "float32",
        "factors": int(top["factors"]),
        "reg": top["reg"],
        "epochs": int(top["best_epoch"]),
    }
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "rank", "trial", "factors", "reg", "rmse", "rmse_std", "best_epoch", "seconds",
    ]  # fmt: skip
    assert lines[-1] == f"best (rmse {top['rmse']:.4f} held out): " + " ".join(
        f"{k}={v}" for k, v in params.items()
    )
    assert result.stderr.count("trial ") == 3


def test_tune_json_and_csv_formats(ratings):
    doc = json.loads(run("tune", ratings, *SEARCH, "--format", "json", "-q").stdout)
    assert [r["rank"] for r in doc["results"]] == [1, 2, 3]
    assert doc["best_score"] == doc["results"][0]["rmse"] and doc["metric"] == "rmse"
    frame = pd.read_csv(io.StringIO(run("tune", ratings, *SEARCH, "--format", "csv", "-q").stdout))
    assert len(frame) == 3


def test_best_params_round_trip_into_train(ratings, tmp_path):
    best = tmp_path / "best.json"
    run(
        "tune",
        ratings,
        *SEARCH,
        "--lr",
        0.03,
        "--no-bias",
        "--init-std",
        0.05,
        "--best-params",
        best,
    )
    params = read_params(best)
    assert {params["lr"], params["use_bias"], params["init_std"]} == {0.03, False, 0.05}
    model = tmp_path / "m.npz"
    run("train", ratings, "--params", best, "-o", model, "-q")
    m = MatrixFactorization.load(model)
    assert {k: getattr(m, k) for k in params} == params
    assert m.n_epochs_ == params["epochs"]
    # An option on the command line wins over the file.
    run("train", ratings, "--params", best, "-o", model, "--factors", 7, "--seed", 1)
    m = MatrixFactorization.load(model)
    assert (m.factors, m.reg, m.seed_) == (7, params["reg"], 1)


def test_params_file_errors(ratings, tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"colour": 1}')
    assert fails("train", ratings, "--params", path, "-o", tmp_path / "m.npz").startswith(
        f"Error: {path}: unknown parameter 'colour'; valid ones: solver, factors, "
    )
    path.write_text('{"factors": "many"}')
    assert fails("train", ratings, "--params", path, "-o", tmp_path / "m.npz") == (
        f"Error: {path}: factors='many': 'many' is not a valid integer.\n"
    )
    path.write_text('{"use_bias": "no"}')
    assert fails("train", ratings, "--params", path, "-o", tmp_path / "m.npz") == (
        f"Error: {path}: use_bias='no': must be true or false\n"
    )
    path.write_text('{"threads": 1}')
    assert fails("cv", ratings, "--params", path) == (
        f"Error: {path}: parameter 'threads' has no option in `mfrec cv`\n"
    )
    assert not (tmp_path / "m.npz").exists()


def test_cv_takes_a_params_file(ratings, tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"factors": 2, "epochs": 3}')
    out = run("cv", ratings, "--folds", 2, "--params", path, "--format", "json", "-q").stdout
    assert [f["epochs"] for f in json.loads(out)["folds"]] == [3, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "reg"], "--param reg: expected NAME=VALUES, e.g. factors=16,32,64 or "
         "reg=0.01:0.2:log"),
        (["--param", "reg=0.2:0.01:log"], "--param reg=0.2:0.01:log: LOW 0.2 must be below "
         "HIGH 0.01"),
        (["--param", "reg=abc:0.2"], "--param reg=abc:0.2: LOW 'abc' is not a number"),
        (["--param", "reg=0:1:log"], "--param reg=0:1:log: a log range needs LOW > 0"),
        (["--param", "lr=0.01:0.1:cubic"], "--param lr=0.01:0.1:cubic: expected "
         "LOW:HIGH[:lin|:log][:POINTS], got 'cubic' after HIGH"),
        (["--param", "seed=1,2"], "--param seed=1,2: cannot be searched: tune sets it (seed)"),
        (["--param", "factors=2", "--param", "factors=3"], "--param factors=3: the parameter "
         "is given twice"),
        (["--param", "reg=0.01:0.2", "--search", "grid"], "--param reg=0.01:0.2: grid search "
         "needs a number of points for a range, e.g. reg=0.01:0.2:5"),
        (["--param", "factors=0,2", "--search", "grid"], "--param factors=0,2: factors=0: must "
         "be >= 1"),
        (["--param", "reg=0.01:0.2", "--reg", "0.1"], "--param reg=0.01:0.2: reg=0.1: given "
         "both as a fixed value and searched"),
        (["--param", "factors=2", "--search", "grid", "--trials", "3"], "--trials 3: grid "
         "search tries every combination; trials is for random"),
        (["--folds", "3", "--validation", "0.2"], "--folds 3: give folds or validation, not "
         "both"),
    ],
)  # fmt: skip
def test_tune_usage_errors_name_the_parameter(ratings, args, message):
    assert fails("tune", ratings, "--epochs", 2, *args) == f"Error: {message}\n"


def test_tune_unknown_parameter_lists_the_valid_ones(ratings):
    assert fails("tune", ratings, "--param", "colour=red").startswith(
        "Error: --param colour=red: no such parameter; valid ones: solver, factors, epochs, "
    )


def test_the_test_file_is_read_only_after_the_winner_is_fixed(ratings, tmp_path, monkeypatch):
    events = []
    load, search = mfrec.cli.options.load_from_options, mfrec.experiments.tune.tune

    def spy_load(source, **options):
        events.append(("load", str(source)))
        return load(source, **options)

    def spy_tune(*args, **kwargs):
        events.append(("tune", "start"))
        result = search(*args, **kwargs)
        events.append(("tune", "end"))
        return result

    monkeypatch.setattr(mfrec.cli.options, "load_from_options", spy_load)
    monkeypatch.setattr(mfrec.experiments.tune, "tune", spy_tune)
    test = _ratings_file(tmp_path / "test.csv", seed=4)
    out = run("tune", ratings, *SEARCH, "--test", test, "-q").stdout
    assert events == [
        ("load", str(ratings)),
        ("tune", "start"),
        ("tune", "end"),
        ("load", str(test)),
    ]
    assert out.splitlines()[-1].startswith(f"test ({test}, refitted on all of RATINGS): RMSE ")


def test_the_test_file_does_not_change_the_choice(ratings, tmp_path):
    """Test files that would favour different trials leave the results unchanged."""
    same = _ratings_file(tmp_path / "same.csv", seed=4)
    flipped = _ratings_file(tmp_path / "flipped.csv", seed=4, flip=True)
    outs = [
        json.loads(run("tune", ratings, *SEARCH, "--test", t, "--format", "json", "-q").stdout)
        for t in (same, flipped)
    ]
    plain = json.loads(run("tune", ratings, *SEARCH, "--format", "json", "-q").stdout)
    for out in outs:
        assert out["best_params"] == plain["best_params"]
        assert [r["trial"] for r in out["results"]] == [r["trial"] for r in plain["results"]]
    assert outs[0]["test"]["rmse"] < outs[1]["test"]["rmse"]


def test_cv_early_stopping_inside_each_fold(ratings):
    args = ["--validation", 0.2, "--patience", 1, "--epochs", 300, "--lr", 0.1, "--reg", 0]
    out = run("cv", ratings, "--folds", 2, "--factors", 8, *args, "--format", "json", "-q")
    assert all(f["epochs"] < 300 for f in json.loads(out.stdout)["folds"])
