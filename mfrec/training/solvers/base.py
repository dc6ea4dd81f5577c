"""The one-method interface the trainer drives: a solver runs one epoch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from mfrec.training.state import Factors, SolverParams, TrainSet


class Solver(ABC):
    """One training algorithm. The trainer owns the epoch loop; a solver runs one epoch.

    Subclasses set `name` and `default_lr`, and may override `default_optimizer`.
    The constructor receives the factors to update in place, the training set, the
    hyperparameters and the random generator (the only source of randomness, e.g. for the
    shuffle order, which is drawn here and passed to kernels). The factors object is current
    after `sync` (or any read of ``solver.factors``); between epochs a solver may hold newer
    values in a private copy.
    """

    name: ClassVar[str]
    default_lr: ClassVar[float]
    default_optimizer: ClassVar[str] = "constant"
    default_epochs: ClassVar[int] = 20

    def __init__(
        self,
        factors: Factors,
        train: TrainSet,
        params: SolverParams,
        rng: np.random.Generator,
    ):
        self.factors = factors
        self.train = train
        self.params = params
        self.rng = rng

    @property
    def lr(self) -> float:
        """The base learning rate in use."""
        return self.default_lr if self.params.lr is None else self.params.lr

    @property
    def optimizer(self) -> str:
        """The optimizer in use."""
        return self.default_optimizer if self.params.optimizer is None else self.params.optimizer

    def objective_and_rmse(self, reg: float, reg_bias: float) -> tuple[float, float]:
        """J and the training RMSE of the current factors (the trainer's per-epoch figures)."""
        from mfrec.training import objective  # its kernels import numba

        return objective.objective_and_rmse(self.factors, self.train, reg, reg_bias)

    def sync(self) -> None:  # noqa: B027 (most solvers update the factors themselves)
        """Bring `factors` up to date. A solver that trains on a private copy of the factors
        (sgd) copies it back here; reading `factors` through the solver does it too."""

    @abstractmethod
    def run_epoch(self, epoch: int) -> int:
        """Run one pass over the training data, updating `self.factors` in place.

        Returns the number of parameter updates made (ratings for sgd, batches for
        minibatch, 1 for bgd, 2 half-steps for als).
        """
