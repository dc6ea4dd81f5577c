"""∇J against central finite differences, for every parameter group, with and without biases."""

import numpy as np
import pytest

from mfrec.training import objective
from mfrec.training.state import Factors, TrainSet

REG, REG_BIAS = 0.3, 0.7


def random_problem(use_bias: bool, seed: int = 0) -> tuple[Factors, TrainSet]:
    """5 users, 4 items, k=3, 13 ratings (one pair rated twice, user 4 and item 3 unrated)."""
    rng = np.random.default_rng(seed)
    users = np.array([0, 0, 1, 1, 2, 2, 3, 0, 1, 2, 3, 3, 0], dtype=np.int32)
    items = np.array([0, 1, 1, 2, 0, 2, 1, 2, 0, 1, 2, 0, 0], dtype=np.int32)
    train = TrainSet(users, items, rng.uniform(1, 5, len(users)), n_users=5, n_items=4)
    f = Factors.initial(5, 4, 3, mu=3.0, use_bias=use_bias, init_std=0.8, dtype=np.float64, rng=rng)
    if use_bias:
        f.bu[:] = rng.normal(0, 0.5, 5)
        f.bi[:] = rng.normal(0, 0.5, 4)
    return f, train


def finite_difference(f: Factors, train: TrainSet, name: str, h: float = 1e-6) -> np.ndarray:
    """Central differences of J with respect to every entry of parameter group `name`."""
    x = getattr(f, name)
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        up = objective.objective(f, train, REG, REG_BIAS)
        x[idx] = old - h
        down = objective.objective(f, train, REG, REG_BIAS)
        x[idx] = old
        out[idx] = (up - down) / (2 * h)
    return out


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("name", ["P", "Q", "bu", "bi"])
def test_gradient_matches_finite_differences(name, use_bias):
    f, train = random_problem(use_bias)
    _, grad = objective.objective_and_gradient(f, train, REG, REG_BIAS)
    analytic = getattr(grad, name)
    assert analytic.shape == getattr(f, name).shape
    if not use_bias and name in ("bu", "bi"):
        np.testing.assert_array_equal(analytic, 0.0)
    else:
        np.testing.assert_allclose(analytic, finite_difference(f, train, name), atol=1e-7)
        assert np.abs(analytic).max() > 1e-3  # the check is not vacuous


def test_unrated_rows_have_zero_gradient():
    f, train = random_problem(use_bias=True)
    _, grad = objective.objective_and_gradient(f, train, REG, REG_BIAS)
    np.testing.assert_array_equal(grad.P[4], 0.0)
    np.testing.assert_array_equal(grad.Q[3], 0.0)
    assert grad.bu[4] == 0.0
    assert grad.bi[3] == 0.0


def test_float32_gradient_close_to_float64():
    f, train = random_problem(use_bias=True)
    f32 = Factors(*(a.astype(np.float32) for a in (f.P, f.Q, f.bu, f.bi)), f.mu, True)
    t32 = TrainSet(train.users, train.items, train.ratings.astype(np.float32), 5, 4)
    _, g64 = objective.objective_and_gradient(f, train, REG, REG_BIAS)
    _, g32 = objective.objective_and_gradient(f32, t32, REG, REG_BIAS)
    for a, b in zip(g32, g64, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
