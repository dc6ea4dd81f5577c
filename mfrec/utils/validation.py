"""Parameter checks shared by every stage, with one wording for their messages.

As scikit-learn's ``utils/validation.py``: a parameter is checked once, where it enters the
library, and a bad one raises `ParameterError` naming it, its value and what it must be
(``factors=0: must be >= 1``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

import numpy as np

from mfrec.errors import NotFittedError, ParameterError


def is_int(value: object) -> bool:
    """An integer, numpy's included, but not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool | np.bool_)


def is_real(value: object) -> bool:
    """A real number, numpy's and integers included, but not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def check_int(name: str, value: object, *, minimum: int = 1, optional: bool = False) -> None:
    """`value` is an integer >= `minimum` (or None with `optional`)."""
    if value is None and optional:
        return
    if not is_int(value):
        raise ParameterError(name, value, f"must be an integer >= {minimum}")
    if value < minimum:
        raise ParameterError(name, value, f"must be >= {minimum}")


def check_real(
    name: str, value: object, *, low: float, low_open: bool = False, high: float | None = None
) -> None:
    """`value` in [low, high) (or (low, high) with `low_open`), finite; high=None: no bound."""
    if high is None:
        wanted = f"> {low:g}" if low_open else f">= {low:g}"
    else:
        wanted = f"in {'(' if low_open else '['}{low:g}, {high:g})"
    if not is_real(value):
        raise ParameterError(name, value, f"must be a number {wanted}")
    ok = math.isfinite(value) and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and value < high
    if not ok:
        raise ParameterError(name, value, f"must be {wanted}")


def check_choice(name: str, value: object, allowed: Iterable[Any]) -> None:
    """`value` is one of `allowed` (listed in the message in the order given)."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ParameterError(name, value, f"must be one of {', '.join(map(str, allowed))}")


def check_seed(seed: object) -> None:
    """`seed` is an int >= 0, a numpy Generator or None."""
    if not (seed is None or isinstance(seed, np.random.Generator) or (is_int(seed) and seed >= 0)):
        raise ParameterError("seed", seed, "must be an int >= 0, a Generator or None")


def resolve_seed(seed: int | np.random.Generator | None) -> int:
    """The int seed that reproduces a run: as given, drawn from the Generator, or drawn from
    fresh entropy (None)."""
    if is_int(seed):
        return int(seed)
    return int(np.random.default_rng(seed).integers(2**63 - 1))


def check_fitted(estimator: object, attribute: str = "user_factors_") -> None:
    """Raise NotFittedError unless `estimator` has the fitted `attribute` (scikit-learn's
    ``check_is_fitted``)."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(
            f"This {type(estimator).__name__} is not fitted yet: call fit(data) first"
        )
