"""The block grid that distributed training works on, and what lives in each cell.

Users and items are numbered in a random order (their *rank*), which balances the stripes:
user stripe ``a`` holds the users whose rank r has ``r % d_rows == a``, at local row
``r // d_rows``; items likewise over ``d_cols`` stripes. Block (a, b) holds the ratings of user
stripe a on item stripe b, with local indices, as a `TrainSet`; the blocks of one user stripe
form a `Stripe`, which stays on one worker together with the stripe's `Side` of P.

A `Side` is one stripe's share of the parameters and optimizer state: P rows, user biases and
their optimizer state on the user side, Q rows and item biases on the item side. Local
training's kernels and solvers run on one block as they are: the block's `Factors` are views of
a user Side and an item Side (`block_state`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from dask.sizeof import sizeof
from numpy.typing import NDArray

from mfrec.training import objective
from mfrec.training.optimizers import OptimizerState
from mfrec.training.state import Factors, TrainSet


@dataclass(frozen=True)
class Layout:
    """Where every user and item goes: the rank order and the number of stripes of each side.

    ``user_order[r]`` is the user (index in the ID map) of rank r, likewise ``item_order``.
    """

    user_order: NDArray[np.int64]
    item_order: NDArray[np.int64]
    d_rows: int
    d_cols: int

    @classmethod
    def random(
        cls, n_users: int, n_items: int, d_rows: int, d_cols: int, rng: np.random.Generator
    ) -> Layout:
        """A fresh random numbering of the users, then of the items."""
        return cls(rng.permutation(n_users), rng.permutation(n_items), d_rows, d_cols)

    def user_members(self, a: int) -> NDArray[np.int64]:
        """The users of user stripe `a`, in local row order."""
        return self.user_order[a :: self.d_rows]

    def item_members(self, b: int) -> NDArray[np.int64]:
        """The items of item stripe `b`, in local row order."""
        return self.item_order[b :: self.d_cols]


@dataclass
class Side:
    """One stripe of one side: factor rows ``X``, biases ``b`` and their optimizer state.

    ``X1``/``X2`` and ``b1``/``b2`` are the optimizer's two states (empty when unused), ``t``
    the per-row step counts (see `mfrec.training.optimizers.OptimizerState`).
    """

    X: NDArray[np.floating]
    b: NDArray[np.floating]
    X1: NDArray[np.floating]
    X2: NDArray[np.floating]
    b1: NDArray[np.floating]
    b2: NDArray[np.floating]
    t: NDArray[np.int64]

    def take(self, rows: NDArray[np.integer]) -> Side:
        """The rows `rows` of this side (copies); empty optimizer states stay empty."""
        return Side(*(_rows(arr, rows) for arr in self._arrays()))

    def copy(self) -> Side:
        """A deep copy."""
        return Side(*(arr.copy() for arr in self._arrays()))

    def factors_only(self) -> Side:
        """The rows and biases without the optimizer state: all that scoring and gradients
        read, so that only these move to the workers that score."""
        return Side(self.X, self.b, *(arr[:0] for arr in self._arrays()[2:]))

    @property
    def nbytes(self) -> int:
        """Bytes held, for the logs and the benchmark."""
        return sum(arr.nbytes for arr in self._arrays())

    def _arrays(self) -> tuple[NDArray, ...]:
        return (self.X, self.b, self.X1, self.X2, self.b1, self.b2, self.t)

    @classmethod
    def join(cls, parts: list[Side], members: list[NDArray[np.integer]], n: int) -> Side:
        """The inverse of `take` over stripes: rows ``members[s]`` come from ``parts[s]``."""
        out = []
        for j, first in enumerate(parts[0]._arrays()):
            # An optimizer state that the rule does not use is empty in every part.
            used = any(part._arrays()[j].shape[0] for part in parts)
            arr = np.empty((n if used else 0, *first.shape[1:]), dtype=first.dtype)
            if used:
                for part, idx in zip(parts, members, strict=True):
                    arr[idx] = part._arrays()[j]
            out.append(arr)
        return cls(*out)


def _rows(arr: NDArray, rows: NDArray[np.integer]) -> NDArray:
    return arr[rows] if arr.shape[0] else arr.copy()


def sides_of(factors: Factors, opt: OptimizerState) -> tuple[Side, Side]:
    """The user Side and the item Side of the whole model (sharing the arrays)."""
    P1, P2, Q1, Q2, bu1, bu2, bi1, bi2 = opt.state
    tu, ti = opt.steps
    return (
        Side(factors.P, factors.bu, P1, P2, bu1, bu2, tu),
        Side(factors.Q, factors.bi, Q1, Q2, bi1, bi2, ti),
    )


def block_state(
    user: Side, item: Side, mu: float, use_bias: bool, code: int
) -> tuple[Factors, OptimizerState]:
    """The solver's view of one block: Factors and optimizer state over the two sides' arrays.

    The solvers update these in place, so they update the sides.
    """
    factors = Factors(user.X, item.X, user.b, item.b, mu, use_bias)
    state = (user.X1, user.X2, item.X1, item.X2, user.b1, user.b2, item.b1, item.b2)
    return factors, OptimizerState(code, state, (user.t, item.t))


@dataclass
class Stripe:
    """The ratings of one user stripe, as one `TrainSet` per item stripe (local indices).

    ``first_duplicate`` is a repeated (local user, item rank) pair when the ratings held one
    and the duplicates policy is ``error``; the driver names it with the raw IDs.
    """

    index: int
    n_users: int
    blocks: list[TrainSet]
    rating_sum: float
    square_sum: float
    first_duplicate: tuple[int, int] | None = None

    @property
    def n_ratings(self) -> int:
        """Ratings in this stripe."""
        return sum(len(block) for block in self.blocks)


@sizeof.register(Side)
def _sizeof_side(side: Side) -> int:
    # Dask's transfer counters and memory limits go by sizeof, which cannot see inside a
    # dataclass by itself.
    return side.nbytes


@sizeof.register(Stripe)
def _sizeof_stripe(stripe: Stripe) -> int:
    return sum(blk.users.nbytes + blk.items.nbytes + blk.ratings.nbytes for blk in stripe.blocks)


def evaluate_stripe(
    stripe: Stripe,
    user: Side,
    items: list[Side],
    mu: float,
    use_bias: bool,
    reg: float,
    reg_bias: float,
) -> tuple[float, float]:
    """(Σ over the stripe's ratings of the per-rating objective terms, Σ squared errors).

    Summed over all stripes and divided by the number of ratings they give J and MSE:
    J is a mean of per-rating terms, so each block's mean J weighs in with its ratings.
    """
    total = 0.0
    sse = 0.0
    for blk, item in zip(stripe.blocks, items, strict=True):
        if len(blk) == 0:
            continue
        f = Factors(user.X, item.X, user.b, item.b, mu, use_bias)
        J, rmse = objective.objective_and_rmse(f, blk, reg, reg_bias)
        total += J * len(blk)
        sse += rmse * rmse * len(blk)
    return total, sse
