"""Hyperparameter search: grid or random trials, each early-stopped on held-out training data.

A search space maps estimator parameters (`mfrec.model.estimator.MatrixFactorization`) to the values
to try, written as on the command line (`parse_param`)::

    factors=16,32,64,128      a list: exactly these values
    reg=0.01:0.2:log          a range, drawn log-uniformly (``:lin``, the default, uniformly)
    epochs=10:100             a range of integers (both ends written as integers)
    lr=0.005:0.05:log:4       a range with a number of points, as grid search needs

`tune` only ever sees the ratings it is given. It holds out part of them (``validation``, a
fraction, or ``folds``, an inner k-fold), trains every trial on the rest with early stopping
on the held-out part, and scores the kept epoch there. Every trial uses the same held-out
split and the same model seed, so trials differ only in their parameters; the trials, their
scores and the winner are fixed by `seed` whatever the number of `jobs`. The winner's
parameters include ``epochs``, the epoch early stopping kept, so that refitting on all the
ratings (`TuneResult.best_estimator`, or ``mfrec train --params best.json``) needs no
held-out part.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd

from mfrec.errors import DataFormatError, DivergenceError, ParameterError
from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.ratingdata import RatingData
from mfrec.ratings.split import _check_int
from mfrec.utils.validation import resolve_seed as seed_of

logger = logging.getLogger(__name__)

SEARCH_METHODS = ("grid", "random")
METRICS = ("rmse", "mae")

#: Trials in a random search when `trials` is not given.
DEFAULT_TRIALS = 20
#: Held-out fraction of the ratings when neither `folds` nor `validation` is given.
DEFAULT_VALIDATION = 0.1
#: Early stopping: epochs without improvement before a trial stops.
DEFAULT_PATIENCE = 5
#: The most epochs a trial runs when neither the fixed parameters nor the space set `epochs`.
DEFAULT_MAX_EPOCHS = 200

#: Estimator parameters no trial takes from the caller: tune sets them itself.
_NOT_SEARCHABLE = {
    "validation": "tune holds out its own validation part (validation, folds)",
    "patience": "tune sets it (patience)",
    "seed": "tune sets it (seed)",
    "progress": "not a model parameter",
    "threads": "each trial runs on one thread; trials run side by side (jobs)",
}
#: Parameters a params file cannot set: a data set, and a display setting.
_NOT_IN_PARAMS_FILE = ("validation", "progress")

_INT = re.compile(r"[+-]?\d+\Z")
_SCALES = ("lin", "log")
#: Significant digits kept from a drawn or spaced value: 0.0734 reads better than
#: 0.07341234987, and no search resolves finer differences.
_DIGITS = 3
#: Draws allowed per wanted trial before a random search over a small discrete space stops
#: looking for parameter sets it has not drawn yet.
_DRAWS_PER_TRIAL = 50
#: Environment that makes each worker process single-threaded (BLAS, OpenMP, numba).
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


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
    _check_searchable(name, spec)
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


def _check_searchable(name: str, spec: object, action: str = "searched") -> None:
    """ParameterError unless `name` is an estimator parameter a trial may take (`action`
    says how: ``searched``, or ``fixed`` for the parameters given to `tune`)."""
    if name in _NOT_SEARCHABLE:
        raise ParameterError(name, spec, f"cannot be {action}: {_NOT_SEARCHABLE[name]}")
    valid = [p for p in _estimator_params() if p not in _NOT_SEARCHABLE]
    if name not in valid:
        raise ParameterError(name, spec, f"no such parameter; valid ones: {', '.join(valid)}")


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
    if search not in SEARCH_METHODS:
        raise ParameterError("search", search, f"must be one of {', '.join(SEARCH_METHODS)}")
    if trials is not None:
        _check_int("trials", trials, 1)
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


@dataclass(frozen=True)
class _Setup:
    """Everything a trial needs besides its parameters (sent once to each worker)."""

    parts: tuple[tuple[RatingData, RatingData], ...]
    fixed: dict[str, Any]
    patience: int
    seed: int
    metric: str


def _run_trial(setup: _Setup, params: dict[str, Any]) -> dict[str, Any]:
    """Train and score one parameter set on every held-out part; a diverged trial scores NaN."""
    from mfrec.model.metrics import mae, rmse

    score = {"rmse": rmse, "mae": mae}[setup.metric]
    start = time.perf_counter()
    scores, epochs = [], []
    try:
        for train, held_out in setup.parts:
            model = MatrixFactorization(
                **setup.fixed, **params, patience=setup.patience, seed=setup.seed
            ).fit(train, validation=held_out)
            # Every held-out rating counts: one whose user or item the training part lacks
            # gets the model's fallback prediction, as it would in use.
            u = model.user_map_.indices(held_out.user_map.ids)[held_out.users]
            i = model.item_map_.indices(held_out.item_map.ids)[held_out.items]
            scores.append(score(held_out.ratings, model.predict_indices(u, i)))
            epochs.append(model.best_epoch_)
    except DivergenceError as exc:
        return _trial_row(setup.metric, math.nan, math.nan, 0, str(exc), start)
    std = float(np.std(scores, ddof=1)) if len(scores) > 1 else math.nan
    # A refit needs at least one epoch, even where the starting point scored best.
    best_epoch = max(1, round(float(np.mean(epochs))))
    return _trial_row(setup.metric, float(np.mean(scores)), std, best_epoch, "", start)


def _trial_row(
    metric: str, score: float, std: float, best_epoch: int, error: str, start: float
) -> dict[str, Any]:
    """A trial's figures, named as in `TuneResult.results`."""
    return {
        metric: score,
        f"{metric}_std": std,
        "best_epoch": best_epoch,
        "seconds": time.perf_counter() - start,
        "error": error,
    }


_worker_setup: _Setup | None = None


def _init_worker(setup: _Setup) -> None:
    global _worker_setup
    _worker_setup = setup


def _worker_trial(params: dict[str, Any]) -> dict[str, Any]:
    """`_run_trial` in a worker, on the setup `_init_worker` received."""
    return _run_trial(_worker_setup, params)


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Worker processes take their thread limits from the environment they start with."""
    saved = {name: os.environ.get(name) for name in _THREAD_ENV}
    os.environ.update(dict.fromkeys(_THREAD_ENV, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _map_trials(
    func: Callable[[dict[str, Any]], Any],
    trials: Sequence[dict[str, Any]],
    jobs: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    done: Callable[[int, Any], None],
) -> list[Any]:
    """``[func(t) for t in trials]`` over `jobs` single-threaded processes, in trial order.

    `done(index, result)` is called as each trial finishes (in finishing order). Workers are
    spawned, not forked: a fork would copy the parent's numba and BLAS thread pools. A spawn
    context starts all its workers at the first submit, inside the single-threaded
    environment.
    """
    results: list[Any] = [None] * len(trials)
    executor = ProcessPoolExecutor(
        max_workers=min(jobs, len(trials)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=initializer,
        initargs=initargs,
    )
    with executor:
        try:
            with _single_threaded_children():
                futures = {executor.submit(func, t): i for i, t in enumerate(trials)}
            for future in as_completed(futures):
                index = futures[future]
                results[index] = future.result()
                done(index, results[index])
        except BaseException:
            executor.shutdown(wait=True, cancel_futures=True)
            raise
    return results


# -- the search -----------------------------------------------------------------------------


@dataclass(eq=False)
class TuneResult:
    """What `tune` returns.

    Attributes
    ----------
    results
        One row per trial, best first: ``rank``, ``trial`` (its place in the order tried),
        the searched parameters, the metric's mean over the held-out parts and its standard
        deviation across them (``<metric>_std``, NaN with one part), ``best_epoch`` (the
        epoch early stopping kept, averaged over the parts), ``seconds`` and ``error`` (why a
        trial failed: it diverged; such trials rank last with a NaN score).
    best_params
        The fixed parameters plus the winner's, with ``epochs`` the epoch it kept: what
        `write_params` writes and ``mfrec train --params`` reads.
    metric
        ``rmse`` or ``mae``: lower is better.
    seed
        The int seed that reproduces the search.
    """

    results: pd.DataFrame
    best_params: dict[str, Any]
    metric: str
    seed: int

    @property
    def best_score(self) -> float:
        """The winner's score on the held-out parts."""
        return float(self.results[self.metric].iloc[0])

    def best_estimator(self) -> MatrixFactorization:
        """An unfitted estimator with the best parameters and the search's seed."""
        return MatrixFactorization(**self.best_params, seed=self.seed)


def tune(
    data: RatingData,
    space: Mapping[str, Param | str] | Iterable[str],
    *,
    search: str = "random",
    trials: int | None = None,
    folds: int | None = None,
    validation: float | None = None,
    patience: int = DEFAULT_PATIENCE,
    metric: str = "rmse",
    jobs: int = 1,
    seed: int | np.random.Generator | None = 0,
    on_trial: Callable[[int, int, dict[str, Any]], None] | None = None,
    **params: Any,
) -> TuneResult:
    """Search `space` for the estimator parameters that score best on held-out `data`.

    Parameters
    ----------
    data
        The only ratings the search sees: the held-out parts come from them.
    space
        ``{name: Choice | Range | "spec"}`` or specifications ``["reg=0.01:0.2:log", ...]``.
    search, trials
        ``grid`` (every combination; ranges need points) or ``random`` (`trials` draws).
    folds, validation
        How the held-out part is made, one or the other: an inner k-fold (each trial trains
        `folds` times and scores the mean), or a random `validation` fraction (default
        `DEFAULT_VALIDATION`).
    patience
        Early stopping: a trial stops once the held-out RMSE has not improved for this many
        epochs, and keeps its best epoch.
    metric
        ``rmse`` or ``mae`` on the held-out part (predictions clipped to the rating scale).
    jobs
        Trials run in this many worker processes, each single-threaded; 1 runs them here.
    seed
        Fixes the trials, the held-out parts and every model's start.
    on_trial
        ``on_trial(done, total, row)`` after each trial finishes (in finishing order), `row`
        being its row of `TuneResult.results` without the rank.
    **params
        Fixed estimator parameters (``solver="sgd"``, ``factors=100``, ...). ``epochs`` is
        the most any trial runs (default `DEFAULT_MAX_EPOCHS`).

    Raises
    ------
    ParameterError
        A bad option, specification or parameter value (the first trial using it stops the
        search).
    """
    from mfrec.ratings.split import kfold, split

    space = _as_space(space)
    for name in params:
        _check_searchable(name, params[name], "fixed")
        if name in space:
            raise ParameterError(name, params[name], "given both as a fixed value and searched")
    if metric not in METRICS:
        raise ParameterError("metric", metric, f"must be one of {', '.join(METRICS)}")
    _check_int("jobs", jobs, 1)
    _check_int("patience", patience, 1)
    if folds is not None and validation is not None:
        raise ParameterError("folds", folds, "give folds or validation, not both")
    if folds is not None:
        _check_int("folds", folds, 2)
    if len(data) == 0:
        raise DataFormatError("no ratings to tune on", source=data.source)
    seed = resolve_seed(seed)
    trial_seed, split_seed = np.random.SeedSequence(seed).spawn(2)
    trial_list = make_trials(space, search, trials, np.random.default_rng(trial_seed))
    if not trial_list:
        raise ParameterError("trials", trials, "the search space yields no trial")

    split_rng = np.random.default_rng(split_seed)
    if folds is not None:
        parts = tuple((s.train, s.test) for s in kfold(data, folds, seed=split_rng))
    else:
        fraction = DEFAULT_VALIDATION if validation is None else validation
        held = split(data, test_size=fraction, seed=split_rng)
        parts = ((held.train, held.test),)
    fixed = dict(params)
    if "epochs" not in space:
        fixed.setdefault("epochs", DEFAULT_MAX_EPOCHS)
    # One thread per fit: trials run side by side, and a result must not depend on jobs.
    fixed["threads"] = 1
    setup = _Setup(parts, fixed, patience, seed, metric)

    logger.info(
        "tune: %d %s trials on %d ratings, %d held-out part(s), %d job(s)",
        len(trial_list), search, len(data), len(parts), jobs,
    )  # fmt: skip
    finished = 0

    def done(index: int, row: Any) -> None:
        nonlocal finished
        finished += 1
        if isinstance(row, dict):
            logger.info("trial %d %s: %s %.5f", index, trial_list[index], metric, row[metric])
            if on_trial is not None:
                on_trial(finished, len(trial_list), {"trial": index, **trial_list[index], **row})

    if jobs == 1:
        rows = []
        for i, t in enumerate(trial_list):
            rows.append(_run_trial(setup, t))
            done(i, rows[-1])
    else:
        rows = _map_trials(_worker_trial, trial_list, jobs, _init_worker, (setup,), done)
    return _result(trial_list, rows, fixed, metric, seed)


def _result(
    trial_list: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    fixed: dict[str, Any],
    metric: str,
    seed: int,
) -> TuneResult:
    table = pd.DataFrame(
        [{"trial": i, **t, **r} for i, (t, r) in enumerate(zip(trial_list, rows, strict=True))]
    )
    # A stable sort on the score with ties in trial order: the same winner on every run.
    table = table.sort_values(metric, kind="stable", na_position="last").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    if not np.isfinite(table[metric].iloc[0]):
        raise DivergenceError(f"every trial diverged; the first: {table['error'].iloc[0]}")
    # The cap on epochs gives way to the epoch the winner kept, listed last.
    best_params = {k: v for k, v in fixed.items() if k not in ("threads", "epochs")}
    best_params.update(trial_list[int(table["trial"].iloc[0])])
    best_params["epochs"] = int(table["best_epoch"].iloc[0])
    return TuneResult(table, best_params, metric, seed)


def _as_space(space: Mapping[str, Param | str] | Iterable[str]) -> dict[str, Param]:
    if isinstance(space, Mapping):
        out: dict[str, Param] = {}
        for name, p in space.items():
            param = parse_param(f"{name}={p}") if isinstance(p, str) else p
            if param.name != name:
                raise ParameterError(name, p, f"the specification is for {param.name}")
            _check_searchable(name, param.spec)
            out[name] = param
        return out
    return parse_space(space)


def resolve_seed(seed: int | np.random.Generator | None) -> int:
    """The int seed a search (or a cross-validation) runs with: as given, or drawn from the
    Generator or fresh entropy; it reproduces the run."""
    if isinstance(seed, Integral) and not isinstance(seed, bool) and seed < 0:
        raise ParameterError("seed", seed, "must be an int >= 0, a Generator or None")
    return seed_of(seed)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# -- params files ---------------------------------------------------------------------------


def write_params(path: str | os.PathLike[str], params: Mapping[str, Any]) -> None:
    """Write estimator parameters as a JSON object (atomically), as `read_params` reads."""
    from mfrec.utils.atomicfile import atomic_open

    with atomic_open(path) as fh:
        json.dump({k: _plain(v) for k, v in params.items()}, fh, indent=2)
        fh.write("\n")


def read_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON object of estimator parameters, as `write_params` writes them.

    Raises
    ------
    DataFormatError
        Not JSON, not an object, or a key that is not an estimator parameter a file can set.
    """
    source = os.fspath(path)
    with open(path, encoding="utf-8") as fh:
        try:
            params = json.load(fh)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"not valid JSON: {exc.msg}", source=source, line=exc.lineno
            ) from None
    if not isinstance(params, dict):
        raise DataFormatError("expected a JSON object of parameters", source=source)
    valid = [p for p in _estimator_params() if p not in _NOT_IN_PARAMS_FILE]
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise DataFormatError(
            f"unknown parameter {unknown[0]!r}; valid ones: {', '.join(valid)}", source=source
        )
    return params
