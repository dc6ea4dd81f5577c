"""Stochastic gradient descent: one rating at a time, in a fresh random order each epoch."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from mfrec.kernels.blocked import (
    PREFETCH,
    copy_in,
    copy_out,
    schedule,
    sgd_strata,
    shuffle_blocks,
    stream_key,
)
from mfrec.kernels.layout import VECTOR_BYTES, active_width, padded_width
from mfrec.kernels.loss import grid_squared_error_sum
from mfrec.kernels.sgd import sgd_epoch
from mfrec.kernels.steps import OPT_CONSTANT
from mfrec.kernels.threads import numba_threads, resolve_threads
from mfrec.training import objective
from mfrec.training.blocks import Grid, build_grid, grid_size
from mfrec.training.solvers.gradient import GradientSolver
from mfrec.training.state import Factors, SolverParams, TrainSet


class SGD(GradientSolver):
    """Classic SGD (Funk/Koren) on J; see docs/math.md for the exact update and the order.

    With ``constant``/``decay`` the ratings are cut into a grid of user blocks x item blocks
    (`mfrec.training.blocks`), shuffled within each block once, and each epoch runs the blocked
    kernel
    `sgd_strata`: independent blocks in parallel on `params.threads` threads, every block
    visited in a new random order. The result does not depend on the thread count. The kernel
    works on a `WorkingCopy` of the factors, copied back when the factors are read (`sync`).
    Data too small to cut (`grid_size` = 1) run the plain kernel `sgd_epoch` over one random
    permutation of all ratings. The adaptive optimizers run the mini-batch kernel with batch
    size 1, which is the same algorithm with per-rating optimizer steps on the touched rows.
    """

    name = "sgd"
    default_lr = 0.08
    default_epochs = 20
    default_optimizer = "decay"
    #: Prefetching rows ahead pays only when P and Q do not fit in the core's own caches: on
    #: MovieLens 100k (1.2 MB of working rows at k=100) it cost 8%; on 10M ratings it saved.
    prefetch_above: ClassVar[int] = 2 << 20

    def __init__(
        self,
        factors: Factors,
        train: TrainSet,
        params: SolverParams,
        rng: np.random.Generator,
    ):
        super().__init__(factors, train, params, rng)
        self.grid: Grid | None = None
        if self.opt.code == OPT_CONSTANT:
            blocks = grid_size(len(train))
            if blocks > 1:
                self.grid = g = build_grid(
                    train.users,
                    train.items,
                    train.ratings,
                    train.n_users,
                    train.n_items,
                    blocks,
                    rng,
                    train.counts(),
                )
                # Epochs walk the blocks in a new order each (`visit_walk`), starting from
                # ratings put in random order within their blocks once, here. Epoch e's seed is
                # `stream_key(self._seed, e)`: no draws between epochs.
                shuffle_seed, self._seed = rng.integers(
                    np.iinfo(np.uint64).max, size=2, dtype=np.uint64, endpoint=True
                )
                shuffle_blocks(g.users, g.items, g.codes, g.block_ptr, shuffle_seed)
                columns = active_width(factors.P.shape[1], factors.P.dtype.itemsize)
                self._work = WorkingCopy(factors, g, columns)
                # Ratings per working row, for the penalties of J on the working copy.
                counts_u, counts_i = train.counts()
                self._work_counts = (counts_u[g.user_rows], counts_i[g.item_rows])
        # The solver owns the factors while it trains: they are copied into the working copy
        # before the first epoch, and back only when they are read (`sync`).
        self._loaded = False

    @property
    def factors(self) -> Factors:
        """The factors, current (the working copy is copied back first if it is newer)."""
        self.sync()
        return self._factors

    @factors.setter
    def factors(self, value: Factors) -> None:
        self._factors = value
        self._stale = False

    def sync(self) -> None:
        """Copy the working rows back into the factors if an epoch changed them."""
        if self._stale:
            with numba_threads(resolve_threads(self.params.threads)):
                self._work.store(self._factors)
            self._stale = False

    def objective_and_rmse(self, reg: float, reg_bias: float) -> tuple[float, float]:
        """J and the training RMSE, from the working copy when it is newer than the factors:
        the same figures up to the order of the float64 sums, without copying it back."""
        if not self._stale:
            return super().objective_and_rmse(reg, reg_bias)
        g, w, f = self.grid, self._work, self._factors
        sq = grid_squared_error_sum(*g.kernel_args(), *w.padded(), f.P.dtype.type(f.mu), f.use_bias)
        working = Factors(*w.padded(), f.mu, f.use_bias)
        n = len(self.train)
        J = objective.from_squared_error(sq, working, self._work_counts, n, reg, reg_bias)
        return J, math.sqrt(sq / n)

    def run_epoch(self, epoch: int) -> int:
        """One pass over the ratings in a new random order; returns the number of ratings."""
        f, t, p = self._factors, self.train, self.params
        if self.opt.code != OPT_CONSTANT:
            self._minibatch_epoch(self.rng.permutation(len(t)), 1, epoch)
            return len(t)
        cast = f.P.dtype.type
        scalars = (cast(f.mu), cast(self.epoch_lr(epoch)), cast(p.reg), cast(p.reg_bias))
        if self.grid is None:
            order = self.rng.permutation(len(t))
            sgd_epoch(
                t.users, t.items, t.ratings, order, f.P, f.Q, f.bu, f.bi, *scalars, f.use_bias
            )
            return len(t)
        g, w = self.grid, self._work
        threads = resolve_threads(p.threads)
        seed = np.uint64(stream_key(self._seed, epoch))
        prefetch = PREFETCH if w.nbytes > self.prefetch_above else 0
        with numba_threads(threads):
            if not self._loaded:
                w.load(f)
                self._loaded = True
            strata = schedule(g.n_blocks, seed)
            sgd_strata(
                *g.kernel_args(), strata, seed, *w.arrays(), *scalars, f.use_bias, threads, prefetch
            )
        self._stale = True
        return len(t)


class WorkingCopy:
    """P, Q, bu, bi with rows in the grid's order, P and Q padded to whole vectors.

    The blocked kernels run on these; `load` copies the factors in (the solvers do it before
    their first epoch) and `store` copies them back (bgd after every epoch, sgd when its factors
    are read). Rows are padded to whole vectors and 64-byte aligned, so no vector load
    straddles two cache lines. `P` and `Q` show the first `columns` of the rows (default: all),
    at least k: the sgd kernel needs only `active_width` of them. Copies and evaluation take
    the whole rows (`padded`), C-contiguous like the factors, so that numba compiles them once
    for both; the padding columns are zero and change no sum.
    """

    def __init__(self, factors: Factors, grid: Grid, columns: int | None = None):
        dtype = factors.P.dtype
        width = padded_width(factors.P.shape[1], dtype.itemsize)
        columns = width if columns is None else columns
        self.user_rows = grid.user_rows
        self.item_rows = grid.item_rows
        self._P = aligned_zeros((len(grid.user_rows), width), dtype)
        self._Q = aligned_zeros((len(grid.item_rows), width), dtype)
        self.P = self._P[:, :columns]
        self.Q = self._Q[:, :columns]
        self.bu = np.zeros(len(grid.user_rows), dtype)
        self.bi = np.zeros(len(grid.item_rows), dtype)

    def load(self, f: Factors) -> None:
        """Copy the factors in (padding columns stay zero)."""
        copy_in(f.P, f.Q, f.bu, f.bi, self.user_rows, self.item_rows, *self.padded())

    def store(self, f: Factors) -> None:
        """Copy the working rows back into the factors."""
        copy_out(*self.padded(), self.user_rows, self.item_rows, f.P, f.Q, f.bu, f.bi)

    def arrays(self) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        """(P, Q, bu, bi) in the kernel's argument order."""
        return self.P, self.Q, self.bu, self.bi

    def padded(self) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        """(P, Q, bu, bi) with whole, C-contiguous rows of P and Q."""
        return self._P, self._Q, self.bu, self.bi

    @property
    def nbytes(self) -> int:
        """Bytes of the working rows."""
        return sum(x.nbytes for x in self.padded())


def aligned_zeros(shape: tuple[int, int], dtype: np.dtype) -> NDArray:
    """A C-contiguous zero array whose data starts on a `VECTOR_BYTES` boundary."""
    n = shape[0] * shape[1]
    raw = np.zeros(n * dtype.itemsize + VECTOR_BYTES, np.uint8)
    skip = -raw.ctypes.data % VECTOR_BYTES
    return raw[skip : skip + n * dtype.itemsize].view(dtype).reshape(shape)
