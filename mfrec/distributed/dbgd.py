"""Full-batch gradient descent on Dask: partial gradients where the ratings live, summed.

The ratings are split by user stripe only (a d x 1 grid). Every user's ratings are then on
one worker, so that worker computes the user's whole gradient and steps its P rows in place
of the driver. The item side (Q, item biases and their optimizer state) is one Dask future:
each worker fetches it once per epoch (the broadcast), returns its partial gradient of Q, the
partials are summed in a tree on the cluster, and one task takes the optimizer step on Q.

J and ∇J are means over ratings, so a stripe's mean objective and gradient
(`mfrec.training.objective.objective_and_gradient` on its ratings) weigh in with its share of the
ratings: the sum is exactly the full-batch J and ∇J of the local `BGD` solver, up to the
order of floating-point sums. Each epoch's pass also scores the point it starts from, which
is the history row of the previous epoch.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from mfrec.distributed.grid import Side, Stripe
from mfrec.kernels.steps import apply_rows
from mfrec.training import objective
from mfrec.training.state import Factors

if TYPE_CHECKING:
    from distributed import Client, Future

    from mfrec.distributed.ingest import Grid

#: Partial gradients one summing task adds up.
SUM_FAN_IN = 8

Gradient = tuple[NDArray[np.floating], NDArray[np.floating]]


@dataclass(frozen=True)
class Model:
    """The fixed parts of the objective."""

    mu: float
    use_bias: bool
    reg: float
    reg_bias: float
    n_ratings: int


def stripe_pass(
    stripe: Stripe, user: Side, item: Side, model: Model, gradient: bool
) -> tuple[tuple[float, float], Gradient | None, Gradient | None]:
    """Score one user stripe at the current point and, if asked, its share of ∇J / 2.

    Returns ((Σ per-rating J terms, Σ squared errors), the user side's half-gradient, the
    item side's partial half-gradient); without `gradient` the last two are None.
    """
    blk = stripe.blocks[0]
    if len(blk) == 0:
        empty = (np.zeros_like(user.X), np.zeros_like(user.b))
        return (0.0, 0.0), empty if gradient else None, _zero(item) if gradient else None
    f = Factors(user.X, item.X, user.b, item.b, model.mu, model.use_bias)
    J, rmse = objective.objective_and_rmse(f, blk, model.reg, model.reg_bias)
    scores = (J * len(blk), rmse * rmse * len(blk))
    if not gradient:
        return scores, None, None
    _, g = objective.objective_and_gradient(f, blk, model.reg, model.reg_bias)
    # Half the gradient (the solvers' step convention), weighted by the stripe's share.
    w = 0.5 * len(blk) / model.n_ratings
    return scores, (w * g.P, w * g.bu), (w * g.Q, w * g.bi)


def _zero(side: Side) -> Gradient:
    return np.zeros_like(side.X), np.zeros_like(side.b)


def add(*parts: Gradient) -> Gradient:
    """The sum of partial gradients."""
    gX = parts[0][0].copy()
    gb = parts[0][1].copy()
    for pX, pb in parts[1:]:
        gX += pX
        gb += pb
    return gX, gb


def step(side: Side, grad: Gradient, code: int, hyper: tuple, use_bias: bool) -> Side:
    """One optimizer step on every row of `side` along `grad` (a new Side).

    As `BGD`'s step: every row counts one more step, then X and the biases move.
    """
    side = side.copy()
    side.t += 1
    rows = np.arange(side.X.shape[0])
    lr, beta1, beta2, eps = hyper
    apply_rows(side.X, rows, grad[0], side.X1, side.X2, side.t, code, lr, beta1, beta2, eps)
    if use_bias:
        b = side.b[:, None]
        gb = grad[1][:, None]
        apply_rows(b, rows, gb, side.b1, side.b2, side.t, code, lr, beta1, beta2, eps)
    return side


@dataclass
class Pass:
    """Futures of one pass over all stripes: the scores, and the gradients if asked for."""

    scores: list[Future]
    user_grads: list[Future] | None
    item_grad: Future | None


def submit_pass(
    client: Client,
    grid: Grid,
    users: list[Future],
    item: Future,
    model: Model,
    gradient: bool,
) -> Pass:
    """Score (and differentiate, with `gradient`) every stripe where it lives."""
    # The broadcast: Q and the item biases, without the optimizer state (it stays put).
    item = client.submit(Side.factors_only, item, pure=False)
    scores, user_grads, partials = [], [], []
    for a, owner in enumerate(grid.owners):
        where = {"workers": [owner], "allow_other_workers": False, "pure": False}
        out = client.submit(stripe_pass, grid.stripes[a], users[a], item, model, gradient, **where)
        scores.append(client.submit(operator.getitem, out, 0, **where))
        if gradient:
            user_grads.append(client.submit(operator.getitem, out, 1, **where))
            partials.append(client.submit(operator.getitem, out, 2, **where))
    if not gradient:
        return Pass(scores, None, None)
    while len(partials) > 1:
        partials = [
            client.submit(add, *partials[j : j + SUM_FAN_IN], pure=False)
            for j in range(0, len(partials), SUM_FAN_IN)
        ]
    return Pass(scores, user_grads, partials[0])


def submit_step(
    client: Client,
    grid: Grid,
    users: list[Future],
    item: Future,
    grads: Pass,
    code: int,
    hyper: tuple,
    use_bias: bool,
) -> tuple[list[Future], Future]:
    """The optimizer step: each P stripe on its worker, Q where its summed gradient is."""
    new_users = [
        client.submit(
            step,
            users[a],
            grads.user_grads[a],
            code,
            hyper,
            use_bias,
            workers=[owner],
            allow_other_workers=False,
            pure=False,
        )
        for a, owner in enumerate(grid.owners)
    ]
    new_item = client.submit(step, item, grads.item_grad, code, hyper, use_bias, pure=False)
    return new_users, new_item
