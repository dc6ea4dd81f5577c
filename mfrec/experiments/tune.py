"""Hyperparameter search: grid or random trials, each early-stopped on held-out training data.

A search space maps estimator parameters (`mfrec.model.estimator.MatrixFactorization`) to the
values to try, written as on the command line (``factors=16,32,64``, ``reg=0.01:0.2:log``; see
`mfrec.experiments.space`).

`tune` only ever sees the ratings it is given. It holds out part of them (``validation``, a
fraction, or ``folds``, an inner k-fold), trains every trial on the rest with early stopping
on the held-out part, and scores the kept epoch there. Every trial uses the same held-out
split and the same model seed, so trials differ only in their parameters; the trials, their
scores and the winner are fixed by `seed` whatever the number of `jobs`. The winner's
parameters include ``epochs``, the epoch early stopping kept, so that refitting on all the
ratings (`TuneResult.best_estimator`, or ``mfrec train --params best.json``, a file
`mfrec.experiments.paramsfile.write_params` writes) needs no held-out part.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mfrec.errors import DataFormatError, DivergenceError, ParameterError
from mfrec.experiments.space import Param, as_space, check_searchable, make_trials
from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.ratingdata import RatingData
from mfrec.utils.validation import check_choice, check_int, check_seed, resolve_seed

logger = logging.getLogger(__name__)

METRICS = ("rmse", "mae")

#: Held-out fraction of the ratings when neither `folds` nor `validation` is given.
DEFAULT_VALIDATION = 0.1
#: Early stopping: epochs without improvement before a trial stops.
DEFAULT_PATIENCE = 5
#: The most epochs a trial runs when neither the fixed parameters nor the space set `epochs`.
DEFAULT_MAX_EPOCHS = 200

#: Environment that makes each worker process single-threaded (BLAS, OpenMP, numba).
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


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
        `mfrec.experiments.paramsfile.write_params` writes and ``mfrec train --params`` reads.
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

    space = as_space(space)
    for name in params:
        check_searchable(name, params[name], "fixed")
        if name in space:
            raise ParameterError(name, params[name], "given both as a fixed value and searched")
    check_choice("metric", metric, METRICS)
    check_int("jobs", jobs)
    check_int("patience", patience)
    if folds is not None and validation is not None:
        raise ParameterError("folds", folds, "give folds or validation, not both")
    if folds is not None:
        check_int("folds", folds, minimum=2)
    if len(data) == 0:
        raise DataFormatError("no ratings to tune on", source=data.source)
    check_seed(seed)
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
