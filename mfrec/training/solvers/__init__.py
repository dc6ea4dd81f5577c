"""The training algorithms, one module each, picked by name from `SOLVERS`.

`SOLVERS` maps a name to its class and imports the class's module on the first lookup of that
name: the solver modules import numba and their kernels, which code that only checks or lists
names (the estimator's parameter checks, ``mfrec info``) never needs.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from mfrec.errors import ParameterError
from mfrec.training.solvers.base import Solver

#: Where each solver's class lives: name -> (module, class).
SOLVER_CLASSES = {
    "sgd": ("mfrec.training.solvers.sgd", "SGD"),
    "bgd": ("mfrec.training.solvers.bgd", "BGD"),
    "minibatch": ("mfrec.training.solvers.minibatch", "MiniBatch"),
    "als": ("mfrec.training.solvers.als", "ALS"),
}


class SolverRegistry(Mapping[str, type[Solver]]):
    """Solver classes by name, each module imported when its name is first looked up."""

    def __init__(self, where: Mapping[str, tuple[str, str]]):
        self._where = dict(where)

    def __getitem__(self, name: str) -> type[Solver]:
        module, cls = self._where[name]
        return getattr(importlib.import_module(module), cls)

    def __contains__(self, name: object) -> bool:
        # Mapping's own looks the class up, which would import it.
        return name in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


SOLVERS: Mapping[str, type[Solver]] = SolverRegistry(SOLVER_CLASSES)


def get_solver(name: str) -> type[Solver]:
    """The solver class called `name`; ParameterError (a ValueError) naming the allowed ones."""
    try:
        return SOLVERS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(SOLVERS)
        raise ParameterError("solver", name, f"must be one of {allowed}") from None


__all__ = ["SOLVERS", "Solver", "get_solver"]
