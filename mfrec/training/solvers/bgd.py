"""Full-batch gradient descent: one step per epoch along the gradient over all ratings."""

from __future__ import annotations

import numpy as np

from mfrec.kernels.gradient import half_gradient, sort_blocks
from mfrec.kernels.steps import apply_rows, apply_rows_parallel
from mfrec.kernels.threads import numba_threads, resolve_threads
from mfrec.training import objective as obj
from mfrec.training.blocks import PARALLEL_BLOCKS, build_grid, grid_size
from mfrec.training.solvers.gradient import GradientSolver
from mfrec.training.solvers.sgd import WorkingCopy
from mfrec.training.state import Factors, SolverParams, TrainSet

#: Armijo constant: a step must achieve this fraction of the decrease the slope promises.
ARMIJO = 1e-4
#: Halvings tried before an epoch gives up and keeps the parameters unchanged.
MAX_HALVINGS = 30


class BGD(GradientSolver):
    """Batch gradient descent on J: ½∇J from two parallel passes over the ratings
    (`mfrec.kernels.gradient.half_gradient`), then one optimizer step on every row.

    The ratings are cut into a grid like sgd's (`mfrec.training.blocks`), built once with the
    solver's
    generator, each block ordered by user; every epoch copies the factors into padded working
    copies with rows in grid order, on which the gradient is computed. The result does not
    depend on the thread count.

    ∇J's blocks scale with the row's share of the ratings (n_u/|R|), so one constant step size
    cannot suit both heavy and light users; the default is therefore adam, whose per-parameter
    scaling undoes that (docs/math.md). With ``params.line_search`` the optimizer's proposed
    step d is scaled by a factor a found by backtracking on J: the first try is twice the last
    accepted factor (1 in the first epoch), halved until J(x + a d) <= J(x) + 1e-4·a·∇J·d.
    A proposal that is not a descent direction is rejected, so J never increases.
    """

    name = "bgd"
    default_lr = 0.02
    default_epochs = 200
    default_optimizer = "adam"

    def __init__(
        self,
        factors: Factors,
        train: TrainSet,
        params: SolverParams,
        rng: np.random.Generator,
    ):
        super().__init__(factors, train, params, rng)
        # At most PARALLEL_BLOCKS groups a side: fewer, bigger blocks give longer runs of one
        # user's ratings (10M ratings, k=64: an epoch 0.88x an sgd epoch with 8 a side, 1.05x
        # with sgd's 16).
        self.grid = build_grid(
            train.users,
            train.items,
            train.ratings,
            train.n_users,
            train.n_items,
            min(grid_size(len(train)), PARALLEL_BLOCKS),
            rng,
            train.counts(),
        )
        g = self.grid
        sort_blocks(g.users, g.items, g.codes, g.block_ptr, g.user_start)
        self._work = WorkingCopy(factors, g)
        self._rows = (np.arange(train.n_users), np.arange(train.n_items))
        #: The line search's last accepted scale factor.
        self.step_scale = 0.5
        # ½∇J (the step every solver takes is lr times half the gradient) in the factors' row
        # order, the kernel's scratch rows for its sums (shaped like the working copies) and
        # the residuals in grid order.
        self._half = [np.empty_like(x) for x in (factors.P, factors.Q, factors.bu, factors.bi)]
        self._sums = WorkingCopy(factors, g)
        self._residuals = np.empty_like(train.ratings)
        self._counts = train.counts()
        # The arrays above and the optimizer state are mapped lazily, page by page as they are
        # first written; fault them in now, with the rest of the setup, rather than in the first
        # epoch (10M ratings, k=64, adam: 0.35 s, more than an epoch).
        for x in (*self._half, *self._sums.arrays(), self._residuals, *self.opt.state):
            x.fill(0)

    def run_epoch(self, epoch: int) -> int:
        """One (possibly line-searched) optimizer step; returns 1."""
        f, p, g, w = self.factors, self.params, self.grid, self._work
        J0 = obj.objective(f, self.train, p.reg, p.reg_bias) if p.line_search else None
        cast = f.P.dtype.type
        with numba_threads(resolve_threads(p.threads)):
            w.load(f)
            half_gradient(
                *g.kernel_args(),
                g.user_rows,
                g.item_rows,
                *self._counts,
                *w.arrays(),
                cast(f.mu),
                cast(p.reg),
                cast(p.reg_bias),
                f.use_bias,
                self._residuals,
                *self._sums.arrays(),
                *self._half,
            )
            start = f.copy() if p.line_search else None
            self._step(self._half, epoch)
        if start is not None:
            self._line_search(start, self._half, J0)
        return 1

    def _step(self, half: list[np.ndarray], epoch: int) -> None:
        f = self.factors
        lr, beta1, beta2, eps = self.opt.hyper(self.epoch_lr(epoch), self.params, f.P.dtype)
        P1, P2, Q1, Q2, bu1, bu2, bi1, bi2 = self.opt.state
        tu, ti = self.opt.steps
        tu += 1
        ti += 1
        rows_u, rows_i = self._rows
        code = self.opt.code
        apply_rows_parallel(f.P, rows_u, half[0], P1, P2, tu, code, lr, beta1, beta2, eps)
        apply_rows_parallel(f.Q, rows_i, half[1], Q1, Q2, ti, code, lr, beta1, beta2, eps)
        if f.use_bias:
            # k times smaller than P and Q: not worth a parallel region each.
            bu, bi = f.bu[:, None], f.bi[:, None]
            apply_rows(bu, rows_u, half[2][:, None], bu1, bu2, tu, code, lr, beta1, beta2, eps)
            apply_rows(bi, rows_i, half[3][:, None], bi1, bi2, ti, code, lr, beta1, beta2, eps)

    def _line_search(self, start: Factors, half: list[np.ndarray], J0: float) -> None:
        f, p = self.factors, self.params
        names = ("P", "Q", "bu", "bi")
        x0 = [getattr(start, n) for n in names]
        d = [getattr(f, n) - x for n, x in zip(names, x0, strict=True)]
        # ∇J·d, with ∇J = 2·half, in float64.
        slope = 2.0 * sum(
            float(np.vdot(g.astype(np.float64), s)) for g, s in zip(half, d, strict=True)
        )
        scale = 2.0 * self.step_scale
        if slope < 0.0:
            for _ in range(MAX_HALVINGS):
                for n, x, s in zip(names, x0, d, strict=True):
                    getattr(f, n)[...] = x + scale * s
                if obj.objective(f, self.train, p.reg, p.reg_bias) <= J0 + ARMIJO * scale * slope:
                    self.step_scale = scale
                    return
                scale /= 2.0
        for n, x in zip(names, x0, strict=True):
            getattr(f, n)[...] = x
