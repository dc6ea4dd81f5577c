"""Mini-batch gradient descent: shuffled batches of `params.batch_size` ratings."""

from __future__ import annotations

import numpy as np

from mfrec.errors import ParameterError
from mfrec.training.solvers.gradient import GradientSolver
from mfrec.training.state import Factors, SolverParams, TrainSet


class MiniBatch(GradientSolver):
    """One optimizer step per batch from the batch-averaged half-gradient (docs/math.md).

    Batch size 1 is `SGD`; a batch of all ratings is one `BGD` step.
    """

    name = "minibatch"
    default_lr = 0.003
    default_epochs = 30
    default_optimizer = "adam"

    def __init__(
        self,
        factors: Factors,
        train: TrainSet,
        params: SolverParams,
        rng: np.random.Generator,
    ):
        if not isinstance(params.batch_size, int | np.integer) or params.batch_size < 1:
            raise ParameterError("batch_size", params.batch_size, "must be an integer >= 1")
        super().__init__(factors, train, params, rng)

    def run_epoch(self, epoch: int) -> int:
        """One pass over the ratings in a new random order; returns the number of batches."""
        n = len(self.train)
        self._minibatch_epoch(self.rng.permutation(n), self.params.batch_size, epoch)
        return -(-n // self.params.batch_size)
