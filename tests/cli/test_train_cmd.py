"""`mfrec train`: success, outputs, and one-line errors with exit codes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mfrec.cli import cli
from mfrec.cli.train_cmd import OPTIMIZER_NAMES, SOLVER_NAMES
from mfrec.model.estimator import MatrixFactorization
from mfrec.training.optimizers import OPTIMIZERS
from mfrec.training.solvers import SOLVERS
from mfrec.training.state import DEFAULT_FACTORS, DEFAULT_REG, DEFAULT_REG_BIAS, SolverParams

SUMMARY = re.compile(r"^sgd: 5 epochs, train RMSE \d\.\d{4}, \d+\.\d\d s\n$")


@pytest.fixture
def ratings(tmp_path):
    """A small CSV of about half of a rank-2 matrix, with zero-padded user IDs."""
    rng = np.random.default_rng(4)
    users, items = np.nonzero(rng.random((30, 20)) < 0.5)
    r = 3 + np.einsum("nk,nk->n", rng.normal(size=(30, 2))[users], rng.normal(size=(20, 2))[items])
    path = tmp_path / "ratings.csv"
    pd.DataFrame(
        {"user": [f"{u:03d}" for u in users], "item": items, "rating": np.clip(np.round(r), 1, 5)}
    ).to_csv(path, index=False)
    return path


def run(*args, catch=True):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=catch)


def test_train_writes_a_model_and_prints_one_summary_line(ratings, tmp_path):
    model = tmp_path / "model.npz"
    result = run("train", ratings, "-o", model, "--factors", 4, "--epochs", 5, catch=False)
    assert result.exit_code == 0
    assert SUMMARY.match(result.output), result.output
    m = MatrixFactorization.load(model)
    assert (m.solver, m.factors, m.epochs, m.seed_) == ("sgd", 4, 5, 0)
    assert "001" in m.user_map_
    assert "1" not in m.user_map_
    assert m.predict(["001"], ["1"]).shape == (1,)


def test_same_options_give_the_same_model(ratings, tmp_path):
    for name in ("a.npz", "b.npz"):
        run("train", ratings, "-o", tmp_path / name, "--epochs", 3, "--seed", 5, catch=False)
    a, b = (MatrixFactorization.load(tmp_path / n) for n in ("a.npz", "b.npz"))
    assert np.array_equal(a.user_factors_, b.user_factors_)
    assert a.seed_ == 5


def test_options_reach_the_estimator(ratings, tmp_path):
    model = tmp_path / "m.npz"
    args = [
        "--solver", "minibatch", "--factors", 3, "--epochs", 2, "--lr", 0.05, "--reg", 0.1,
        "--reg-bias", 0.01, "--batch-size", 16, "--optimizer", "momentum", "--momentum", 0.5,
        "--no-bias", "--dtype", "float64",
    ]  # fmt: skip
    run("train", ratings, "-o", model, *args, catch=False)
    m = MatrixFactorization.load(model)
    got = {k: getattr(m, k) for k in ("solver", "lr", "reg", "reg_bias", "batch_size")}
    assert got == {
        "solver": "minibatch",
        "lr": 0.05,
        "reg": 0.1,
        "reg_bias": 0.01,
        "batch_size": 16,
    }
    assert (m.optimizer, m.momentum, m.use_bias, m.dtype) == ("momentum", 0.5, False, "float64")
    assert m.user_factors_.dtype == np.float64
    assert not m.user_bias_.any()


def test_bgd_with_line_search(ratings, tmp_path):
    args = ["--solver", "bgd", "--line-search", "--epochs", 2, "--factors", 2]
    result = run("train", ratings, "-o", tmp_path / "m.npz", *args, catch=False)
    assert result.output.startswith("bgd: 2 epochs")
    assert MatrixFactorization.load(tmp_path / "m.npz").line_search is True


def test_validation_fraction_history_and_early_stopping(ratings, tmp_path):
    history = tmp_path / "out" / "history.csv"
    args = ["--validation", 0.3, "--patience", 2, "--epochs", 60, "--lr", 0.1, "--reg", 0]
    result = run(
        "train", ratings, "-o", tmp_path / "m.npz", "--history", history, "--factors", 10, *args,
        catch=False,
    )  # fmt: skip
    m = MatrixFactorization.load(tmp_path / "m.npz")
    assert result.output == (
        f"sgd: {m.n_epochs_} epochs (early stop, best {m.best_epoch_}), "
        f"train RMSE {m.train_rmse_:.4f}, validation RMSE {m.validation_rmse_:.4f}, "
        + result.output.rsplit(", ", 1)[1]
    )
    h = pd.read_csv(history)
    assert list(h.columns) == [
        "epoch", "objective", "train_rmse", "validation_rmse", "seconds", "eval_seconds",
        "updates",
    ]  # fmt: skip
    assert len(h) == m.n_epochs_ + 1
    assert [p.name for p in history.parent.iterdir()] == ["history.csv"]


def test_validation_file_read_with_the_same_loader_options(ratings, tmp_path):
    val = tmp_path / "val.tsv"
    val.write_text("001\t1\t4\n002\t2\t3\nnobody\t3\t5\n")
    train_tsv = tmp_path / "train.tsv"
    pd.read_csv(ratings, dtype=str).to_csv(train_tsv, sep="\t", header=False, index=False)
    args = ["--sep", "tab", "--no-header", "--validation", val, "--epochs", 2]
    result = run("train", train_tsv, "-o", tmp_path / "m.npz", *args, catch=False)
    assert ", validation RMSE " in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--factors", "0"], "--factors 0: must be >= 1"),
        (["--epochs", "-2"], "--epochs -2: must be >= 1"),
        (["--lr", "-1"], "--lr -1.0: must be > 0"),
        (["--reg-bias", "-0.5"], "--reg-bias -0.5: must be >= 0"),
        (["--batch-size", "0"], "--batch-size 0: must be >= 1"),
        (["--momentum", "1"], "--momentum 1.0: must be in [0, 1)"),
        (["--line-search"], "--line-search: only the bgd solver has one, not sgd"),
        (["--patience", "3"], "--patience 3: early stopping needs validation (a fraction or data)"),
        (["--validation", "1.5"], "--validation '1.5': a fraction must be between 0 and 1"),
        (["--validation", "0"], "--validation '0': a fraction must be between 0 and 1"),
    ],
)
def test_bad_parameters_are_one_line_usage_errors(ratings, tmp_path, args, message):
    model = tmp_path / "m.npz"
    result = run("train", ratings, "-o", model, *args)
    assert result.exit_code == 2
    assert result.output == f"Error: {message}\n"
    assert not model.exists()


def test_validation_file_sharing_no_user_and_item(ratings, tmp_path):
    val = tmp_path / "val.csv"
    val.write_text("user,item,rating\nnobody,1,4\n")
    result = run("train", ratings, "-o", tmp_path / "m.npz", "--validation", val)
    assert result.exit_code == 2
    assert result.output == (
        f"Error: --validation '{val}': none of its 1 ratings has a user and an item seen in "
        "training\n"
    )


def test_missing_validation_file(ratings, tmp_path):
    result = run("train", ratings, "-o", tmp_path / "m.npz", "--validation", "nope.csv")
    assert result.exit_code == 2
    assert result.output == "Error: nope.csv: no such file\n"


def test_unknown_solver_is_refused_by_click(ratings, tmp_path):
    result = run("train", ratings, "-o", tmp_path / "m.npz", "--solver", "foo")
    assert result.exit_code == 2
    assert "Invalid value for '--solver': 'foo' is not one of 'sgd', 'bgd'" in result.output


def test_divergence_is_an_error_and_keeps_an_existing_model(ratings, tmp_path):
    model = tmp_path / "m.npz"
    run("train", ratings, "-o", model, "--epochs", 1, catch=False)
    before = model.read_bytes()
    result = run("train", ratings, "-o", model, "--lr", 50)
    assert result.exit_code == 1
    assert result.output == (
        "Error: sgd diverged at epoch 1 (objective nan) with lr=50: try a smaller --lr, e.g. 5\n"
    )
    assert model.read_bytes() == before


def test_output_is_required(ratings):
    result = run("train", ratings)
    assert result.exit_code == 2
    assert "Missing option '-o' / '--output'" in result.output


def test_help_lists_the_options_and_their_defaults():
    result = run("train", "--help", catch=False)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for option in ("--solver", "--validation FRACTION|FILE", "--patience N", "--history FILE"):
        assert option in text
    assert f"Latent dimensions. [default: {DEFAULT_FACTORS}]" in text
    assert f"L2 penalty on the factors. [default: {DEFAULT_REG}]" in text
    assert f"L2 penalty on the biases. [default: {DEFAULT_REG_BIAS}]" in text
    defaults = SolverParams()
    assert f"(minibatch). [default: {defaults.batch_size}]" in text
    assert f"in [0, 1). [default: {defaults.momentum}]" in text


def test_choices_match_the_library():
    assert SOLVER_NAMES == tuple(SOLVERS)
    assert OPTIMIZER_NAMES == tuple(OPTIMIZERS)
