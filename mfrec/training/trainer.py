"""The epoch loop, written once for every solver.

A solver only knows how to run one epoch. Everything around it lives here: the shared random
start, per-epoch evaluation into a history table, a progress bar, timings in the log, an
optional callback, early stopping on validation RMSE, and the divergence check.

History columns (one row per epoch; row 0 is the starting point, before any update):

    epoch            0, 1, 2, ...
    objective        J on the training set (mfrec.training.objective), regularization included
    train_rmse       RMSE on the training set
    validation_rmse  RMSE on the validation set (only when one is given)
    seconds          cumulative solver time: setup plus `run_epoch`, evaluation excluded, so
                     that solvers compare on the work they do (row 0 holds the setup time)
    eval_seconds     cumulative time spent evaluating the rows
    updates          cumulative parameter updates reported by the solver

`History` keeps them as numpy columns (int64 for epoch and updates, float64 otherwise); the
pandas DataFrame users see is built from it on first access.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mfrec.errors import DivergenceError, ParameterError
from mfrec.kernels.startup import COMPILE_NOTE, announce_compilation, load_numba
from mfrec.kernels.threads import numba_threads, resolve_threads
from mfrec.progress import ProgressBar
from mfrec.training.solvers.base import Solver
from mfrec.training.state import DEFAULT_FACTORS, DEFAULT_INIT_STD, Factors, SolverParams, TrainSet

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

#: Training counts as diverged once J exceeds this multiple of the larger of its starting value
#: and the mean squared rating (J of predicting 0 everywhere, the floor when the start happens
#: to fit the data). A working solver lowers J; only a runaway step gets anywhere near this.
DIVERGENCE_FACTOR = 1e3

#: Called after each epoch with the epoch number and its history row; a true result stops.
Callback = Callable[[int, dict[str, float]], "bool | None"]

STOP_EPOCHS = "epochs"
STOP_PATIENCE = "patience"
STOP_CALLBACK = "callback"


class History:
    """The history of a run (one row per epoch, see above) as plain numpy columns.

    Training, saving a model and `mfrec train` read `columns`; the DataFrame users see
    (`TrainResult.history`, `MatrixFactorization.history_`) is built by the first `to_frame`
    and kept. Importing pandas alone takes about as long as a whole `mfrec train` on
    MovieLens 100k should, so nothing on that path may need it.
    """

    def __init__(self, columns: Mapping[str, ArrayLike]):
        self.columns: dict[str, NDArray] = {name: np.asarray(v) for name, v in columns.items()}
        self._frame: pd.DataFrame | None = None

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, float]]) -> History:
        """Columns from history rows, typed as pandas types Python numbers: int64 or float64."""
        names = list(rows[0]) if rows else []
        return cls({name: _column([row[name] for row in rows]) for name in names})

    @classmethod
    def of(cls, history: History | pd.DataFrame) -> History:
        """`history` as a History; a DataFrame is kept as the one `to_frame` gives back."""
        if isinstance(history, History):
            return history
        made = cls({name: history[name].to_numpy() for name in history.columns})
        made._frame = history
        return made

    def __len__(self) -> int:
        """Rows: the epochs run plus the starting point."""
        return len(next(iter(self.columns.values()), ()))

    def row(self, epoch: int) -> dict[str, float]:
        """The figures of `epoch` as Python numbers (its first row; IndexError if none)."""
        i = int(np.flatnonzero(self.columns["epoch"] == epoch)[0])
        return {name: values[i].item() for name, values in self.columns.items()}

    def to_frame(self) -> pd.DataFrame:
        """The history as a DataFrame, one row per epoch (built on the first call only)."""
        if self._frame is None:
            import pandas as pd

            self._frame = pd.DataFrame(self.columns)
        return self._frame


def _column(values: list[float]) -> NDArray:
    column = np.asarray(values)
    if column.dtype.kind in "iu":
        return column.astype(np.int64)
    return column.astype(np.float64) if column.dtype.kind == "f" else column


@dataclass(eq=False)
class TrainResult:
    """What `train` returns.

    `factors` are those of `best_epoch`: the last epoch run, or with early stopping (`patience`)
    the epoch with the lowest validation RMSE. `stop_reason` is ``"epochs"`` (all epochs ran),
    ``"patience"`` (early stopping) or ``"callback"``. `history_data` holds the history's
    columns; `history` is the same as a DataFrame.
    """

    factors: Factors
    history_data: History
    best_epoch: int
    stop_reason: str
    solver: str
    lr: float

    @property
    def history(self) -> pd.DataFrame:
        """One row per epoch, see the module docstring (built on first access)."""
        return self.history_data.to_frame()

    @property
    def stopped_early(self) -> bool:
        """Whether early stopping ended training before the last epoch."""
        return self.stop_reason == STOP_PATIENCE

    @property
    def n_epochs(self) -> int:
        """Epochs actually run."""
        return int(self.history_data.columns["epoch"][-1])


def train(
    train: TrainSet,
    solver: str | type[Solver] = "sgd",
    params: SolverParams | None = None,
    *,
    factors: int = DEFAULT_FACTORS,
    epochs: int | None = None,
    init_std: float = DEFAULT_INIT_STD,
    use_bias: bool = True,
    seed: int | np.random.Generator | None = None,
    validation: TrainSet | None = None,
    patience: int | None = None,
    progress: bool = False,
    callback: Callback | None = None,
) -> TrainResult:
    """Train factors on `train` with one solver, evaluating after every epoch.

    The factors take the dtype of ``train.ratings``. One generator, ``default_rng(seed)``,
    draws the starting P then Q and is then handed to the solver, so a seed, the data and the
    options fix the result bit for bit (and every solver starts from the same point).
    Hyperparameters are taken as valid (`mfrec.model.estimator.MatrixFactorization` checks them).

    Parameters
    ----------
    solver
        A name from `mfrec.training.solvers.SOLVERS`, or a Solver subclass.
    epochs
        Epochs to run; None uses the solver's default.
    validation
        Ratings over the same user and item indices as `train`, scored after every epoch.
    patience
        Stop once validation RMSE has not improved for this many epochs, and return the
        factors of the best epoch. Needs `validation`.
    progress
        Show a progress bar on stderr (only when stderr is a terminal).
    callback
        ``callback(epoch, row)`` after each epoch; returning true stops training.

    Raises
    ------
    DivergenceError
        The objective or the factors became NaN/inf, or J grew past DIVERGENCE_FACTOR times
        its starting value (or the mean squared rating, if larger); the message names the
        solver and its learning rate.
    """
    params = SolverParams() if params is None else params
    solver_cls = _solver_class(solver)
    _check_inputs(train, validation, patience)
    n_epochs = solver_cls.default_epochs if epochs is None else int(epochs)
    load_numba()
    # The first run on a machine compiles the kernels (~20 s): say so before it starts.
    with announce_compilation(COMPILE_NOTE if progress else None):
        rng = np.random.default_rng(seed)
        mu = float(np.mean(train.ratings, dtype=np.float64)) if use_bias else 0.0
        # Every evaluation, and the sgd and bgd grids, need the ratings per row: counted once here
        # (cached), before the factors and the solver's data take memory.
        train.counts()
        start = time.perf_counter()
        state = Factors.initial(
            train.n_users,
            train.n_items,
            factors,
            mu=mu,
            use_bias=use_bias,
            init_std=init_std,
            dtype=train.ratings.dtype.type,
            rng=rng,
        )
        logger.info("starting factors drawn (%d x %d and %d x %d)", *state.P.shape, *state.Q.shape)
        algo = solver_cls(state, train, params, rng)
        loop = _Loop(algo, train, validation, params, patience)
        loop.solver_seconds = time.perf_counter() - start
        logger.info("%s set up in %.3f s", solver_cls.name, loop.solver_seconds)
        loop.record(0, updates=0)

        stop_reason = STOP_EPOCHS
        with ProgressBar(n_epochs, solver_cls.name, enabled=progress) as bar:
            for epoch in range(1, n_epochs + 1):
                start = time.perf_counter()
                updates = algo.run_epoch(epoch - 1)
                loop.solver_seconds += time.perf_counter() - start
                row = loop.record(epoch, updates)
                bar.update(1, _status(row))
                if loop.patience_exhausted():
                    stop_reason = STOP_PATIENCE
                    break
                if callback is not None and callback(epoch, dict(row)):
                    stop_reason = STOP_CALLBACK
                    break

        best_epoch, best = loop.best()
        history = History.from_rows(loop.rows)
        logger.info(
            "%s: %d epochs (%s), best epoch %d, %.3f s solver, %.3f s evaluation",
            solver_cls.name,
            len(loop.rows) - 1,
            stop_reason,
            best_epoch,
            loop.solver_seconds,
            loop.eval_seconds,
        )
        return TrainResult(best, history, best_epoch, stop_reason, solver_cls.name, algo.lr)


class _Loop:
    """Bookkeeping across epochs: history rows, timings, divergence, the best epoch so far."""

    def __init__(
        self,
        algo: Solver,
        train: TrainSet,
        validation: TrainSet | None,
        params: SolverParams,
        patience: int | None,
    ):
        self.algo = algo
        self.train = train
        self.validation = validation
        self.params = params
        self.patience = patience
        self.rows: list[dict[str, float]] = []
        self.solver_seconds = 0.0
        self.eval_seconds = 0.0
        self.updates = 0
        self.limit = math.inf
        self.best_rmse = math.inf
        self.best_epoch = 0
        self.best_factors: Factors | None = None
        self.since_best = 0

    def record(self, epoch: int, updates: int) -> dict[str, float]:
        """Evaluate the current factors, check them, and append the epoch's history row."""
        start = time.perf_counter()
        # Diverged factors overflow here; _check_divergence reports that, numpy need not.
        # The evaluation kernels give the same figures whatever the thread count.
        kernel_threads = numba_threads(resolve_threads(self.params.threads))
        with np.errstate(over="ignore", invalid="ignore"), kernel_threads:
            # The solver's own figures: sgd computes them on its working copy, without
            # copying it back (which cost 6% of an epoch on MovieLens 100k).
            J, train_rmse = self.algo.objective_and_rmse(self.params.reg, self.params.reg_bias)
            row: dict[str, float] = {"epoch": epoch, "objective": J, "train_rmse": train_rmse}
            if self.validation is not None:
                # Imported here: a saved model's History comes from this module, without numba.
                from mfrec.training import objective

                row["validation_rmse"] = objective.rmse(self.algo.factors, self.validation)
        self.eval_seconds += time.perf_counter() - start
        self.updates += int(updates)
        row.update(seconds=self.solver_seconds, eval_seconds=self.eval_seconds)
        row["updates"] = self.updates
        self._check_divergence(epoch, row["objective"])
        if epoch == 0:
            # Mean squared rating, accumulated in float64 without a float64 copy of the ratings.
            r = self.train.ratings
            mean_sq = float(np.einsum("n,n->", r, r, dtype=np.float64)) / len(r)
            self.limit = DIVERGENCE_FACTOR * max(row["objective"], mean_sq)
        self.rows.append(row)
        logger.info(
            "%s epoch %d: J=%.6g, train RMSE %.4f%s (%.3f s solver, %.3f s evaluation)",
            self.algo.name,
            epoch,
            row["objective"],
            row["train_rmse"],
            f", validation RMSE {row['validation_rmse']:.4f}" if "validation_rmse" in row else "",
            self.solver_seconds,
            self.eval_seconds,
        )
        if self.patience is not None:
            self._track_best(epoch, row["validation_rmse"])
        return row

    def _check_divergence(self, epoch: int, value: float) -> None:
        # Every parameter enters J (through its penalty when not through a prediction; 0 * inf
        # is NaN), so a non-finite factor shows up as a non-finite J.
        if not math.isfinite(value):
            reason = f"objective {value}"
        elif value > self.limit:
            reason = f"objective {value:.3g}, up from {self.rows[0]['objective']:.3g}"
        else:
            return
        lr = self.algo.lr
        what = f"{self.algo.name} diverged at epoch {epoch} ({reason})"
        if lr > 0:
            advice = f"with lr={lr:g}: try a smaller --lr, e.g. {lr / 10:g}"
        else:
            # A solver without a step size (als) can only be steadied by more regularization.
            advice = f"with reg={self.params.reg:g}: try a larger --reg"
        raise DivergenceError(f"{what} {advice}", history=History.from_rows(self.rows))

    def _track_best(self, epoch: int, rmse: float) -> None:
        if rmse < self.best_rmse:
            self.best_rmse = rmse
            self.best_epoch = epoch
            self.best_factors = self.algo.factors.copy()
            self.since_best = 0
        else:
            self.since_best += 1

    def patience_exhausted(self) -> bool:
        """Whether validation RMSE has failed to improve for `patience` epochs in a row."""
        return self.patience is not None and self.since_best >= self.patience

    def best(self) -> tuple[int, Factors]:
        """The epoch whose factors training returns, and those factors."""
        if self.best_factors is None:
            return self.rows[-1]["epoch"], self.algo.factors
        return self.best_epoch, self.best_factors


def _solver_class(solver: str | type[Solver]) -> type[Solver]:
    if isinstance(solver, type) and issubclass(solver, Solver):
        return solver
    from mfrec.training.solvers import get_solver

    return get_solver(solver)


def _check_inputs(train: TrainSet, validation: TrainSet | None, patience: int | None) -> None:
    if len(train) == 0:
        raise ValueError("train: no ratings to train on")
    if validation is not None:
        if (validation.n_users, validation.n_items) != (train.n_users, train.n_items):
            raise ValueError(
                f"validation covers {validation.n_users} users and {validation.n_items} items, "
                f"train {train.n_users} and {train.n_items}: they must share the indices"
            )
        if len(validation) == 0:
            raise ValueError("validation: no ratings to validate on")
    if patience is not None and validation is None:
        raise ParameterError("patience", patience, "early stopping needs validation data")


def _status(row: dict[str, float]) -> str:
    # Short enough for an 80-column terminal next to the bar: J, then train/validation RMSE.
    text = f"J={row['objective']:.5g} RMSE train {row['train_rmse']:.4f}"
    if "validation_rmse" in row:
        text += f" val {row['validation_rmse']:.4f}"
    return text
