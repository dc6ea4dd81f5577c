"""`compare` itself: plan the runs, warm the kernels up, choose the learning rates, train every
run in every repeat on the shared split, and measure the curves."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from mfrec.errors import DivergenceError
from mfrec.experiments.compare.config import (
    CURVE_COLUMNS,
    DEFAULT_OPTIMIZER,
    DEFAULT_SOLVERS,
    LR_GIVEN,
    LR_SEARCH,
    MEASURES,
    RISE_TOLERANCE,
    SEARCH_COLUMNS,
    SEARCH_FRACTION,
    TARGET_TOLERANCE,
    WARMUP_RATINGS,
    Budget,
    Run,
    Setup,
)
from mfrec.experiments.compare.lrsearch import search_lr, start_lr
from mfrec.experiments.compare.plan import (
    check_solvers,
    given_lrs,
    make_budget,
    plan_runs,
    shared_sets,
)
from mfrec.experiments.compare.report import findings
from mfrec.experiments.compare.result import Comparison
from mfrec.progress import ProgressBar
from mfrec.ratings.ratingdata import RatingData
from mfrec.training.fitting import DTYPES
from mfrec.training.state import DEFAULT_FACTORS, DEFAULT_REG, DEFAULT_REG_BIAS, TrainSet
from mfrec.training.trainer import train
from mfrec.utils.validation import (
    check_choice,
    check_int,
    check_real,
    check_seed,
    resolve_seed,
)

logger = logging.getLogger(__name__)


def compare(
    data: RatingData,
    solvers: Sequence[str] = DEFAULT_SOLVERS,
    batch_sizes: Sequence[int] | None = None,
    *,
    budget_epochs: int | None = None,
    budget_seconds: float | None = None,
    test_size: float | None = None,
    validation: RatingData | None = None,
    factors: int = DEFAULT_FACTORS,
    reg: float = DEFAULT_REG,
    reg_bias: float = DEFAULT_REG_BIAS,
    optimizer: str = DEFAULT_OPTIMIZER,
    lr: Mapping[str, float] | None = None,
    seed: int | np.random.Generator | None = 0,
    repeats: int = 1,
    dtype: str = "float32",
    progress: bool = False,
) -> Comparison:
    """Train every solver on the same split from the same start at equal cost (how: see
    `mfrec.experiments.compare`).

    Parameters
    ----------
    solvers
        Names from `mfrec.training.solvers.SOLVERS`, in the order to report them.
    batch_sizes
        The minibatch runs, one per size (default 64 and 1024); only with ``minibatch``.
    budget_epochs, budget_seconds
        The budget of every run: passes over the training data, or seconds of solver time
        (evaluation excluded). Give at most one; the default is 20 epochs.
    test_size, validation
        Hold out this fraction of the ratings at random (default 0.2), or score on these
        ratings instead (those whose user or item is not in `data` are left out).
    factors, reg, reg_bias, dtype
        The model and objective every run shares.
    optimizer
        How every gradient solver turns gradients into steps (`mfrec.training.optimizers`).
    lr
        Learning rates by run name (``minibatch-64``) or solver name (``minibatch``: all its
        batch sizes); the other gradient runs get theirs from `search_lr`.
    seed
        Seed of the split (a child stream) and of repeat 1; repeat r trains with seed + r - 1.
    repeats
        Runs of every configuration, with different seeds, to show the spread.
    progress
        A progress bar on stderr (when it is a terminal).

    Raises
    ------
    ParameterError
        A parameter out of range, an unknown solver, or a learning rate for no run.
    DataFormatError
        Too few ratings to split.
    """
    sizes = check_solvers(solvers, batch_sizes, optimizer)
    budget = make_budget(budget_epochs, budget_seconds)
    check_int("factors", factors)
    check_int("repeats", repeats)
    check_real("reg", reg, low=0.0)
    check_real("reg_bias", reg_bias, low=0.0)
    check_choice("dtype", dtype, DTYPES)
    check_seed(seed)
    seed = resolve_seed(seed)
    train_set, val_set, how = shared_sets(data, test_size, validation, seed, np.dtype(dtype))
    runs = plan_runs(solvers, sizes, optimizer, len(train_set))
    given = given_lrs(lr or {}, runs)
    setup = Setup(
        source=data.source,
        n_ratings=len(data),
        n_users=train_set.n_users,
        n_items=train_set.n_items,
        n_train=len(train_set),
        n_validation=len(val_set),
        validation=how,
        factors=int(factors),
        reg=float(reg),
        reg_bias=float(reg_bias),
        optimizer=optimizer,
        dtype=dtype,
        budget=budget,
        seed=seed,
        repeats=int(repeats),
        search_budget=budget.fraction(SEARCH_FRACTION),
    )
    runner = Runner(train_set, val_set, setup)
    with ProgressBar(len(runs) * repeats, "compare", enabled=progress) as bar:
        for run in runs:
            runner.warm_up(run)
        runs, trials = _choose_rates(runner, runs, given, budget, bar)
        curves, diverged = _run_repeats(runner, runs, setup, bar)

    best_rmse = float(curves["validation_rmse"].min())
    target = best_rmse * (1.0 + TARGET_TOLERANCE)
    results = _measure(curves, setup, target, diverged)
    summary = _summarize(results, runs)
    lr_trials = pd.DataFrame(trials, columns=SEARCH_COLUMNS)
    result = Comparison(runs, curves, results, summary, lr_trials, setup, best_rmse, target)
    result.findings = findings(result)
    return result


def _choose_rates(
    runner: Runner,
    runs: tuple[Run, ...],
    given: Mapping[str, float],
    budget: Budget,
    bar: ProgressBar,
) -> tuple[tuple[Run, ...], list[dict[str, Any]]]:
    """The runs with their learning rates (given or searched), and the search's trials."""
    chosen_runs, trials = [], []
    for run in runs:
        if run.name in given:
            chosen_runs.append(replace(run, lr=given[run.name], lr_source=LR_GIVEN))
        elif run.optimizer is None:
            chosen_runs.append(run)
        else:
            bar.update(0, f"lr search: {run.name}")
            lr, run_trials = search_lr(runner, run, budget)
            chosen_runs.append(replace(run, lr=lr, lr_source=LR_SEARCH))
            trials += run_trials
    return tuple(chosen_runs), trials


def _run_repeats(
    runner: Runner, runs: tuple[Run, ...], setup: Setup, bar: ProgressBar
) -> tuple[pd.DataFrame, dict[tuple[str, int], int]]:
    """Every run in every repeat, interleaved; the curves (in run order) and divergences."""
    histories = []
    diverged: dict[tuple[str, int], int] = {}
    for repeat, seed in enumerate(setup.seeds, start=1):
        for run in runs:
            bar.update(0, f"{run.name}, repeat {repeat}/{setup.repeats}")
            history, epoch = runner.run(run, setup.budget, seed)
            if epoch is not None:
                diverged[run.name, repeat] = epoch
            histories.append(history.assign(run=run.name, repeat=repeat))
            bar.update(1)
    curves = pd.concat(histories, ignore_index=True)[CURVE_COLUMNS]
    order = {run.name: k for k, run in enumerate(runs)}
    curves = curves.sort_values(["run", "repeat", "epoch"], key=_run_order(order), kind="stable")
    return curves.reset_index(drop=True), diverged


class Runner:
    """Runs the configurations of a comparison on its shared training and validation sets,
    through `mfrec.training.trainer.train`: warm-ups, timed runs within a budget, and
    learning-rate trials (a `TrialRunner` for `search_lr`)."""

    def __init__(self, train_set: TrainSet, val_set: TrainSet, setup: Setup):
        self.train_set = train_set
        self.val_set = val_set
        self.setup = setup
        self._warm: set[tuple[str, str | None]] = set()

    def _train(self, run: Run, budget: Budget, seed: int, data: TrainSet | None = None, **kw):
        s = self.setup
        return train(
            self.train_set if data is None else data,
            run.solver,
            run.params(s.reg, s.reg_bias),
            factors=s.factors,
            seed=seed,
            epochs=budget.max_epochs,
            **kw,
        )

    def warm_up(self, run: Run) -> None:
        """Compile and load `run`'s kernels on a slice of the data, so no timing includes it."""
        key = (run.solver, run.optimizer)
        if key in self._warm:
            return
        self._warm.add(key)
        t = self.train_set
        k = min(len(t), WARMUP_RATINGS)
        part = TrainSet(t.users[:k], t.items[:k], t.ratings[:k], t.n_users, t.n_items)
        warm = replace(run, lr=start_lr(run) if run.optimizer is not None else None)
        try:
            self._train(warm, Budget(epochs=1), 0, part)
        except DivergenceError:
            pass  # the kernels ran, which is all a warm-up is for

    def run(self, run: Run, budget: Budget, seed: int) -> tuple[pd.DataFrame, int | None]:
        """Train `run` within `budget`; the history and the epoch it diverged at (or None).

        A diverged run keeps the rows up to its last finite epoch (the trainer's error carries
        them).
        """

        def stop(epoch: int, row: dict[str, float]) -> bool:
            return budget.spent(row)

        try:
            result = self._train(run, budget, seed, validation=self.val_set, callback=stop)
        except DivergenceError as exc:
            logger.info("%s (seed %d): %s", run.name, seed, exc)
            return exc.history, len(exc.history)
        return result.history, None

    def trial(self, run: Run, budget: Budget) -> dict[str, Any]:
        """One learning-rate trial with the first repeat's seed, as a row of the search table
        (``validation_rmse`` is the lowest the trial reached)."""
        history, diverged = self.run(run, budget, self.setup.seed)
        last = history.iloc[-1]
        rmse = history["validation_rmse"]
        if diverged is not None:
            status = "diverged"
        elif _rises(history["objective"].to_numpy()):
            status = "unstable"
        else:
            status = "ok"
        logger.info("%s: lr %g -> %s, best validation RMSE %.4f", run.name, run.lr, status,
                    rmse.min())  # fmt: skip
        return {
            "run": run.name,
            "lr": run.lr,
            "epochs": int(last["epoch"]),
            "seconds": float(last["seconds"]),
            "validation_rmse": float(rmse.min()),
            "status": status,
        }


def _rises(objective: np.ndarray) -> bool:
    """Whether J went up between two consecutive epochs by more than float noise."""
    return bool(np.any(objective[1:] > objective[:-1] * (1.0 + RISE_TOLERANCE)))


def _run_order(order: Mapping[str, int]):
    """A sort key keeping runs in the order they were planned (other columns as they are)."""

    def key(column: pd.Series) -> pd.Series:
        return column.map(order) if column.name == "run" else column

    return key


# -- measuring -------------------------------------------------------------------------------


def _measure(
    curves: pd.DataFrame,
    setup: Setup,
    target: float,
    diverged: Mapping[tuple[str, int], int],
) -> pd.DataFrame:
    """The `MEASURES` of every (run, repeat) curve."""
    rows = []
    for (name, repeat), h in curves.groupby(["run", "repeat"], sort=False):
        rmse = h["validation_rmse"].to_numpy()
        epochs = h["epoch"].to_numpy()
        seconds = h["seconds"].to_numpy()
        best = int(np.argmin(rmse))
        hit = np.flatnonzero(rmse <= target)
        last = h.iloc[-1]
        n_epochs = int(last["epoch"])
        spent = float(seconds[-1] - seconds[0])
        rows.append(
            {
                "run": name,
                "repeat": repeat,
                "seed": setup.seeds[repeat - 1],
                "best_validation_rmse": float(rmse[best]),
                "best_epoch": int(epochs[best]),
                "best_seconds": float(seconds[best]),
                "epochs_to_target": float(epochs[hit[0]]) if len(hit) else math.nan,
                "seconds_to_target": float(seconds[hit[0]]) if len(hit) else math.nan,
                "final_validation_rmse": float(last["validation_rmse"]),
                "final_objective": float(last["objective"]),
                "epochs": n_epochs,
                "seconds": float(last["seconds"]),
                "seconds_per_epoch": spent / n_epochs if n_epochs else math.nan,
                "updates_per_epoch": float(last["updates"]) / n_epochs if n_epochs else math.nan,
                "updates_per_second": float(last["updates"]) / spent if spent > 0 else math.nan,
                "diverged_epoch": diverged.get((name, repeat), math.nan),
            }
        )
    return pd.DataFrame(rows)


def _summarize(results: pd.DataFrame, runs: tuple[Run, ...]) -> pd.DataFrame:
    """One row per run: configuration, mean and spread of each measure over the repeats."""
    rows = []
    for run in runs:
        g = results[results["run"] == run.name]
        row: dict[str, Any] = {
            "run": run.name,
            "solver": run.solver,
            "batch_size": run.batch_size,
            "optimizer": run.optimizer,
            "lr": run.lr,
            "lr_source": run.lr_source,
            "repeats": len(g),
            "reached": int(g["epochs_to_target"].notna().sum()),
            "diverged": int(g["diverged_epoch"].notna().sum()),
        }
        for m in MEASURES:
            values = g[m].dropna()
            row[m] = float(values.mean()) if len(values) else math.nan
            row[m + "_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary["batch_size"] = summary["batch_size"].astype("Int64")  # als has none
    return summary
