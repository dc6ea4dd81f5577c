"""`mfrec compare`: the report folder, stdout formats, and one-line errors with exit codes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from mfrec.cli import cli
from mfrec.cli.compare_cmd import DEFAULTS
from mfrec.experiments import compare as lib
from mfrec.ratings.synth import synthesize
from mfrec.training.state import DEFAULT_FACTORS, DEFAULT_REG, DEFAULT_REG_BIAS

FAST = ["--factors", "4", "--budget-epochs", "6"]
RATES = ["--lr", "sgd=0.02,minibatch=1,bgd=20"]


@pytest.fixture(scope="module")
def ratings(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    synthesize(80, 50, 2000, seed=3).ratings.to_csv(path, index=False)
    return path


def run(*args, catch=True):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=catch)


def test_compare_writes_the_report_and_prints_the_table(ratings, tmp_path):
    out = tmp_path / "report"
    result = run("compare", ratings, "-o", out, *FAST, catch=False)
    assert result.exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "convergence.png",
        "curves.csv",
        "report.md",
        "summary.json",
    ]
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["solver", "batch", "size", "lr"]
    assert [line.split()[0] for line in lines[2:6]] == ["sgd", "minibatch", "minibatch", "bgd"]
    assert any(line.startswith("- Per epoch, ") for line in lines)
    assert f"report: {out / 'report.md'}" in result.stderr
    assert f"plot:   {out / 'convergence.png'}" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["setup"]["source"] == str(ratings)
    assert summary["setup"]["budget"]["epochs"] == 6
    assert all(r["lr_source"] == "search" for r in summary["runs"])


def test_options_reach_the_comparison(ratings, tmp_path):
    args = [
        "--solvers", "bgd,minibatch,als", "--batch-sizes", "32", "--lr", "bgd=10,minibatch=0.5",
        "--reg", "0.05", "--reg-bias", "0.01", "--repeats", "2", "--seed", "7",
        "--test-size", "0.25", "--dtype", "float64", "--optimizer", "momentum",
    ]  # fmt: skip
    out = tmp_path / "r"
    run("compare", ratings, "-o", out, "-q", *FAST, *args, catch=False)
    summary = json.loads((out / "summary.json").read_text())
    setup = summary["setup"]
    assert [r["run"] for r in summary["runs"]] == ["bgd", "minibatch-32", "als"]
    assert [r["lr"] for r in summary["runs"]] == [10.0, 0.5, None]
    assert [r["optimizer"] for r in summary["runs"]] == ["momentum", "momentum", None]
    assert (setup["reg"], setup["reg_bias"], setup["factors"]) == (0.05, 0.01, 4)
    assert (setup["repeats"], setup["seeds"], setup["dtype"]) == (2, [7, 8], "float64")
    assert setup["n_validation"] <= 500 < setup["n_train"]
    curves = pd.read_csv(out / "curves.csv")
    assert sorted(curves["repeat"].unique()) == [1, 2]


@pytest.mark.slow
def test_budget_seconds(ratings, tmp_path):
    out = tmp_path / "r"
    result = run("compare", ratings, "-o", out, "-q", "--factors", 4, "--budget-seconds", 0.03,
                 *RATES, catch=False)  # fmt: skip
    assert result.exit_code == 0
    curves = pd.read_csv(out / "curves.csv")
    last = curves.groupby("run")["seconds"].max()
    assert (last >= 0.03).all() and (last < 0.03 + 0.25).all()


def test_validation_file(ratings, tmp_path):
    frame = pd.read_csv(ratings, dtype=str)
    frame.iloc[::5].to_csv(tmp_path / "val.csv", index=False)
    frame.drop(frame.index[::5]).to_csv(tmp_path / "train.csv", index=False)
    out = tmp_path / "r"
    run("compare", tmp_path / "train.csv", "--validation", tmp_path / "val.csv", "-o", out, "-q",
        *FAST, *RATES, catch=False)  # fmt: skip
    setup = json.loads((out / "summary.json").read_text())["setup"]
    assert setup["n_train"] == 1600
    assert setup["validation"].startswith(f"the ratings of {tmp_path / 'val.csv'}")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_machine_readable_stdout(ratings, tmp_path, fmt):
    out = tmp_path / "r"
    result = run("compare", ratings, "-o", out, "-q", "--format", fmt, *FAST, *RATES, catch=False)
    assert result.stderr == ""
    if fmt == "json":
        assert json.loads(result.stdout) == json.loads((out / "summary.json").read_text())
    else:
        from io import StringIO

        frame = pd.read_csv(StringIO(result.stdout))
        assert list(frame["run"]) == ["sgd", "minibatch-64", "minibatch-1024", "bgd"]
        assert "best_validation_rmse_sd" in frame.columns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--solvers", "sgd,newton"],
         "--solvers 'newton': unknown solver; choose from sgd, bgd, minibatch, als"),
        (["--solvers", ","], "--solvers '': name at least one solver"),
        (["--budget-epochs", "0"], "--budget-epochs 0: must be >= 1"),
        (["--budget-seconds", "0"], "--budget-seconds 0: must be > 0"),
        (["--budget-epochs", "5", "--budget-seconds", "1"],
         "--budget-seconds 1: give a budget in epochs or in seconds, not both"),
        (["--lr", "sgd:0.1"],
         "--lr 'sgd:0.1': expected NAME=VALUE pairs separated by commas, e.g. sgd=0.01,bgd=0.5"),
        (["--lr", "sgd=0.1,"],
         "--lr 'sgd=0.1,': expected NAME=VALUE pairs separated by commas, e.g. sgd=0.01,bgd=0.5"),
        (["--lr", "sgd=fast"], "--lr 'sgd=fast': 'fast' is not a number"),
        (["--lr", "adam=0.1"],
         "--lr 'adam': no run of that name; the runs are sgd, minibatch-64, minibatch-1024, bgd"),
        (["--lr", "sgd=0"], "--lr 'sgd=0.0': a learning rate must be a number > 0"),
        (["--batch-sizes", "64,big"], "--batch-sizes '64,big': 'big' is not an integer"),
        (["--batch-sizes", "0"], "--batch-sizes 0: must be >= 1"),
        (["--solvers", "sgd", "--batch-sizes", "64,128"],
         "--batch-sizes 64,128: only minibatch takes batch sizes; add it to solvers"),
        (["--repeats", "0"], "--repeats 0: must be >= 1"),
        (["--reg", "-1"], "--reg -1: must be >= 0"),
        (["--test-size", "1.5"], "--test-size 1.5: must be in (0, 1)"),
        (["--seed", "-1"], "--seed -1: must be an int >= 0, a Generator or None"),
    ],
)  # fmt: skip
def test_bad_options_are_one_line_errors(ratings, tmp_path, args, message):
    result = run("compare", ratings, "-o", tmp_path / "r", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: {message}\n"
    assert not (tmp_path / "r").exists()


def test_missing_ratings_file(tmp_path):
    result = run("compare", tmp_path / "nope.csv", "-o", tmp_path / "r")
    assert result.exit_code != 0
    assert result.stderr.startswith("Error: ")
    assert "nope.csv" in result.stderr


def test_help_defaults_are_the_library_defaults():
    assert DEFAULTS == {
        "solvers": ",".join(lib.DEFAULT_SOLVERS),
        "batch_sizes": ",".join(map(str, lib.DEFAULT_BATCH_SIZES)),
        "budget_epochs": lib.DEFAULT_BUDGET_EPOCHS,
        "test_size": lib.DEFAULT_TEST_SIZE,
        "factors": DEFAULT_FACTORS,
        "reg": DEFAULT_REG,
        "reg_bias": DEFAULT_REG_BIAS,
    }
    result = run("compare", "--help")
    assert result.exit_code == 0
    assert "Compare SGD, mini-batch and full-batch gradient descent" in result.stdout
    for option in ("--budget-seconds", "--lr NAME=VALUE,...", "--repeats", "--validation FILE"):
        assert option in result.stdout
