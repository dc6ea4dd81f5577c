"""The shared epoch loop: history, callback, early stopping, divergence, reproducibility."""

from __future__ import annotations

import io
import logging
import re
import sys

import numpy as np
import pytest
from builders import Exploding

from mfrec.errors import DivergenceError, ParameterError
from mfrec.progress import ProgressBar
from mfrec.training import objective
from mfrec.training.solvers import SOLVERS
from mfrec.training.solvers.base import Solver
from mfrec.training.state import Factors, SolverParams, TrainSet
from mfrec.training.trainer import train

COLUMNS = ["epoch", "objective", "train_rmse", "validation_rmse", "seconds", "eval_seconds"]


def planted(seed: int = 1, n_users: int = 30, n_items: int = 20, dtype=np.float32) -> TrainSet:
    """About half of a rank-2 rating matrix on a 1-5 scale, with a little noise."""
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.5)
    P = rng.normal(size=(n_users, 2))
    Q = rng.normal(size=(n_items, 2))
    r = 3 + np.einsum("nk,nk->n", P[users], Q[items]) + rng.normal(0, 0.3, len(users))
    return TrainSet(
        users.astype(np.int32),
        items.astype(np.int32),
        np.clip(np.round(r), 1, 5).astype(dtype),
        n_users,
        n_items,
    )


def halves(data: TrainSet) -> tuple[TrainSet, TrainSet]:
    """Even-numbered ratings for training, odd ones for validation, over the same indices."""

    def take(rows: slice) -> TrainSet:
        return TrainSet(
            data.users[rows], data.items[rows], data.ratings[rows], data.n_users, data.n_items
        )

    return take(slice(0, None, 2)), take(slice(1, None, 2))


class Scripted(Solver):
    """Sets every user bias to SHIFTS[epoch] and the factors to zero: r̂ = mu + shift.

    Against validation ratings all one above mu, validation RMSE is |1 - shift|: it improves
    until epoch 3, then worsens.
    """

    name = "scripted"
    default_lr = 0.1
    default_epochs = 4
    SHIFTS = (0.5, 0.8, 0.9, 0.7, 0.6, 0.4, 0.3, 0.2)

    def run_epoch(self, epoch: int) -> int:
        self.factors.P[:] = 0
        self.factors.Q[:] = 0
        self.factors.bu[:] = self.SHIFTS[epoch]
        return 7


def constant(value: float, n_users: int = 4, n_items: int = 3) -> TrainSet:
    """Every (user, item) pair rated `value`."""
    users, items = np.divmod(np.arange(n_users * n_items, dtype=np.int32), n_items)
    ratings = np.full(len(users), value, dtype=np.float64)
    return TrainSet(users.astype(np.int32), items.astype(np.int32), ratings, n_users, n_items)


# -- history ---------------------------------------------------------------------------------


def test_history_has_a_row_per_epoch_after_the_starting_point():
    data, val = halves(planted())
    result = train(data, "sgd", factors=3, epochs=4, seed=0, validation=val)
    h = result.history
    assert list(h.columns) == [*COLUMNS, "updates"]
    assert h["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert h["updates"].tolist() == [0, *(len(data) * e for e in range(1, 5))]
    assert h["seconds"].is_monotonic_increasing
    assert h["eval_seconds"].is_monotonic_increasing
    assert h["objective"].iloc[-1] < h["objective"].iloc[0]
    assert result.n_epochs == 4
    assert result.best_epoch == 4
    assert result.stop_reason == "epochs"
    assert not result.stopped_early


def test_history_figures_are_those_of_the_objective_module():
    data, val = halves(planted())
    params = SolverParams(reg=0.05, reg_bias=0.01)
    result = train(data, "sgd", params, factors=3, epochs=2, seed=0, validation=val)
    last = result.history.iloc[-1]
    f = result.factors
    assert last["objective"] == objective.objective(f, data, 0.05, 0.01)
    assert last["train_rmse"] == objective.rmse(f, data)
    assert last["validation_rmse"] == objective.rmse(f, val)


def test_no_validation_column_without_validation():
    result = train(planted(), "sgd", factors=2, epochs=1, seed=0)
    assert list(result.history.columns) == [c for c in COLUMNS if c != "validation_rmse"] + [
        "updates"
    ]


def test_epochs_default_to_the_solver_default():
    result = train(constant(3.0), Scripted, factors=2, seed=0)
    assert result.n_epochs == Scripted.default_epochs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_factors_take_the_dtype_of_the_ratings(dtype):
    result = train(planted(dtype=dtype), "sgd", factors=2, epochs=1, seed=0)
    f = result.factors
    assert {f.P.dtype, f.Q.dtype, f.bu.dtype, f.bi.dtype} == {np.dtype(dtype)}


def test_mu_is_the_training_mean_and_zero_without_bias():
    data = planted()
    assert train(data, Scripted, factors=2, epochs=1).factors.mu == pytest.approx(
        float(data.ratings.mean())
    )
    f = train(data, "sgd", factors=2, epochs=1, use_bias=False).factors
    assert f.mu == 0.0
    assert not f.bu.any()
    assert not f.bi.any()


# -- callback and early stopping --------------------------------------------------------------


def test_callback_sees_each_row_and_can_stop_training():
    seen = []

    def callback(epoch, row):
        seen.append((epoch, row["epoch"], row["updates"]))
        return epoch == 3

    result = train(constant(3.0), Scripted, factors=2, epochs=8, callback=callback)
    assert seen == [(1, 1, 7), (2, 2, 14), (3, 3, 21)]
    assert result.history["epoch"].iloc[-1] == 3
    assert result.stop_reason == "callback"
    assert result.best_epoch == 3


def test_early_stopping_restores_the_best_epoch():
    val = constant(4.0)
    result = train(constant(3.0), Scripted, factors=2, epochs=8, validation=val, patience=2)
    h = result.history
    assert h["validation_rmse"].iloc[1:].tolist() == pytest.approx([0.5, 0.2, 0.1, 0.3, 0.4])
    # Epochs 4 and 5 fail to beat epoch 3: patience 2 stops after epoch 5.
    assert h["epoch"].tolist() == [0, 1, 2, 3, 4, 5]
    assert result.stop_reason == "patience"
    assert result.stopped_early
    assert result.best_epoch == 3
    assert np.all(result.factors.bu == 0.9)
    assert objective.rmse(result.factors, val) == pytest.approx(0.1)


def test_patience_keeps_the_best_epoch_even_when_all_epochs_run():
    val = constant(4.0)
    result = train(constant(3.0), Scripted, factors=2, epochs=5, validation=val, patience=3)
    assert result.stop_reason == "epochs"
    assert result.best_epoch == 3
    assert np.all(result.factors.bu == 0.9)


def test_patience_needs_validation():
    with pytest.raises(ParameterError, match=r"^patience=2: early stopping needs validation data$"):
        train(constant(3.0), Scripted, factors=2, patience=2)


def test_validation_must_share_the_indices():
    with pytest.raises(ValueError, match="validation covers 5 users and 3 items, train 4 and 3"):
        train(constant(3.0), Scripted, factors=2, validation=constant(3.0, n_users=5))


def test_empty_training_set_is_refused():
    empty = TrainSet(np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0), 0, 0)
    with pytest.raises(ValueError, match=r"^train: no ratings to train on$"):
        train(empty, Scripted, factors=2)


# -- divergence --------------------------------------------------------------------------------


def test_absurd_learning_rate_raises_divergence_error_naming_solver_and_lr():
    with pytest.raises(DivergenceError) as info:
        train(planted(), "sgd", SolverParams(lr=5.0), factors=5, epochs=10, seed=0)
    assert str(info.value) == (
        "sgd diverged at epoch 1 (objective nan) with lr=5: try a smaller --lr, e.g. 0.5"
    )


def test_runaway_but_finite_objective_counts_as_divergence():
    params = SolverParams(reg=0.02, reg_bias=0.02)
    with pytest.raises(DivergenceError) as info:
        train(planted(), Exploding, params, factors=2, init_std=0.5, seed=0)
    assert str(info.value) == (
        "exploding diverged at epoch 2 (objective 9.86e+06, up from 1.88) "
        "with lr=0.25: try a smaller --lr, e.g. 0.025"
    )
    # The error carries the finite history before the blow-up: the start and epoch 1.
    assert info.value.history["epoch"].tolist() == [0, 1]
    assert np.isfinite(info.value.history["objective"]).all()


def test_a_start_that_fits_the_data_does_not_make_ordinary_epochs_look_divergent():
    # mu fits constant ratings, so J at the start is ~0; epoch 8 (shift 0.2) is far from it
    # but nowhere near the mean squared rating.
    result = train(constant(3.0), Scripted, factors=2, epochs=8, init_std=1e-6)
    assert result.history["objective"].iloc[0] < 1e-9
    assert result.n_epochs == 8


def test_divergence_without_learning_rate_suggests_more_regularization():
    class NoRate(Exploding):
        name = "norate"
        default_lr = 0.0

    params = SolverParams(reg=0.03)
    with pytest.raises(DivergenceError, match=r"with reg=0\.03: try a larger --reg$"):
        train(planted(), NoRate, params, factors=2, init_std=0.5, seed=0)


# -- randomness --------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_same_seed_gives_bit_identical_factors(solver):
    data, val = halves(planted())
    runs = [train(data, solver, factors=3, epochs=3, seed=42, validation=val) for _ in range(2)]
    a, b = (r.factors for r in runs)
    for name in ("P", "Q", "bu", "bi"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    figures = ["epoch", "objective", "train_rmse", "validation_rmse", "updates"]
    assert runs[0].history[figures].equals(runs[1].history[figures])


def test_another_seed_gives_other_factors():
    a = train(planted(), "sgd", factors=3, epochs=2, seed=1).factors
    b = train(planted(), "sgd", factors=3, epochs=2, seed=2).factors
    assert not np.array_equal(a.P, b.P)


def test_every_solver_starts_from_the_same_point():
    data = planted()
    start = {
        s: train(data, s, factors=3, epochs=1, seed=7).history["objective"].iloc[0] for s in SOLVERS
    }
    assert len(set(start.values())) == 1


def test_start_draws_p_then_q_from_the_seeded_generator_which_the_solver_then_gets():
    class Recorder(Solver):
        name = "recorder"
        default_lr = 0.1

        def __init__(self, factors, train, params, rng):
            super().__init__(factors, train, params, rng)
            self.start = factors.copy()
            self.next_draw = rng.random()

        def run_epoch(self, epoch):
            Recorder.last = self
            return 0

    data = planted()
    train(data, Recorder, factors=3, epochs=1, init_std=0.2, seed=5)
    rng = np.random.default_rng(5)
    expected = Factors.initial(
        data.n_users,
        data.n_items,
        3,
        mu=1.0,
        use_bias=True,
        init_std=0.2,
        dtype=np.float32,
        rng=rng,
    )
    assert np.array_equal(Recorder.last.start.P, expected.P)
    assert np.array_equal(Recorder.last.start.Q, expected.Q)
    assert Recorder.last.next_draw == rng.random()


# -- progress and logging ----------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_shows_the_epoch_and_figures(monkeypatch):
    fake = Terminal()
    monkeypatch.setattr(sys, "stderr", fake)
    data, val = halves(planted())
    train(data, "sgd", factors=2, epochs=3, seed=0, validation=val, progress=True)
    out = fake.getvalue()
    assert "\rsgd [" in out
    last = out.rstrip().rsplit("\r", 1)[1]
    assert re.fullmatch(r"sgd \[#{20}\] 100% 3/3 J=[\d.]+ RMSE train [\d.]{6} val [\d.]{6}", last)
    assert out.endswith("\n")


def test_no_progress_bar_when_off_or_not_a_terminal(monkeypatch):
    fake = Terminal()
    monkeypatch.setattr(sys, "stderr", fake)
    train(planted(), "sgd", factors=2, epochs=2, seed=0, progress=False)
    assert fake.getvalue() == ""
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    train(planted(), "sgd", factors=2, epochs=2, seed=0, progress=True)
    assert plain.getvalue() == ""


def test_progress_bar_renders_fraction_count_and_status():
    bar = ProgressBar(4, "load", stream=Terminal())
    bar.update(1)
    assert bar.render("x") == "load [#####...............]  25% 1/4 x"
    assert ProgressBar(None, fmt="{:.0f} B".format).render() == "0 B"


def test_epoch_timings_are_logged(caplog):
    with caplog.at_level(logging.INFO, logger="mfrec.training.trainer"):
        train(planted(), "sgd", factors=2, epochs=2, seed=0)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("sgd epoch 2: J=") and "s solver" in m for m in messages)
    assert any(m.startswith("sgd: 2 epochs (epochs), best epoch 2") for m in messages)
