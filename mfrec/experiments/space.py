"""The search space of `mfrec.experiments.tune.tune`: which estimator parameters a trial takes
and the values to try, written as on the command line (`parse_param`)::

    factors=16,32,64,128      a list: exactly these values
    reg=0.01:0.2:log          a range, drawn log-uniformly (``:lin``, the default, uniformly)
    epochs=10:100             a range of integers (both ends written as integers)
    lr=0.005:0.05:log:4       a range with a number of points, as grid search needs

and the trials drawn from a space (`make_trials`): every combination, or random draws.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfrec.errors import ParameterError
from mfrec.model.estimator import MatrixFactorization
from mfrec.utils.validation import check_choice, check_int

SEARCH_METHODS = ("grid", "random")

#: Trials in a random search when `trials` is not given.
DEFAULT_TRIALS = 20

#: Estimator parameters no trial takes from the caller: tune sets them itself.
_NOT_SEARCHABLE = {
    "validation": "tune holds out its own validation part (validation, folds)",
    "patience": "tune sets it (patience)",
    "seed": "tune sets it (seed)",
    "progress": "not a model parameter",
    "threads": "each trial runs on one thread; trials run side by side (jobs)",
}

_INT = re.compile(r"[+-]?\d+\Z")
_SCALES = ("lin", "log")
#: Significant digits kept from a drawn or spaced value: 0.0734 reads better than
#: 0.07341234987, and no search resolves finer differences.
_DIGITS = 3
#: Draws allowed per wanted trial before a random search over a small discrete space stops
#: looking for parameter sets it has not drawn yet.
_DRAWS_PER_TRIAL = 50

# -- search spaces --------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A list of values to try, in the order given."""

    name: str
    values: tuple[Any, ...]
    spec: str

    def grid(self) -> tuple[Any, ...]:
        """The values grid search tries."""
        return self.values

    def sample(self, rng: np.random.Generator) -> Any:
        """One value drawn uniformly."""
        return self.values[int(rng.integers(len(self.values)))]


@dataclass(frozen=True)
class Range:
    """Numbers from `low` to `high` (both included), spaced linearly or logarithmically.

    `integer` ranges hold whole numbers only. `points` is how many values grid search tries.
    """

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False
    points: int | None = None
    spec: str = ""

    def grid(self) -> tuple[Any, ...]:
        """`points` values from `low` to `high`, evenly spaced on the range's scale."""
        if self.points is None:
            raise ParameterError(
                self.name,
                self.spec,
                f"grid search needs a number of points for a range, e.g. {self.spec}:5",
            )
        spaced = (np.geomspace if self.log else np.linspace)(self.low, self.high, self.points)
        return tuple(dict.fromkeys(self._value(x) for x in spaced))

    def sample(self, rng: np.random.Generator) -> Any:
        """One value drawn uniformly on the range's scale."""
        # Integers draw over [low, high + 1) and round down, so each end is as likely as the
        # other values.
        high = self.high + 1 if self.integer else self.high
        if self.log:
            x = math.exp(rng.uniform(math.log(self.low), math.log(high)))
        else:
            x = rng.uniform(self.low, high)
        return self._value(math.floor(x) if self.integer else x)

    def _value(self, x: float) -> Any:
        if self.integer:
            return int(min(max(round(x), self.low), self.high))
        return min(max(_round(x), self.low), self.high)


Param = Choice | Range


def parse_param(spec: str) -> Param:
    """Parse one ``NAME=VALUES`` search specification (see the module docstring).

    Raises
    ------
    ParameterError
        Bad syntax or an impossible range; `param` is the parameter's name (``"param"`` when
        there is none) and `value` the specification.
    """
    name, sep, text = spec.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ParameterError(
            "param", spec, "expected NAME=VALUES, e.g. factors=16,32,64 or reg=0.01:0.2:log"
        )
    check_searchable(name, spec)
    text = text.strip()
    if not text:
        raise ParameterError(name, spec, "no values")
    if ":" in text:
        return _parse_range(name, text, spec)
    values = tuple(_scalar(token.strip()) for token in text.split(","))
    if "" in values:
        raise ParameterError(name, spec, "empty value in the list")
    if len(set(values)) != len(values):
        raise ParameterError(name, spec, "a value is listed twice")
    return Choice(name, values, spec)


def parse_space(specs: Iterable[str]) -> dict[str, Param]:
    """Parse several specifications into a search space (one per parameter name)."""
    space: dict[str, Param] = {}
    for spec in specs:
        param = parse_param(spec)
        if param.name in space:
            raise ParameterError(param.name, spec, "the parameter is given twice")
        space[param.name] = param
    return space


def _parse_range(name: str, text: str, spec: str) -> Range:
    low_text, _, rest = text.partition(":")
    high_text, _, rest = rest.partition(":")
    extras = rest.split(":") if rest else []
    low, high = (
        _number(name, spec, which, t) for which, t in (("LOW", low_text), ("HIGH", high_text))
    )
    scale, points = "lin", None
    seen: set[str] = set()
    for extra in extras:
        if extra in _SCALES and "scale" not in seen:
            scale = extra
            seen.add("scale")
        elif _INT.match(extra) and "points" not in seen:
            points = int(extra)
            seen.add("points")
        else:
            raise ParameterError(
                name, spec, f"expected LOW:HIGH[:lin|:log][:POINTS], got {extra!r} after HIGH"
            )
    if not low < high:
        raise ParameterError(name, spec, f"LOW {low_text} must be below HIGH {high_text}")
    if scale == "log" and low <= 0:
        raise ParameterError(name, spec, "a log range needs LOW > 0")
    if points is not None and points < 2:
        raise ParameterError(name, spec, "POINTS must be at least 2")
    integer = bool(_INT.match(low_text.strip()) and _INT.match(high_text.strip()))
    return Range(name, low, high, log=scale == "log", integer=integer, points=points, spec=spec)


def _number(name: str, spec: str, which: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ParameterError(name, spec, f"{which} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ParameterError(name, spec, f"{which} {text.strip()!r} is not a finite number")
    return int(value) if _INT.match(text.strip()) else value


def _scalar(token: str) -> Any:
    """A list item as the type it reads as: int, float, true/false, or a string."""
    if _INT.match(token):
        return int(token)
    lowered = token.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(token)
    except ValueError:
        return token


def _round(x: float) -> float:
    return float(f"{x:.{_DIGITS}g}")


def _estimator_params() -> list[str]:
    return list(MatrixFactorization().get_params())


def check_searchable(name: str, spec: object, action: str = "searched") -> None:
    """ParameterError unless `name` is an estimator parameter a trial may take (`action`
    says how: ``searched``, or ``fixed`` for the parameters given to `tune`)."""
    if name in _NOT_SEARCHABLE:
        raise ParameterError(name, spec, f"cannot be {action}: {_NOT_SEARCHABLE[name]}")
    valid = [p for p in _estimator_params() if p not in _NOT_SEARCHABLE]
    if name not in valid:
        raise ParameterError(name, spec, f"no such parameter; valid ones: {', '.join(valid)}")


def as_space(space: Mapping[str, Param | str] | Iterable[str]) -> dict[str, Param]:
    """A search space from ``{name: Choice | Range | "spec"}`` or from specifications
    ``["reg=0.01:0.2:log", ...]``."""
    if isinstance(space, Mapping):
        out: dict[str, Param] = {}
        for name, p in space.items():
            param = parse_param(f"{name}={p}") if isinstance(p, str) else p
            if param.name != name:
                raise ParameterError(name, p, f"the specification is for {param.name}")
            check_searchable(name, param.spec)
            out[name] = param
        return out
    return parse_space(space)


# -- trials ---------------------------------------------------------------------------------


def make_trials(
    space: Mapping[str, Param],
    search: str = "random",
    trials: int | None = None,
    seed: int | np.random.Generator | None = None,
) -> list[dict[str, Any]]:
    """The parameter sets to try, in order.

    Grid search: every combination, the first parameter varying slowest (`trials` must be
    None). Random search: `trials` distinct sets (default `DEFAULT_TRIALS`; fewer when the
    space holds fewer), each parameter drawn independently.
    """
    check_choice("search", search, SEARCH_METHODS)
    if trials is not None:
        check_int("trials", trials)
    if search == "grid":
        if trials is not None:
            raise ParameterError(
                "trials", trials, "grid search tries every combination; trials is for random"
            )
        names = list(space)
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(space[n].grid() for n in names))
        ]
    wanted = DEFAULT_TRIALS if trials is None else trials
    rng = np.random.default_rng(seed)
    drawn: dict[tuple[Any, ...], dict[str, Any]] = {}
    for _ in range(wanted * _DRAWS_PER_TRIAL):
        params = {name: p.sample(rng) for name, p in space.items()}
        drawn.setdefault(tuple(params.values()), params)
        if len(drawn) == wanted:
            break
    return list(drawn.values())
