"""k-fold cross-validation of one set of estimator parameters.

Each fold trains `mfrec.model.estimator.MatrixFactorization` on its training part and scores
its test part with `mfrec.model.evaluate.evaluate`: RMSE and MAE, and the ranking metrics at k.
The folds come from `mfrec.ratings.split.kfold` (every rating is tested exactly once; the same
seed gives the same folds as ``mfrec split --folds``) or from predefined (base, test) pairs
such as MovieLens 100k's u1-u5.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mfrec.errors import ParameterError
from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.ratingdata import RatingData
from mfrec.utils.validation import check_int, check_seed, resolve_seed

logger = logging.getLogger(__name__)

#: A fold's ratings: loaded data, or a path (or dataset name) that `load_ratings` reads.
Source = RatingData | str | os.PathLike[str]

#: Figures of `mfrec.model.evaluate.Evaluation` taken into the fold table, in this order.
RATING_METRICS = ("rmse", "mae", "rmse_all", "mae_all")
#: Ranking figures; the table names them with the cut-off, e.g. ``precision@10``.
RANKING_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")


@dataclass(eq=False)
class CVResult:
    """What `cross_validate` returns.

    Attributes
    ----------
    folds
        One row per fold: ``fold`` (1-based), ``train`` and ``test`` (ratings), the rating
        metrics (``rmse``, ``mae`` over the test pairs whose user and item the model knows;
        ``rmse_all``, ``mae_all`` over every test rating, the others with the fallback
        prediction), the ranking metrics at k (``precision@10``, ...; NaN when no user could
        be ranked), ``epochs`` run and ``seconds`` of fitting.
    summary
        Rows ``mean`` and ``std`` (sample standard deviation across the folds, ddof=1) of
        every column of `folds` but ``fold``.
    k
        The cut-off of the ranking metrics.
    """

    folds: pd.DataFrame
    summary: pd.DataFrame
    k: int

    def metric_columns(self) -> list[str]:
        """The metric columns of `folds`, rating metrics first."""
        ranking = [f"{name}@{self.k}" for name in RANKING_METRICS]
        return [c for c in (*RATING_METRICS, *ranking) if c in self.folds]


def cross_validate(
    data: RatingData | None = None,
    *,
    folds: int = 5,
    folds_files: Sequence[tuple[Source, Source]] | None = None,
    k: int = 10,
    seed: int | np.random.Generator | None = 0,
    by: str = "random",
    load_options: dict[str, Any] | None = None,
    on_fold: Callable[[int, int, dict[str, Any]], None] | None = None,
    **params: Any,
) -> CVResult:
    """Train and score the estimator with `params` on each fold.

    Parameters
    ----------
    data
        The ratings to cut into `folds` folds (``by="random"`` or ``"user"``, see
        `mfrec.ratings.split.kfold`). Leave it None when giving `folds_files`.
    folds_files
        Predefined folds instead: (train, test) pairs of RatingData or paths, each path read
        with `load_options` (as `mfrec.ratings.load.load_ratings` takes them) when its fold starts.
    k
        Cut-off of the ranking metrics.
    seed
        Fixes the fold assignment and every model's start.
    on_fold
        ``on_fold(done, total, row)`` after each fold.
    **params
        Estimator parameters (``solver="sgd"``, ``factors=64``, ...). A ``validation``
        fraction with ``patience`` early-stops on a part of each fold's training ratings.
    """
    from mfrec.model.evaluate import evaluate
    from mfrec.model.recommend import check_k

    check_k(k)
    check_seed(seed)
    seed = resolve_seed(seed)
    MatrixFactorization().set_params(**params)  # unknown names fail before any fold runs
    total = folds if folds_files is None else len(folds_files)
    rows = []
    for number, (train, test) in enumerate(_fold_pairs(data, folds, folds_files, seed, by), 1):
        train, test = _load(train, load_options), _load(test, load_options)
        start = time.perf_counter()
        model = MatrixFactorization(**params, seed=seed).fit(train)
        seconds = time.perf_counter() - start
        scores = evaluate(model, test, k).to_dict()
        row: dict[str, Any] = {"fold": number, "train": len(train), "test": len(test)}
        row.update({name: _nan(scores[name]) for name in RATING_METRICS})
        row.update({f"{name}@{k}": _nan(scores[name]) for name in RANKING_METRICS})
        row.update(epochs=model.n_epochs_, seconds=seconds)
        rows.append(row)
        logger.info("fold %d/%d: RMSE %.4f, %.2f s", number, total, row["rmse"], seconds)
        if on_fold is not None:
            on_fold(number, total, row)
    table = pd.DataFrame(rows)
    figures = table.drop(columns="fold")
    summary = pd.DataFrame(
        [figures.mean(), figures.std(ddof=1)], index=pd.Index(["mean", "std"], name="statistic")
    )
    return CVResult(table, summary, k)


def _fold_pairs(
    data: RatingData | None,
    folds: int,
    folds_files: Sequence[tuple[Source, Source]] | None,
    seed: int,
    by: str,
) -> Iterator[tuple[Source, Source]]:
    """(train, test) per fold; k-fold parts are drawn lazily, one fold at a time."""
    from mfrec.ratings.split import kfold

    if folds_files is not None:
        if data is not None:
            raise ParameterError("data", data, "give data or folds_files, not both")
        if len(folds_files) == 0:
            raise ParameterError("folds_files", [], "no (train, test) pair given")
        for pair in folds_files:
            if len(pair) != 2:
                raise ParameterError("folds_files", pair, "each fold is a (train, test) pair")
        yield from folds_files
        return
    if data is None:
        raise ParameterError("data", None, "give the ratings to cut into folds, or folds_files")
    check_int("folds", folds, minimum=2)
    for s in kfold(data, folds, seed=seed, by=by):
        yield s.train, s.test


def _load(source: Source, load_options: dict[str, Any] | None) -> RatingData:
    if isinstance(source, RatingData):
        return source
    from mfrec.ratings.load import load_ratings

    return load_ratings(source, **(load_options or {}))


def _nan(value: float | None) -> float:
    return np.nan if value is None else float(value)
