"""Alternating least squares on J: exact minimisation over all users, then over all items."""

from __future__ import annotations

import numpy as np

from mfrec.errors import ParameterError
from mfrec.kernels.als import als_half_step
from mfrec.kernels.threads import numba_threads, resolve_threads
from mfrec.training.solvers.base import Solver
from mfrec.training.state import Factors, SolverParams, TrainSet


class ALS(Solver):
    """Each half-step solves every user's (then item's) ridge problem in closed form.

    With the per-rating weighted penalty a row with n ratings is penalised by reg·n on its
    factors and reg_bias·n on its bias, solved jointly (docs/math.md). No learning rate and no
    randomness: `lr`, `optimizer` and the generator are not used.
    """

    name = "als"
    default_lr = 0.0
    default_epochs = 10
    default_optimizer = "constant"

    def __init__(
        self,
        factors: Factors,
        train: TrainSet,
        params: SolverParams,
        rng: np.random.Generator,
    ):
        # Without a penalty a row with fewer ratings than factors has no unique minimiser.
        if not params.reg > 0:
            raise ParameterError("reg", params.reg, "must be > 0 for solver 'als'")
        super().__init__(factors, train, params, rng)

    def run_epoch(self, epoch: int) -> int:
        """Users then items; returns 2 (the half-steps)."""
        f, t, p = self.factors, self.train, self.params
        cast = f.P.dtype.type
        scalars = (cast(f.mu), cast(p.reg), cast(p.reg_bias), f.use_bias)
        by_user = t.by_user()
        by_item = t.by_item()
        with numba_threads(resolve_threads(p.threads)):
            als_half_step(
                by_user.indptr, by_user.cols, by_user.vals, f.P, f.bu, f.Q, f.bi, *scalars
            )
            als_half_step(
                by_item.indptr, by_item.cols, by_item.vals, f.Q, f.bi, f.P, f.bu, *scalars
            )
        return 2
