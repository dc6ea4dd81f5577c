"""The objective every solver minimises, its gradient, and predictions on arrays.

    r̂(u,i) = mu + b_u + b_i + p_u·q_i        (without biases: r̂ = p_u·q_i)
    J = (1/|R|) Σ_{(u,i)∈R} [ (r_ui - r̂_ui)² + reg (|p_u|² + |q_i|²) + reg_bias (b_u² + b_i²) ]

The regularisation is weighted per rating: a user with n_u ratings pays reg·n_u·|p_u|². mu is
fixed (the training mean), not learned. docs/math.md derives the gradient.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from mfrec.kernels.loss import squared_error_sum, weighted_sq_norm
from mfrec.kernels.predict import pair_dots
from mfrec.training.state import Factors, TrainSet


class Gradient(NamedTuple):
    """∇J, one array per parameter group, shaped like the parameters (zero biases without)."""

    P: NDArray[np.floating]
    Q: NDArray[np.floating]
    bu: NDArray[np.floating]
    bi: NDArray[np.floating]


def predict(
    factors: Factors, users: NDArray[np.integer], items: NDArray[np.integer]
) -> NDArray[np.floating]:
    """r̂ for each (users[k], items[k]) pair, in the factors' dtype (no clipping)."""
    users = np.asarray(users)
    items = np.asarray(items)
    out = np.empty(len(users), dtype=factors.P.dtype)
    pair_dots(factors.P, factors.Q, users, items, out)
    if factors.use_bias:
        out += factors.bu[users] + factors.bi[items] + factors.mu
    return out


def residuals(factors: Factors, train: TrainSet) -> NDArray[np.floating]:
    """e = r - r̂ for every training rating."""
    return train.ratings - predict(factors, train.users, train.items)


def rmse(factors: Factors, train: TrainSet) -> float:
    """Root mean squared error of the (unclipped) predictions on the training ratings."""
    if len(train) == 0:
        raise ValueError("rmse: no ratings")
    return math.sqrt(squared_error(factors, train) / len(train))


def objective(factors: Factors, train: TrainSet, reg: float, reg_bias: float) -> float:
    """J (see the module docstring), accumulated in float64."""
    if len(train) == 0:
        raise ValueError("objective: no ratings")
    sq = squared_error(factors, train)
    return from_squared_error(sq, factors, train.counts(), len(train), reg, reg_bias)


def objective_and_rmse(
    factors: Factors, train: TrainSet, reg: float, reg_bias: float
) -> tuple[float, float]:
    """J and the training RMSE from one prediction pass (the trainer's per-epoch figures)."""
    if len(train) == 0:
        raise ValueError("objective: no ratings")
    sq = squared_error(factors, train)
    J = from_squared_error(sq, factors, train.counts(), len(train), reg, reg_bias)
    return J, math.sqrt(sq / len(train))


def squared_error(factors: Factors, train: TrainSet) -> float:
    """Σ (r - r̂)² over the training ratings, in float64, in one pass without temporaries as
    long as the ratings (`mfrec.kernels.loss`); r̂ as `predict` computes it. Runs on
    numba's current thread count; the result does not depend on it."""
    f = factors
    return squared_error_sum(
        f.P,
        f.Q,
        f.bu,
        f.bi,
        f.P.dtype.type(f.mu),
        f.use_bias,
        train.users,
        train.items,
        train.ratings,
    )


def objective_and_gradient(
    factors: Factors, train: TrainSet, reg: float, reg_bias: float
) -> tuple[float, Gradient]:
    """J and ∇J in one pass over the ratings; the gradient is in the factors' dtype.

    ∂J/∂p_u = (2/|R|) (reg·n_u·p_u - Σ_i e_ui q_i), likewise for q_i;
    ∂J/∂b_u = (2/|R|) (reg_bias·n_u·b_u - Σ_i e_ui), likewise for b_i.
    """
    if len(train) == 0:
        raise ValueError("objective: no ratings")
    f = factors
    e = residuals(f, train)
    by_user = train.by_user()
    # The sparse matrix E[u, i] = e_ui turns the per-row sums into two sparse products.
    # Imported here: scipy.sparse costs 0.1-0.15 s of start-up that sgd training never needs.
    import scipy.sparse as sp

    E = sp.csr_matrix(
        (e[by_user.order], by_user.cols, by_user.indptr), (train.n_users, train.n_items)
    )
    counts_u, counts_i = train.counts()
    n_u = counts_u.astype(f.P.dtype)
    n_i = counts_i.astype(f.P.dtype)
    scale = 2.0 / len(train)
    gP = scale * (reg * n_u[:, None] * f.P - E @ f.Q)
    gQ = scale * (reg * n_i[:, None] * f.Q - E.T @ f.P)
    if f.use_bias:
        su = np.bincount(train.users, weights=e, minlength=train.n_users)
        si = np.bincount(train.items, weights=e, minlength=train.n_items)
        gbu = (scale * (reg_bias * n_u * f.bu - su)).astype(f.P.dtype)
        gbi = (scale * (reg_bias * n_i * f.bi - si)).astype(f.P.dtype)
    else:
        gbu = np.zeros_like(f.bu)
        gbi = np.zeros_like(f.bi)
    sq = float(np.einsum("n,n->", e, e, dtype=np.float64))
    J = from_squared_error(sq, f, train.counts(), len(train), reg, reg_bias)
    return J, Gradient(gP, gQ, gbu, gbi)


def from_squared_error(
    sq: float,
    f: Factors,
    counts: tuple[NDArray[np.integer], NDArray[np.integer]],
    n: int,
    reg: float,
    reg_bias: float,
) -> float:
    """J from the sum of squared errors `sq` over `n` ratings: adds the penalties, weighted by
    the ratings per row (`counts`: per user, per item, in the rows' order)."""
    n_u, n_i = counts
    total = sq + reg * (weighted_sq_norm(f.P, n_u) + weighted_sq_norm(f.Q, n_i))
    if f.use_bias:
        total += reg_bias * (
            weighted_sq_norm(f.bu.reshape(-1, 1), n_u) + weighted_sq_norm(f.bi.reshape(-1, 1), n_i)
        )
    return total / n
