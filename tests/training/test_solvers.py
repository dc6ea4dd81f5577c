"""The four solvers: registry, equivalences, planted recovery, optimizers, reproducibility."""

import numpy as np
import pandas as pd
import pytest
from conftest import ML100K, NOISE, planted

from mfrec.errors import ParameterError
from mfrec.kernels.als import als_half_step
from mfrec.training import objective
from mfrec.training.optimizers import OPTIMIZERS, epoch_lr, optimizer_code
from mfrec.training.solvers import SOLVERS, get_solver
from mfrec.training.solvers.base import Solver
from mfrec.training.state import DEFAULT_FACTORS, DEFAULT_INIT_STD, Factors, SolverParams, TrainSet


def start(train, seed=0, factors=3, use_bias=True):
    """Factors.initial on `train` and the generator it leaves behind for the solver."""
    rng = np.random.default_rng(seed)
    f = Factors.initial(
        train.n_users,
        train.n_items,
        factors,
        mu=float(np.mean(train.ratings)),
        use_bias=use_bias,
        init_std=DEFAULT_INIT_STD,
        dtype=train.ratings.dtype.type,
        rng=rng,
    )
    return f, rng


def fit(name, train, params, epochs, seed=0, **kw):
    """A tiny epoch loop (the real one is the trainer's): returns the factors and J per epoch."""
    f, rng = start(train, seed, **kw)
    solver = get_solver(name)(f, train, params, rng)
    history = [objective.objective(f, train, params.reg, params.reg_bias)]
    for epoch in range(epochs):
        solver.run_epoch(epoch)
        # Read through the solver: sgd copies its working copy back then.
        history.append(objective.objective(solver.factors, train, params.reg, params.reg_bias))
    return solver.factors, np.array(history)


def assert_factors_close(a, b, **tol):
    for name in ("P", "Q", "bu", "bi"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), err_msg=name, **tol)


@pytest.fixture(scope="module")
def data():
    return planted()


# --- registry and parameter checks ---------------------------------------------------------


def test_registry_names_and_classes():
    assert list(SOLVERS) == ["sgd", "bgd", "minibatch", "als"]
    for name, cls in SOLVERS.items():
        assert issubclass(cls, Solver)
        assert cls.name == name
        assert get_solver(name) is cls
        assert cls.default_optimizer in OPTIMIZERS
        assert cls.default_epochs >= 1


@pytest.mark.parametrize("bad", ["SGD", "adam", "", None])
def test_unknown_solver_names_the_allowed_ones(bad):
    with pytest.raises(ParameterError, match=r"must be one of sgd, bgd, minibatch, als$") as err:
        get_solver(bad)
    assert str(err.value).startswith(f"solver={bad!r}: ")
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("name", ["sgd", "bgd", "minibatch"])
def test_unknown_optimizer_is_rejected(name, data):
    f, rng = start(data[0])
    with pytest.raises(
        ParameterError,
        match=r"^optimizer='nesterov': must be one of constant, decay, adagrad, momentum, adam$",
    ):
        get_solver(name)(f, data[0], SolverParams(optimizer="nesterov"), rng)


@pytest.mark.parametrize("size", [0, -3, 2.5])
def test_minibatch_rejects_bad_batch_size(size, data):
    f, rng = start(data[0])
    with pytest.raises(ParameterError, match=rf"^batch_size={size!r}: must be an integer >= 1$"):
        get_solver("minibatch")(f, data[0], SolverParams(batch_size=size), rng)


def test_als_needs_positive_reg(data):
    f, rng = start(data[0])
    with pytest.raises(ParameterError, match=r"^reg=0.0: must be > 0 for solver 'als'$"):
        get_solver("als")(f, data[0], SolverParams(reg=0.0), rng)


def test_optimizer_and_lr_resolve_to_the_solver_defaults(data):
    f, rng = start(data[0])
    bgd = get_solver("bgd")(f, data[0], SolverParams(), rng)
    assert (bgd.optimizer, bgd.lr) == ("adam", get_solver("bgd").default_lr)
    sgd = get_solver("sgd")(f, data[0], SolverParams(optimizer="momentum", lr=0.5), rng)
    assert (sgd.optimizer, sgd.lr) == ("momentum", 0.5)
    assert sgd.opt.code == optimizer_code("momentum")


def test_decay_schedule():
    assert epoch_lr(0.1, "decay", 0.5, 0) == pytest.approx(0.1)
    assert epoch_lr(0.1, "decay", 0.5, 4) == pytest.approx(0.1 / 3)
    assert epoch_lr(0.1, "constant", 0.5, 4) == 0.1


# --- equivalences --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_minibatch_of_one_is_sgd(dtype, optimizer):
    train = planted(dtype, n_users=40, n_items=30)[0]
    params = SolverParams(lr=0.01, optimizer=optimizer, decay=0.5, batch_size=1)
    sgd, _ = fit("sgd", train, params, epochs=2)
    mini, _ = fit("minibatch", train, params, epochs=2)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-12}
    assert_factors_close(sgd, mini, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("use_bias", [True, False])
def test_minibatch_of_everything_is_bgd(dtype, optimizer, use_bias, data):
    train = data[0] if dtype == np.float32 else planted(dtype)[0]
    lr = {"constant": 50.0, "decay": 50.0, "momentum": 5.0}.get(optimizer, 0.01)
    params = SolverParams(lr=lr, optimizer=optimizer, decay=0.5, batch_size=len(train))
    bgd, _ = fit("bgd", train, params, epochs=3, use_bias=use_bias)
    mini, _ = fit("minibatch", train, params, epochs=3, use_bias=use_bias)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-12}
    assert_factors_close(bgd, mini, **tol)
    start_f, _ = start(train, use_bias=use_bias)
    assert not np.allclose(bgd.P, start_f.P)


# --- convergence ---------------------------------------------------------------------------

# Epochs for the planted problem (9.5k ratings); lr and optimizer are each solver's defaults.
PLANTED_EPOCHS = {"sgd": 60, "bgd": 200, "minibatch": 60, "als": 10}


@pytest.mark.parametrize("name", list(SOLVERS))
def test_recovers_planted_low_rank_data(name, data):
    train, test = data
    # batch_size: the default 1024 is 9 steps per epoch on this small set
    params = SolverParams(reg=0.01, reg_bias=0.01, batch_size=32)
    f, history = fit(name, train, params, PLANTED_EPOCHS[name])
    assert history[-1] < 0.1 * history[0]
    assert objective.rmse(f, test) < 1.3 * NOISE


@pytest.mark.parametrize("name", ["sgd", "minibatch", "bgd"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_optimizer_decreases_j(name, optimizer, data):
    lr = {
        "constant": {"sgd": 0.01, "minibatch": 5.0, "bgd": 200.0},
        "decay": {"sgd": 0.01, "minibatch": 5.0, "bgd": 200.0},
        "momentum": {"sgd": 0.001, "minibatch": 0.5, "bgd": 5.0},
        "adagrad": {"sgd": 0.03, "minibatch": 0.03, "bgd": 0.03},
        "adam": {"sgd": 0.003, "minibatch": 0.003, "bgd": 0.03},
    }[optimizer][name]
    params = SolverParams(lr=lr, optimizer=optimizer, decay=0.1, batch_size=256)
    _, history = fit(name, data[0], params, epochs=8)
    assert np.all(np.diff(history) < 0), history
    assert history[-1] < 0.8 * history[0]


@pytest.mark.parametrize("name", list(SOLVERS))
def test_without_bias_biases_stay_zero(name, data):
    f, history = fit(name, data[0], SolverParams(batch_size=256), epochs=3, use_bias=False)
    assert f.mu == 0.0
    np.testing.assert_array_equal(f.bu, 0.0)
    np.testing.assert_array_equal(f.bi, 0.0)
    assert history[-1] < history[0]


@pytest.mark.parametrize("name", list(SOLVERS))
def test_same_seed_gives_bit_identical_factors(name, data):
    params = SolverParams(batch_size=256)
    a, _ = fit(name, data[0], params, epochs=3, seed=7)
    b, _ = fit(name, data[0], params, epochs=3, seed=7)
    c, _ = fit(name, data[0], params, epochs=3, seed=8)
    for attr in ("P", "Q", "bu", "bi"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert not np.array_equal(a.P, c.P)


# --- bgd line search -----------------------------------------------------------------------


def test_line_search_tames_a_step_that_would_diverge(data):
    wild = SolverParams(lr=1e5, optimizer="constant")
    _, history = fit("bgd", data[0], wild, epochs=3)
    assert history[1] > history[0]
    _, history = fit(
        "bgd", data[0], SolverParams(lr=1e5, optimizer="constant", line_search=True), 10
    )
    assert np.all(np.diff(history) <= 0)
    assert history[-1] < 0.5 * history[0]


def test_line_search_grows_a_timid_step(data):
    timid = SolverParams(lr=1.0, optimizer="constant")
    _, plain = fit("bgd", data[0], timid, epochs=15)
    _, searched = fit(
        "bgd", data[0], SolverParams(lr=1.0, optimizer="constant", line_search=True), 15
    )
    assert np.all(np.diff(searched) <= 0)
    assert searched[-1] < plain[-1] - 0.1


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_line_search_never_lets_j_rise(optimizer, data):
    params = SolverParams(lr=0.5, optimizer=optimizer, line_search=True)
    _, history = fit("bgd", data[0], params, epochs=20)
    assert np.all(np.diff(history) <= 0)
    assert history[-1] < history[0]


# --- als -----------------------------------------------------------------------------------


@pytest.mark.parametrize("use_bias", [True, False])
def test_als_half_steps_are_exact_minimisers(use_bias):
    train, _ = planted(np.float64, n_users=60, n_items=40)
    params = SolverParams(reg=0.05, reg_bias=0.02)
    f, rng = start(train, factors=4, use_bias=use_bias)
    solver = get_solver("als")(f, train, params, rng)
    solver.run_epoch(0)  # ends with the items' half-step
    _, grad = objective.objective_and_gradient(f, train, params.reg, params.reg_bias)
    assert np.abs(grad.Q).max() < 1e-10
    assert np.abs(grad.bi).max() < 1e-10
    assert np.abs(grad.P).max() > 1e-4  # the users moved off their optimum: not vacuous
    by_user = train.by_user()
    als_half_step(
        by_user.indptr,
        by_user.cols,
        by_user.vals,
        f.P,
        f.bu,
        f.Q,
        f.bi,
        f.mu,
        params.reg,
        params.reg_bias,
        use_bias,
    )
    _, grad = objective.objective_and_gradient(f, train, params.reg, params.reg_bias)
    assert np.abs(grad.P).max() < 1e-10
    assert np.abs(grad.bu).max() < 1e-10


# --- MovieLens 100k ------------------------------------------------------------------------


def movielens_split(k: int) -> tuple[TrainSet, pd.DataFrame]:
    """uK.base as float32 TrainSet; uK.test with indices (-1 for IDs unseen in training)."""
    names = ["user", "item", "rating", "timestamp"]
    base = pd.read_csv(ML100K / f"u{k}.base", sep="\t", names=names)
    test = pd.read_csv(ML100K / f"u{k}.test", sep="\t", names=names)
    users, user_ids = pd.factorize(base["user"])
    items, item_ids = pd.factorize(base["item"])
    train = TrainSet(
        users.astype(np.int32),
        items.astype(np.int32),
        base["rating"].to_numpy(np.float32),
        len(user_ids),
        len(item_ids),
    )
    test["u"] = pd.Index(user_ids).get_indexer(test["user"])
    test["i"] = pd.Index(item_ids).get_indexer(test["item"])
    return train, test


def movielens_test_rmse(name: str, k: int) -> float:
    """Full defaults on uK.base, RMSE on uK.test (clipped to 1..5; unseen IDs: mu + biases)."""
    train, test = movielens_split(k)
    cls = get_solver(name)
    f, _ = fit(name, train, SolverParams(), cls.default_epochs, factors=DEFAULT_FACTORS)
    u, i = test["u"].to_numpy(), test["i"].to_numpy()
    known = (u >= 0) & (i >= 0)
    pred = np.full(len(test), f.mu)
    pred[known] = objective.predict(f, u[known], i[known])
    pred[(u >= 0) & ~known] += f.bu[u[(u >= 0) & ~known]]
    pred[(i >= 0) & ~known] += f.bi[i[(i >= 0) & ~known]]
    err = np.clip(pred, 1, 5) - test["rating"].to_numpy()
    return float(np.sqrt(np.mean(err**2)))


needs_movielens = pytest.mark.skipif(not ML100K.is_dir(), reason="MovieLens 100k absent")


@pytest.mark.movielens
@needs_movielens
def test_default_sgd_beats_surprise_svd_on_movielens_100k():
    mean = np.mean([movielens_test_rmse("sgd", k) for k in range(1, 6)])
    assert mean <= 0.925


@pytest.mark.movielens
@needs_movielens
@pytest.mark.parametrize("name", ["bgd", "minibatch", "als"])
def test_default_solvers_on_movielens_100k_u1(name):
    assert 0.88 < movielens_test_rmse(name, 1) <= 0.93


@pytest.mark.parametrize("name", list(SOLVERS))
def test_full_defaults_converge_on_planted_data(name, data):
    cls = get_solver(name)
    _, history = fit(name, data[0], SolverParams(), cls.default_epochs, factors=DEFAULT_FACTORS)
    # J never rises beyond float32 rounding (bgd and als end up at the minimum)
    assert np.all(np.diff(history) < 1e-6 * history[1:])
    assert history[-1] < 0.5 * history[0], history[[0, -1]]
