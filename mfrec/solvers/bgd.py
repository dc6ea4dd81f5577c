"""Full-batch gradient descent: one step per epoch along the gradient over all ratings."""

from __future__ import annotations

import numpy as np

from mfrec import objective as obj
from mfrec.kernels.gradient import half_gradient
from mfrec.kernels.optim import apply_rows
from mfrec.kernels.threads import numba_threads, resolve_threads
from mfrec.solvers.base import Factors, SolverParams, TrainSet
from mfrec.solvers.gradient import GradientSolver

#: Armijo constant: a step must achieve this fraction of the decrease the slope promises.
ARMIJO = 1e-4
#: Halvings tried before an epoch gives up and keeps the parameters unchanged.
MAX_HALVINGS = 30


class BGD(GradientSolver):
    """Batch gradient descent on J: ½∇J from two parallel passes over the ratings
    (`mfrec.kernels.gradient.half_gradient`), then one optimizer step on every row.

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
        self._rows = (np.arange(train.n_users), np.arange(train.n_items))
        #: The line search's last accepted scale factor.
        self.step_scale = 0.5
        # ½∇J (the step every solver takes is lr times half the gradient) and the residuals.
        self._half = [np.empty_like(x) for x in (factors.P, factors.Q, factors.bu, factors.bi)]
        self._residuals = np.empty_like(train.ratings)

    def run_epoch(self, epoch: int) -> int:
        """One (possibly line-searched) optimizer step; returns 1."""
        f, p, t = self.factors, self.params, self.train
        J0 = obj.objective(f, t, p.reg, p.reg_bias) if p.line_search else None
        by_user, by_item = t.by_user(), t.by_item()
        cast = f.P.dtype.type
        with numba_threads(resolve_threads(p.threads)):
            half_gradient(
                by_user.indptr,
                by_user.cols,
                by_user.vals,
                by_user.order,
                by_item.indptr,
                by_item.cols,
                by_item.order,
                f.P,
                f.Q,
                f.bu,
                f.bi,
                cast(f.mu),
                cast(p.reg),
                cast(p.reg_bias),
                f.use_bias,
                self._residuals,
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
        apply_rows(f.P, rows_u, half[0], P1, P2, tu, code, lr, beta1, beta2, eps)
        apply_rows(f.Q, rows_i, half[1], Q1, Q2, ti, code, lr, beta1, beta2, eps)
        if f.use_bias:
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
