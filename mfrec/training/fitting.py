"""The estimator's fitting: parameters checked, ratings prepared, the trainer run.

`fit` is what `MatrixFactorization.fit` does, on plain values: it takes the estimator's
constructor parameters, compacts the ratings, converts them to the training dtype, optionally
splits off a validation set, trains (`mfrec.training.trainer.train`) and returns a
`FittedState`, the arrays and figures the estimator keeps in its attributes ending in ``_``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mfrec.errors import DataFormatError, ParameterError
from mfrec.ratings.idmap import IdMap
from mfrec.ratings.ratingdata import RatingData
from mfrec.training.solvers.base import Solver
from mfrec.training.state import DEFAULT_FACTORS, SolverParams, TrainSet
from mfrec.utils.validation import (
    check_choice,
    check_int,
    check_real,
    check_seed,
    is_real,
    resolve_seed,
)

if TYPE_CHECKING:
    from mfrec.training.trainer import History

logger = logging.getLogger(__name__)

DTYPES = ("float32", "float64")


@dataclass(eq=False)
class FittedState:
    """Everything a fit leaves in a model: factors, biases, ID maps, seen items, history."""

    user_factors: NDArray[np.floating]
    item_factors: NDArray[np.floating]
    user_bias: NDArray[np.floating]
    item_bias: NDArray[np.floating]
    global_mean: float
    user_map: IdMap
    item_map: IdMap
    scale: tuple[float, float]
    seen_indptr: NDArray[np.int64]
    seen_indices: NDArray[np.int32]
    history: History
    best_epoch: int
    stop_reason: str
    seed: int


def check_params(params: Mapping[str, Any]) -> tuple[type[Solver], SolverParams]:
    """Check the estimator's parameters once; return the solver class and its parameters."""
    from mfrec.training.optimizers import OPTIMIZERS
    from mfrec.training.solvers import SOLVERS

    solver = params["solver"]
    if solver not in SOLVERS:
        raise ParameterError("solver", solver, f"must be one of {', '.join(sorted(SOLVERS))}")
    check_int("factors", params["factors"], optional=True)
    check_int("epochs", params["epochs"], optional=True)
    if params["lr"] is not None:
        check_real("lr", params["lr"], low=0.0, low_open=True)
    check_real("reg", params["reg"], low=0.0)
    check_real("reg_bias", params["reg_bias"], low=0.0)
    check_int("batch_size", params["batch_size"])
    if params["optimizer"] is not None:
        check_choice("optimizer", params["optimizer"], OPTIMIZERS)
    check_real("decay", params["decay"], low=0.0)
    check_real("momentum", params["momentum"], low=0.0, high=1.0)
    for name in ("line_search", "use_bias", "progress"):
        if not isinstance(params[name], bool | np.bool_):
            raise ParameterError(name, params[name], "must be True or False")
    if params["line_search"] and solver != "bgd":
        raise ParameterError(
            "line_search", params["line_search"], f"only the bgd solver has one, not {solver}"
        )
    check_real("init_std", params["init_std"], low=0.0, low_open=True)
    if dtype_name(params["dtype"]) not in DTYPES:
        raise ParameterError("dtype", params["dtype"], f"must be one of {', '.join(DTYPES)}")
    check_validation(params["validation"])
    check_int("patience", params["patience"], optional=True)
    check_int("threads", params["threads"], optional=True)
    check_seed(params["seed"])
    threads = params["threads"]
    solver_params = SolverParams(
        lr=None if params["lr"] is None else float(params["lr"]),
        reg=float(params["reg"]),
        reg_bias=float(params["reg_bias"]),
        optimizer=params["optimizer"],
        decay=float(params["decay"]),
        momentum=float(params["momentum"]),
        batch_size=int(params["batch_size"]),
        line_search=bool(params["line_search"]),
        threads=None if threads is None else int(threads),
    )
    return SOLVERS[solver], solver_params


def check_validation(value: object) -> None:
    """`value` is None, a RatingData or a fraction in (0, 1)."""
    if value is None or isinstance(value, RatingData):
        return
    if is_real(value) and 0.0 < value < 1.0:
        return
    raise ParameterError("validation", value, "must be a fraction in (0, 1) or a RatingData")


def dtype_name(dtype: object) -> str:
    """numpy's name of `dtype` (``float32``), or its repr when it is not a dtype."""
    try:
        return np.dtype(dtype).name
    except TypeError:
        return repr(dtype)


def fit(
    params: Mapping[str, Any],
    data: RatingData,
    validation: float | RatingData | None = None,
) -> FittedState:
    """Train on `data` with the estimator's `params`; `validation` (a fraction or RatingData)
    overrides ``params["validation"]``.

    Validation ratings whose user or item is not in the training part are left out of the
    validation RMSE (the model has no factors for them).
    """
    from mfrec.kernels.group import group_by_row
    from mfrec.training.trainer import train

    solver_cls, solver_params = check_params(params)
    if validation is not None:
        check_validation(validation)
    else:
        validation = params["validation"]
    if params["patience"] is not None and validation is None:
        raise ParameterError(
            "patience", params["patience"], "early stopping needs validation (a fraction or data)"
        )
    if len(data) == 0:
        raise DataFormatError("no ratings to train on", source=data.source)
    seed = resolve_seed(params["seed"])
    dtype = np.dtype(dtype_name(params["dtype"]))

    data = data.compact()
    if isinstance(validation, RatingData):
        train_data, held_out = data, validation
    elif validation is not None:
        train_data, held_out = holdout(data, float(validation), seed)
    else:
        train_data, held_out = data, None
    trainset = make_trainset(train_data, train_data.user_map, train_data.item_map, dtype)
    logger.info(
        "training set: %d ratings, %d users, %d items, %s",
        len(trainset),
        trainset.n_users,
        trainset.n_items,
        dtype.name,
    )
    valset = None if held_out is None else _validation_set(held_out, train_data, validation, dtype)
    result = train(
        trainset,
        solver_cls,
        solver_params,
        factors=DEFAULT_FACTORS if params["factors"] is None else int(params["factors"]),
        epochs=params["epochs"],
        init_std=float(params["init_std"]),
        use_bias=bool(params["use_bias"]),
        seed=seed,
        validation=valset,
        patience=params["patience"],
        progress=bool(params["progress"]),
    )
    # A counting sort, not trainset.by_user(): that argsort and its grouped copies of the
    # ratings cost gigabytes at 100M ratings, and only the item indices are kept.
    seen_indptr, seen_indices = group_by_row(trainset.users, trainset.items, trainset.n_users)
    logger.info("seen items indexed (%d ratings)", len(seen_indices))
    return FittedState(
        user_factors=result.factors.P,
        item_factors=result.factors.Q,
        user_bias=result.factors.bu,
        item_bias=result.factors.bi,
        global_mean=float(np.mean(trainset.ratings, dtype=np.float64)),
        user_map=train_data.user_map,
        item_map=train_data.item_map,
        scale=train_data.scale,
        seen_indptr=seen_indptr,
        seen_indices=seen_indices,
        history=result.history_data,
        best_epoch=result.best_epoch,
        stop_reason=result.stop_reason,
        seed=seed,
    )


def _validation_set(
    held_out: RatingData, train_data: RatingData, validation: object, dtype: np.dtype
) -> TrainSet:
    valset = make_trainset(held_out, train_data.user_map, train_data.item_map, dtype)
    if len(valset) == 0:
        raise ParameterError(
            "validation",
            validation,
            f"none of its {len(held_out)} ratings has a user and an item seen in training",
        )
    if len(valset) < len(held_out):
        logger.info(
            "validation: %d of %d ratings left out (user or item not in training)",
            len(held_out) - len(valset),
            len(held_out),
        )
    return valset


def holdout(data: RatingData, fraction: float, seed: int) -> tuple[RatingData, RatingData]:
    """Hold out `fraction` of the ratings at random; the training part is compacted."""
    n = len(data)
    if n < 2:
        raise ParameterError("validation", fraction, f"cannot split {n} rating(s)")
    n_val = min(max(round(fraction * n), 1), n - 1)
    # A child stream: the starting factors stay those of the same seed without validation.
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    held = np.zeros(n, dtype=bool)
    held[rng.choice(n, size=n_val, replace=False)] = True
    return data.subset(~held).compact(), data.subset(held)


def make_trainset(
    data: RatingData, user_map: IdMap, item_map: IdMap, dtype: np.dtype | type
) -> TrainSet:
    """`data` over the indices of `user_map` / `item_map`, dropping ratings outside them."""
    if data.user_map is user_map and data.item_map is item_map:
        users, items, ratings = data.users, data.items, data.ratings
    else:
        users = user_map.indices(data.user_map.ids)[data.users]
        items = item_map.indices(data.item_map.ids)[data.items]
        keep = (users >= 0) & (items >= 0)
        users, items, ratings = users[keep], items[keep], data.ratings[keep]
    return TrainSet(
        np.ascontiguousarray(users, dtype=np.int32),
        np.ascontiguousarray(items, dtype=np.int32),
        np.ascontiguousarray(ratings, dtype=dtype),
        len(user_map),
        len(item_map),
    )
