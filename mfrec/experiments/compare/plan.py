"""Checking what `compare` was asked for and planning it: the runs, the budget, the given
learning rates, and the one training/validation split every run shares."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from mfrec.errors import ParameterError
from mfrec.experiments.compare.config import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_BUDGET_EPOCHS,
    DEFAULT_TEST_SIZE,
    Budget,
    Run,
)
from mfrec.ratings.ratingdata import RatingData
from mfrec.ratings.split import split
from mfrec.training.fitting import make_trainset
from mfrec.training.optimizers import OPTIMIZERS
from mfrec.training.solvers import SOLVERS
from mfrec.training.state import TrainSet
from mfrec.utils.validation import check_choice, check_int, check_real, is_real


def check_solvers(
    solvers: Sequence[str], batch_sizes: Sequence[int] | None, optimizer: str
) -> tuple[int, ...]:
    """Check the solver names, batch sizes and optimizer; return the batch sizes to run."""
    if isinstance(solvers, str):
        solvers = [solvers]
    if len(solvers) == 0:
        raise ParameterError("solvers", "", "name at least one solver")
    for k, name in enumerate(solvers):
        if name not in SOLVERS:
            allowed = ", ".join(SOLVERS)
            raise ParameterError("solvers", name, f"unknown solver; choose from {allowed}")
        if name in solvers[:k]:
            raise ParameterError("solvers", name, "named twice")
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if batch_sizes is not None and "minibatch" not in solvers:
        raise ParameterError(
            "batch_sizes", list(batch_sizes), "only minibatch takes batch sizes; add it to solvers"
        )
    sizes = DEFAULT_BATCH_SIZES if batch_sizes is None else tuple(batch_sizes)
    if len(sizes) == 0:
        raise ParameterError("batch_sizes", "", "give at least one batch size for minibatch")
    for k, size in enumerate(sizes):
        check_int("batch_sizes", size)
        if size in sizes[:k]:
            raise ParameterError("batch_sizes", size, "named twice")
    return tuple(sorted(int(b) for b in sizes))


def plan_runs(
    solvers: Sequence[str], sizes: tuple[int, ...], optimizer: str, n_train: int
) -> tuple[Run, ...]:
    """The runs in report order: solvers as given, a minibatch run per batch size."""
    runs = []
    for name in [solvers] if isinstance(solvers, str) else solvers:
        if name == "minibatch":
            runs += [Run(f"minibatch-{b}", name, b, optimizer) for b in sizes]
        elif name == "als":
            runs.append(Run(name, name, None, None))
        else:
            runs.append(Run(name, name, 1 if name == "sgd" else n_train, optimizer))
    return tuple(runs)


def make_budget(epochs: int | None, seconds: float | None) -> Budget:
    """The budget of every run: `epochs` or `seconds` (at most one), by default
    `DEFAULT_BUDGET_EPOCHS` epochs."""
    if epochs is not None and seconds is not None:
        raise ParameterError(
            "budget_seconds", seconds, "give a budget in epochs or in seconds, not both"
        )
    if seconds is not None:
        check_real("budget_seconds", seconds, low=0.0, low_open=True)
        return Budget(seconds=float(seconds))
    if epochs is None:
        return Budget(epochs=DEFAULT_BUDGET_EPOCHS)
    check_int("budget_epochs", epochs)
    return Budget(epochs=int(epochs))


def given_lrs(lr: Mapping[str, float], runs: tuple[Run, ...]) -> dict[str, float]:
    """Learning rates by run name; a solver name gives all its runs, a run name wins."""
    names = [r.name for r in runs]
    out: dict[str, float] = {}
    for key, value in sorted(lr.items(), key=lambda kv: kv[0] in names):
        matched = [r for r in runs if key in (r.name, r.solver)]
        if not matched:
            raise ParameterError("lr", key, f"no run of that name; the runs are {', '.join(names)}")
        if any(r.optimizer is None for r in matched):
            raise ParameterError("lr", key, f"{key} has no learning rate")
        if not is_real(value) or not (math.isfinite(value) and value > 0):
            raise ParameterError("lr", f"{key}={value}", "a learning rate must be a number > 0")
        out.update({r.name: float(value) for r in matched})
    return out


def shared_sets(
    data: RatingData,
    test_size: float | None,
    validation: RatingData | None,
    seed: int,
    dtype: np.dtype,
) -> tuple[TrainSet, TrainSet, str]:
    """The shared training and validation sets, and how the validation part was made."""
    if validation is not None:
        if test_size is not None:
            raise ParameterError(
                "test_size", test_size, "give a test fraction or a validation set, not both"
            )
        train_data, held = data.compact(), validation
        how = f"the ratings of {validation.source or 'the validation set'}"
    else:
        fraction = DEFAULT_TEST_SIZE if test_size is None else test_size
        # A child stream: the split does not reuse the bits that draw the starting factors.
        parts = split(data, fraction, by="random", seed=np.random.SeedSequence(seed).spawn(1)[0])
        train_data, held = parts.train.compact(), parts.test
        how = f"{fraction:.0%} of the ratings held out at random"
    train_set = make_trainset(train_data, train_data.user_map, train_data.item_map, dtype)
    val_set = make_trainset(held, train_data.user_map, train_data.item_map, dtype)
    if len(val_set) == 0:
        raise ParameterError(
            "validation",
            held.source or "validation",
            f"none of its {len(held)} ratings has a user and an item seen in training",
        )
    if len(val_set) < len(held):
        how += f"; {len(held) - len(val_set):,} with a user or item unknown to training left out"
    return train_set, val_set, how
