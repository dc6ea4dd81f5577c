"""Learning-rate control shared by the gradient solvers (sgd, minibatch, bgd).

A solver takes the step ``-lr * g`` where g is half the gradient of the loss it looks at (see
docs/math.md); the optimizer decides how g becomes a step:

- ``constant``: x -= lr g.
- ``decay``: x -= lr_t g with lr_t = lr / (1 + decay·t), t the epoch index from 0.
- ``adagrad``, ``momentum`` (heavy ball), ``adam``: per-parameter state, updated lazily: only
  the rows a step touches (the rated users and items of the rating or batch) change, and adam's
  bias correction uses each row's own step count.

The update rules themselves are in `mfrec.kernels.steps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from mfrec.errors import ParameterError
from mfrec.kernels.steps import OPT_ADAGRAD, OPT_ADAM, OPT_CONSTANT, OPT_MOMENTUM

if TYPE_CHECKING:  # importing mfrec.training.solvers here would be circular (its solvers import us)
    from mfrec.training.state import Factors, SolverParams
#: Optimizer names and the kernel rule each uses.
OPTIMIZERS = {
    "constant": OPT_CONSTANT,
    "decay": OPT_CONSTANT,
    "adagrad": OPT_ADAGRAD,
    "momentum": OPT_MOMENTUM,
    "adam": OPT_ADAM,
}
#: adam's second-moment decay (its first-moment decay is SolverParams.momentum).
ADAM_BETA2 = 0.999
#: Added to the root of the squared-gradient state by adagrad and adam.
EPSILON = 1e-8


def optimizer_code(name: str) -> int:
    """The kernel rule of optimizer `name`; ParameterError (a ValueError) names the allowed."""
    try:
        return OPTIMIZERS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(OPTIMIZERS)
        raise ParameterError("optimizer", name, f"must be one of {allowed}") from None


def epoch_lr(lr: float, optimizer: str, decay: float, epoch: int) -> float:
    """The learning rate of epoch `epoch` (from 0): lr / (1 + decay·epoch) for ``decay``."""
    if optimizer == "decay":
        return lr / (1.0 + decay * epoch)
    return lr


@dataclass
class OptimizerState:
    """Per-parameter optimizer state for one set of factors.

    ``state`` is ``(P1, P2, Q1, Q2, bu1, bu2, bi1, bi2)``: the first and second state of each
    parameter group, bias states as (n, 1) columns; a state the rule does not use is empty.
    ``steps`` counts the steps taken by each user row and each item row.
    """

    code: int
    state: tuple[NDArray[np.floating], ...]
    steps: tuple[NDArray[np.int64], NDArray[np.int64]]

    @classmethod
    def create(cls, name: str, factors: Factors) -> OptimizerState:
        """Zero state for optimizer `name` over `factors` (same dtype)."""
        code = optimizer_code(name)
        n_slots = {OPT_CONSTANT: 0, OPT_ADAGRAD: 1, OPT_MOMENTUM: 1, OPT_ADAM: 2}[code]
        dtype = factors.P.dtype
        shapes = [factors.P.shape, factors.Q.shape, (len(factors.bu), 1), (len(factors.bi), 1)]
        state = []
        for n_rows, width in shapes:
            for slot in range(2):
                rows = n_rows if slot < n_slots else 0
                state.append(np.zeros((rows, width), dtype=dtype))
        steps = (
            np.zeros(len(factors.bu), dtype=np.int64),
            np.zeros(len(factors.bi), dtype=np.int64),
        )
        return cls(code, tuple(state), steps)

    def hyper(self, lr: float, params: SolverParams, dtype: np.dtype) -> tuple:
        """The kernels' ``(lr, beta1, beta2, eps)`` in `dtype`."""
        cast = np.dtype(dtype).type
        return (cast(lr), cast(params.momentum), cast(ADAM_BETA2), cast(EPSILON))
