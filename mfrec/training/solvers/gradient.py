"""What the gradient solvers (sgd, minibatch, bgd) share: optimizer state and the lr schedule."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mfrec.kernels.threads import numba_threads, resolve_threads
from mfrec.training.optimizers import OptimizerState, epoch_lr
from mfrec.training.solvers.base import Solver
from mfrec.training.state import Factors, SolverParams, TrainSet


class GradientSolver(Solver):
    """A solver stepping along half-gradients through `params.optimizer`.

    The optimizer state (`opt`) lives here, one per run; ParameterError for an unknown optimizer.
    """

    def __init__(
        self,
        factors: Factors,
        train: TrainSet,
        params: SolverParams,
        rng: np.random.Generator,
    ):
        super().__init__(factors, train, params, rng)
        self.opt = OptimizerState.create(self.optimizer, factors)

    def epoch_lr(self, epoch: int) -> float:
        """The learning rate of epoch `epoch` (from 0) under the optimizer's schedule."""
        return epoch_lr(self.lr, self.optimizer, self.params.decay, epoch)

    def _minibatch_epoch(self, order: NDArray[np.integer], batch_size: int, epoch: int) -> float:
        """Run the mini-batch kernel over `order` on `params.threads` threads; returns the
        squared errors seen."""
        # Imported here: sgd with its default optimizer never runs this kernel.
        from mfrec.kernels.minibatch import Optimizer, Params, minibatch_epoch

        f, t, p = self.factors, self.train, self.params
        cast = f.P.dtype.type
        params = Params(f.P, f.Q, f.bu, f.bi, cast(f.mu), f.use_bias, cast(p.reg), cast(p.reg_bias))
        hyper = self.opt.hyper(self.epoch_lr(epoch), p, f.P.dtype)
        opt = Optimizer(self.opt.code, *hyper, *self.opt.state, *self.opt.steps)
        with numba_threads(resolve_threads(p.threads)):
            return minibatch_epoch(t.users, t.items, t.ratings, order, batch_size, params, opt)
