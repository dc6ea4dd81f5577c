"""The history stays plain numpy columns; its DataFrame is built only when a user asks for it.

Fitting, saving and `mfrec train` must not import pandas (a quarter of a second at start-up),
yet `TrainResult.history`, `MatrixFactorization.history_` and `DivergenceError.history` are
the same DataFrames as when the trainer built them eagerly.
"""

from __future__ import annotations

import ast
import inspect
import io
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from builders import Exploding
from click.testing import CliRunner

from mfrec.cli import cli, train_cmd
from mfrec.cli.train_cmd import _write_history
from mfrec.errors import DivergenceError
from mfrec.model import estimator, modelfile
from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.idmap import IdMap
from mfrec.ratings.ratingdata import RatingData
from mfrec.training import trainer
from mfrec.training.state import TrainSet
from mfrec.training.trainer import History, train

COLUMNS = [
    "epoch", "objective", "train_rmse", "validation_rmse", "seconds", "eval_seconds", "updates",
]  # fmt: skip


def planted(seed: int = 3, n_users: int = 40, n_items: int = 30) -> TrainSet:
    """About half of a rank-2 rating matrix on a 1-5 scale."""
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.5)
    P, Q = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    r = np.clip(np.round(3 + np.einsum("nk,nk->n", P[users], Q[items])), 1, 5)
    return TrainSet(
        users.astype(np.int32), items.astype(np.int32), r.astype(np.float32), n_users, n_items
    )


def halves(data: TrainSet) -> tuple[TrainSet, TrainSet]:
    def take(rows: slice) -> TrainSet:
        return TrainSet(
            data.users[rows], data.items[rows], data.ratings[rows], data.n_users, data.n_items
        )

    return take(slice(0, None, 2)), take(slice(1, None, 2))


def rating_data(seed: int = 3) -> RatingData:
    data = planted(seed)
    user_map = IdMap(np.array([f"u{u}" for u in range(data.n_users)]))
    item_map = IdMap(np.array([str(i) for i in range(data.n_items)]))
    return RatingData(
        data.users, data.items, data.ratings.astype(np.float64), user_map, item_map, (1.0, 5.0)
    )


@pytest.fixture
def rows_seen(monkeypatch):
    """The rows the trainer turns into each History, to build the DataFrame the old way."""
    seen: list[list[dict[str, float]]] = []
    from_rows = History.from_rows.__func__

    def spy(cls, rows):
        seen.append([dict(row) for row in rows])
        return from_rows(cls, rows)

    monkeypatch.setattr(History, "from_rows", classmethod(spy))
    return seen


@pytest.fixture
def no_frames(monkeypatch):
    """Make building a history DataFrame fail, to show a path never does it."""

    def refuse(self):
        raise AssertionError("the history DataFrame was built")

    monkeypatch.setattr(History, "to_frame", refuse)


# -- the same DataFrames as before -------------------------------------------------------------


@pytest.mark.parametrize(
    "solver", ["sgd", "bgd", pytest.param("minibatch", marks=pytest.mark.slow), "als"]
)
def test_history_frame_is_the_one_the_rows_gave(rows_seen, solver):
    fit, held_out = halves(planted())
    result = train(fit, solver, factors=3, epochs=3, seed=2, validation=held_out, patience=2)
    rows = rows_seen[-1]
    # What the trainer built at the end of training before the history became lazy.
    before = pd.DataFrame(rows, columns=list(rows[0]))
    pd.testing.assert_frame_equal(result.history, before, check_exact=True)
    assert list(result.history.columns) == COLUMNS
    assert {c: str(t) for c, t in result.history.dtypes.items()} == {
        c: "int64" if c in ("epoch", "updates") else "float64" for c in COLUMNS
    }
    assert result.history is result.history  # built once
    assert result.n_epochs == int(before["epoch"].iloc[-1])


def test_divergence_history_is_the_one_the_rows_gave(rows_seen):
    with pytest.raises(DivergenceError) as info:
        train(planted(), Exploding, factors=2, seed=0)
    rows = rows_seen[-1]
    pd.testing.assert_frame_equal(info.value.history, pd.DataFrame(rows), check_exact=True)
    assert len(info.value.history) == len(rows) > 1


def test_history_of_a_frame_keeps_the_frame():
    frame = pd.DataFrame({"epoch": [0, 1], "train_rmse": [1.5, math.nan]})
    history = History.of(frame)
    assert history.to_frame() is frame
    assert len(history) == 2
    assert history.row(1)["epoch"] == 1 and math.isnan(history.row(1)["train_rmse"])
    assert History.of(history) is history


def test_an_empty_history_gives_the_frame_of_no_rows():
    pd.testing.assert_frame_equal(History.from_rows([]).to_frame(), pd.DataFrame([]))
    assert len(History.from_rows([])) == 0


# -- consumers read the columns ------------------------------------------------------------------


def test_fitted_figures_are_those_of_the_history_frame():
    data = rating_data()
    m = MatrixFactorization(factors=3, epochs=8, lr=0.05, validation=0.3, patience=1, seed=1)
    m.fit(data)
    assert m.history_data_._frame is None
    h = m.history_
    # What set_fitted and describe computed from the DataFrame before.
    best = h.loc[h["epoch"] == m.best_epoch_].iloc[0]
    assert m.n_epochs_ == int(h["epoch"].iloc[-1])
    assert m.train_rmse_ == float(best["train_rmse"])
    assert m.validation_rmse_ == float(best["validation_rmse"])
    info = m.describe()
    figures = ["objective", "train_rmse", "validation_rmse"]
    assert info["final"] == {c: float(h[c].iloc[-1]) for c in figures}
    assert info["best"] == {c: float(best[c]) for c in figures}
    assert info["seconds"] == float(h["seconds"].iloc[-1])


def test_fit_save_load_and_describe_build_no_frame(no_frames, tmp_path):
    m = MatrixFactorization(factors=3, epochs=2, seed=1).fit(rating_data())
    m.save(tmp_path / "m.npz")
    back = MatrixFactorization.load(tmp_path / "m.npz")
    assert back.describe()["final"] == m.describe()["final"]
    assert back.n_epochs_ == m.n_epochs_ == 2


def test_from_factors_history():
    m = MatrixFactorization.from_factors(
        np.ones((1, 2)), np.ones((1, 2)), ["u"], ["i"], scale=(1, 5)
    )
    pd.testing.assert_frame_equal(
        m.history_, pd.DataFrame({"epoch": [0], "train_rmse": [math.nan]}), check_exact=True
    )
    assert (m.n_epochs_, m.best_epoch_) == (0, 0)
    assert math.isnan(m.train_rmse_) and math.isnan(m.validation_rmse_)


def test_saved_and_loaded_history_is_the_same_frame(tmp_path):
    m = MatrixFactorization(factors=3, epochs=3, validation=0.2, seed=4).fit(rating_data())
    m.save(tmp_path / "m.npz")
    back = MatrixFactorization.load(tmp_path / "m.npz")
    assert back.history_data_._frame is None
    pd.testing.assert_frame_equal(back.history_, m.history_, check_exact=True)
    assert list(back.history_.columns) == COLUMNS


def test_a_model_without_a_fit_has_no_history():
    with pytest.raises(AttributeError, match="not fitted"):
        _ = MatrixFactorization().history_
    assert not hasattr(MatrixFactorization(), "history_")


# -- mfrec train -----------------------------------------------------------------------------------


@pytest.fixture
def ratings_file(tmp_path):
    data = rating_data()
    path = tmp_path / "ratings.csv"
    lines = [
        f"{data.user_map.ids[u]},{data.item_map.ids[i]},{r:g}"
        for u, i, r in zip(data.users, data.items, data.ratings, strict=True)
    ]
    path.write_text("user,item,rating\n" + "\n".join(lines) + "\n")
    return path


def test_train_command_builds_no_frame(no_frames, ratings_file, tmp_path):
    args = ["train", ratings_file, "-o", tmp_path / "m.npz", "--epochs", 2, "--validation", 0.2]
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output.startswith("sgd: 2 epochs, train RMSE ")
    assert ", validation RMSE " in result.output


def test_history_csv_is_what_pandas_writes(ratings_file, tmp_path):
    csv_path = tmp_path / "history.csv"
    args = ["train", ratings_file, "-o", tmp_path / "m.npz", "--history", csv_path]
    args += ["--epochs", 3, "--validation", 0.2]
    CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    expected = io.StringIO(newline="")
    MatrixFactorization.load(tmp_path / "m.npz").history_.to_csv(expected, index=False)
    assert csv_path.read_bytes().decode() == expected.getvalue()


def test_history_csv_writes_numbers_as_pandas_does(tmp_path):
    columns = {
        "epoch": np.array([0, 1, 2, 3, 4], dtype=np.int64),
        "objective": np.array([1e-5, 0.1, 1e16, 123456789.125, 1 / 3]),
        "validation_rmse": np.array([math.nan, math.inf, -0.0, 2.0, 1e-300]),
        "updates": np.array([0, 2**40, 7, 8, 9], dtype=np.int64),
    }
    _write_history(tmp_path / "h.csv", History(columns))
    expected = io.StringIO(newline="")
    pd.DataFrame(columns).to_csv(expected, index=False)
    assert (tmp_path / "h.csv").read_bytes().decode() == expected.getvalue()


# -- without pandas ------------------------------------------------------------------------------

FIT_AND_SAVE = """
    import sys

    import numpy as np

    from mfrec.ratings.ratingdata import RatingData
    from mfrec.ratings.idmap import IdMap
    from mfrec.model.estimator import MatrixFactorization

    rng = np.random.default_rng(0)
    users = rng.integers(0, 20, 300).astype(np.int32)
    items = rng.integers(0, 15, 300).astype(np.int32)
    ratings = rng.integers(1, 6, 300).astype(np.float64)
    user_map = IdMap(np.array([f"u{u}" for u in range(20)]))
    item_map = IdMap(np.array([f"i{i}" for i in range(15)]))
    data = RatingData(users, items, ratings, user_map, item_map, (1.0, 5.0))
    model = MatrixFactorization(factors=3, epochs=2, seed=0).fit(data)
    model.save(sys.argv[1])
    print("pandas" in sys.modules)
"""


def test_fit_and_save_do_not_import_pandas(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FIT_AND_SAVE), str(tmp_path / "m.npz")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert (tmp_path / "m.npz").exists()
    assert out.stdout.strip() == "False", "fit + save imported pandas"


@pytest.mark.parametrize("module", [trainer, modelfile, estimator, train_cmd])
def test_no_module_level_pandas_import(module):
    # Top-level statements only: imports inside functions and `if TYPE_CHECKING:` are fine.
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        assert not [n for n in names if n.split(".")[0] == "pandas"], module.__name__
