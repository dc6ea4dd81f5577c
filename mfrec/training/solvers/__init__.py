"""The training algorithms, one module each, picked by name from `SOLVERS`."""

from __future__ import annotations

from mfrec.errors import ParameterError
from mfrec.training.solvers.als import ALS
from mfrec.training.solvers.base import Solver
from mfrec.training.solvers.bgd import BGD
from mfrec.training.solvers.minibatch import MiniBatch
from mfrec.training.solvers.sgd import SGD

SOLVERS: dict[str, type[Solver]] = {
    "sgd": SGD,
    "bgd": BGD,
    "minibatch": MiniBatch,
    "als": ALS,
}


def get_solver(name: str) -> type[Solver]:
    """The solver class called `name`; ParameterError (a ValueError) naming the allowed ones."""
    try:
        return SOLVERS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(SOLVERS)
        raise ParameterError("solver", name, f"must be one of {allowed}") from None


__all__ = ["SOLVERS", "Solver", "get_solver"]
