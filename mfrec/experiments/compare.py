"""Compare solvers side by side at equal cost: stochastic, mini-batch and full-batch gradient
descent (and ALS as a reference) on the same data, from the same start, on the same objective.

How `compare` makes the runs comparable:

1. **One split.** The ratings are split once (``test_size`` held out at random, or a given
   ``validation`` set); every run trains on the same training part and is scored on the same
   validation part after every epoch.
2. **One start, one objective.** Every run trains through `mfrec.training.trainer.train` with the
same
   factors, λ, λ_b and dtype; repeat r uses seed ``seed + r - 1`` for every run, so within a
   repeat all runs start from the same P and Q (`Factors.initial`). Only the solver, its
   batch size and its learning rate differ. The optimizer is the same for every gradient
   solver: ``constant`` (plain steps x ← x − lr·g) unless another is asked for.
3. **Fair step sizes.** A learning rate not given in ``lr`` is chosen per run by a search
   on the validation part (`search_lr`) over the grid 1-2-5 × 10^k: steps of ×10 with
   trials of a quarter of the budget, then steps of one grid point with trials of the whole
   budget, keeping the lowest validation RMSE of a trial that did not diverge.
4. **Equal cost.** Every run gets the same budget: epochs (passes over the training data)
   or seconds of solver time (wall clock spent in the solver, evaluation excluded; a run
   stops after the epoch that reaches the budget). Kernels are compiled and warmed up before
   anything is timed, and runs are interleaved repeat by repeat so that a noisy machine
   slows them alike.

A run that diverges is kept, with its curve up to the last finite epoch, and marked diverged.
`Comparison.write` puts curves.csv, summary.json, report.md and convergence.png in a folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from mfrec.errors import DivergenceError, ParameterError
from mfrec.progress import ProgressBar
from mfrec.ratings.ratingdata import RatingData
from mfrec.ratings.split import split
from mfrec.training.fitting import DTYPES, make_trainset
from mfrec.training.optimizers import OPTIMIZERS
from mfrec.training.solvers import SOLVERS
from mfrec.training.solvers.minibatch import MiniBatch
from mfrec.training.state import (
    DEFAULT_FACTORS,
    DEFAULT_REG,
    DEFAULT_REG_BIAS,
    SolverParams,
    TrainSet,
)
from mfrec.training.trainer import train
from mfrec.utils.atomicfile import atomic_open
from mfrec.utils.validation import resolve_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

DEFAULT_SOLVERS = ("sgd", "minibatch", "bgd")
DEFAULT_BATCH_SIZES = (64, 1024)
DEFAULT_BUDGET_EPOCHS = 20
DEFAULT_TEST_SIZE = 0.2
DEFAULT_OPTIMIZER = "constant"

#: "Converged" means within this fraction of the best validation RMSE any run reached.
TARGET_TOLERANCE = 0.01
#: A learning-rate trial gets this fraction of the budget (at least 2 epochs, to see J move).
SEARCH_FRACTION = 0.25
#: Trials per run and stage at most; each climb usually stops after 3 or 4.
SEARCH_MAX_TRIALS = 8
#: The search grid: these mantissas times powers of ten (..., 0.1, 0.2, 0.5, 1, 2, 5, ...).
LR_MANTISSAS = (1.0, 2.0, 5.0)
#: A constant SGD step that converges without tuning on the data we tried (sgd's own default
#: is a larger, decaying step); plain-step searches start from it times the batch size.
PLAIN_SGD_LR = 0.02
#: Optimizers whose step does not scale with the gradient, so one lr suits every batch size.
ADAPTIVE_OPTIMIZERS = ("adagrad", "adam")
#: A trial whose J rises by more than this relative amount between two epochs is unstable
#: (SGD's J jitters by about 1e-4 near convergence; a step too large shows rises of 1e-2).
RISE_TOLERANCE = 1e-3
#: Ratings used to compile and warm up each solver's kernels before anything is timed.
WARMUP_RATINGS = 2000

CURVE_COLUMNS = [
    "run",
    "repeat",
    "epoch",
    "seconds",
    "updates",
    "objective",
    "train_rmse",
    "validation_rmse",
]
SEARCH_COLUMNS = ["run", "stage", "lr", "epochs", "seconds", "validation_rmse", "status", "chosen"]
#: Per-(run, repeat) measures that the summary averages over repeats.
MEASURES = [
    "best_validation_rmse",
    "best_epoch",
    "best_seconds",
    "epochs_to_target",
    "seconds_to_target",
    "final_validation_rmse",
    "final_objective",
    "epochs",
    "seconds",
    "seconds_per_epoch",
    "updates_per_epoch",
    "updates_per_second",
]
SUMMARY_VERSION = 1

LR_SEARCH = "search"
LR_GIVEN = "given"
LR_NONE = "none"


# -- what is compared ------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """The cost every run may spend: `epochs` passes, or `seconds` of solver time."""

    epochs: int | None = None
    seconds: float | None = None

    @property
    def max_epochs(self) -> int:
        """Epochs to ask the trainer for; a seconds budget stops through the callback."""
        return self.epochs if self.epochs is not None else 10**9

    def spent(self, row: Mapping[str, float]) -> bool:
        """Whether the history row of an epoch used up a seconds budget."""
        return self.seconds is not None and row["seconds"] >= self.seconds

    def fraction(self, share: float) -> Budget:
        """`share` of this budget (the length of a learning-rate trial)."""
        if self.seconds is not None:
            return Budget(seconds=self.seconds * share)
        return Budget(epochs=min(self.epochs, max(2, math.ceil(self.epochs * share))))

    def describe(self) -> str:
        """``20 epochs`` or ``2 s of solver time``."""
        if self.seconds is not None:
            return f"{self.seconds:g} s of solver time"
        return f"{self.epochs} epoch" + ("s" if self.epochs != 1 else "")


@dataclass(frozen=True)
class Run:
    """One configuration: a solver, its batch size, its optimizer and learning rate.

    `batch_size` is the ratings behind one update: 1 for sgd, all training ratings for bgd,
    None for als (exact minimisation, no step). `lr_source` says where `lr` came from:
    ``"search"``, ``"given"``, or ``"none"`` (als).
    """

    name: str
    solver: str
    batch_size: int | None
    optimizer: str | None
    lr: float | None = None
    lr_source: str = LR_NONE

    @property
    def label(self) -> str:
        """How plots and sentences name the run: ``minibatch (batch 64)``."""
        if self.solver == "minibatch":
            return f"minibatch (batch {self.batch_size:,})"
        return self.solver

    def params(self, reg: float, reg_bias: float) -> SolverParams:
        """The solver parameters of this run."""
        extra = {"batch_size": self.batch_size} if self.solver == "minibatch" else {}
        return SolverParams(
            lr=self.lr, reg=reg, reg_bias=reg_bias, optimizer=self.optimizer, **extra
        )


@dataclass(frozen=True)
class Setup:
    """Everything the runs share, as recorded in summary.json and the report."""

    source: str | None
    n_ratings: int
    n_users: int
    n_items: int
    n_train: int
    n_validation: int
    validation: str
    factors: int
    reg: float
    reg_bias: float
    optimizer: str
    dtype: str
    budget: Budget
    seed: int
    repeats: int
    search_budget: Budget

    @property
    def seeds(self) -> list[int]:
        """The training seed of each repeat."""
        return [self.seed + r for r in range(self.repeats)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        out = asdict(self)
        out["budget"] = asdict(self.budget)
        out["search_budget"] = asdict(self.search_budget)
        out["seeds"] = self.seeds
        return out


# -- the result ------------------------------------------------------------------------------


@dataclass(eq=False)
class Comparison:
    """What `compare` returns: the curves, the measures and the words, for notebooks and files.

    Attributes
    ----------
    runs
        The configurations, in order, with the learning rates used.
    curves
        One row per run, repeat and epoch (`CURVE_COLUMNS`); epoch 0 is the shared start.
        ``seconds`` is cumulative solver time, ``updates`` cumulative parameter updates.
    results
        One row per run and repeat: the `MEASURES` of that curve, plus ``seed`` and
        ``diverged_epoch`` (NaN unless it diverged).
    summary
        One row per run: its configuration, each measure's mean over repeats and, with
        ``_sd``, its standard deviation; ``reached`` counts the repeats that got within
        `TARGET_TOLERANCE` of `best_rmse`, ``diverged`` those that diverged.
    lr_search
        The learning-rate trials (`SEARCH_COLUMNS`): run, stage (``short`` or ``full``), lr,
        epochs, seconds, the lowest validation_rmse, status (``ok``; ``unstable``: J rose in
        some epoch; ``diverged``) and whether it was chosen.
    setup
        What every run shared.
    best_rmse, target_rmse
        The lowest validation RMSE of any run and repeat, and that times
        1 + `TARGET_TOLERANCE`: the line a run must cross to count as converged.
    findings
        Sentences drawn from the figures: fastest per epoch and per second, lowest RMSE, ...
    """

    runs: tuple[Run, ...]
    curves: pd.DataFrame
    results: pd.DataFrame
    summary: pd.DataFrame
    lr_search: pd.DataFrame
    setup: Setup
    best_rmse: float
    target_rmse: float
    findings: list[str] = field(default_factory=list)

    def table(self, markdown: bool = False) -> str:
        """The summary table as aligned text (for a terminal) or as Markdown."""
        headers, rows, align = _table_cells(self)
        if markdown:
            return _markdown_table(headers, rows, align)
        return _text_table(headers, rows, align)

    def report(self, figure: str | None = "convergence.png") -> str:
        """The Markdown report (report.md); `figure` is the plot's path relative to it."""
        return _report_markdown(self, figure)

    def to_dict(self) -> dict[str, Any]:
        """The summary as a JSON-able dict (summary.json); missing values are None."""
        return {
            "version": SUMMARY_VERSION,
            "setup": self.setup.to_dict(),
            "target_tolerance": TARGET_TOLERANCE,
            "best_validation_rmse": self.best_rmse,
            "target_validation_rmse": self.target_rmse,
            "runs": _records(self.summary),
            "repeats": _records(self.results),
            "lr_search": _records(self.lr_search),
            "findings": self.findings,
        }

    def figure(self) -> Figure:
        """The convergence figure (a matplotlib Figure, drawn without pyplot)."""
        from mfrec.experiments.plots import convergence_figure

        return convergence_figure(self)

    def write(self, folder: str | os.PathLike[str]) -> dict[str, Path]:
        """Write curves.csv, summary.json, convergence.png and report.md into `folder`.

        Each file is written atomically; the report comes last, so it never points at a
        missing plot. Returns the paths by kind (``curves``, ``summary``, ``plot``,
        ``report``).
        """
        from mfrec.experiments.plots import save_figure

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "curves": folder / "curves.csv",
            "summary": folder / "summary.json",
            "plot": folder / "convergence.png",
            "report": folder / "report.md",
        }
        with atomic_open(paths["curves"], newline="") as fh:
            self.curves.to_csv(fh, index=False)
        with atomic_open(paths["summary"]) as fh:
            json.dump(self.to_dict(), fh, indent=2, allow_nan=False)
            fh.write("\n")
        save_figure(self.figure(), paths["plot"])
        with atomic_open(paths["report"]) as fh:
            fh.write(self.report(paths["plot"].name))
        return paths

    def _repr_markdown_(self) -> str:
        return self.table(markdown=True) + "\n\n" + "\n".join(f"- {s}" for s in self.findings)


# -- the comparison --------------------------------------------------------------------------


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
    """Train every solver on the same split from the same start at equal cost; see the module.

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
    sizes = _check_solvers(solvers, batch_sizes, optimizer)
    budget = _budget(budget_epochs, budget_seconds)
    _check_int("factors", factors)
    _check_int("repeats", repeats)
    _check_real("reg", reg)
    _check_real("reg_bias", reg_bias)
    if dtype not in DTYPES:
        raise ParameterError("dtype", dtype, f"must be one of {', '.join(DTYPES)}")
    seed = resolve_seed(seed)
    train_set, val_set, how = _prepare(data, test_size, validation, seed, np.dtype(dtype))
    runs = _plan_runs(solvers, sizes, optimizer, len(train_set))
    given = _given_lrs(lr or {}, runs)
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
    trainer = _Trainer(train_set, val_set, setup)
    with ProgressBar(len(runs) * repeats, "compare", enabled=progress) as bar:
        for run in runs:
            trainer.warm_up(run)
        runs, trials = _choose_rates(trainer, runs, given, budget, bar)
        curves, diverged = _run_repeats(trainer, runs, setup, bar)

    best_rmse = float(curves["validation_rmse"].min())
    target = best_rmse * (1.0 + TARGET_TOLERANCE)
    results = _measure(curves, setup, target, diverged)
    summary = _summarize(results, runs)
    lr_trials = pd.DataFrame(trials, columns=SEARCH_COLUMNS)
    result = Comparison(runs, curves, results, summary, lr_trials, setup, best_rmse, target)
    result.findings = findings(result)
    return result


def _choose_rates(
    trainer: _Trainer,
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
            lr, run_trials = search_lr(trainer, run, budget)
            chosen_runs.append(replace(run, lr=lr, lr_source=LR_SEARCH))
            trials += run_trials
    return tuple(chosen_runs), trials


def _run_repeats(
    trainer: _Trainer, runs: tuple[Run, ...], setup: Setup, bar: ProgressBar
) -> tuple[pd.DataFrame, dict[tuple[str, int], int]]:
    """Every run in every repeat, interleaved; the curves (in run order) and divergences."""
    histories = []
    diverged: dict[tuple[str, int], int] = {}
    for repeat, seed in enumerate(setup.seeds, start=1):
        for run in runs:
            bar.update(0, f"{run.name}, repeat {repeat}/{setup.repeats}")
            history, epoch = trainer.run(run, setup.budget, seed)
            if epoch is not None:
                diverged[run.name, repeat] = epoch
            histories.append(history.assign(run=run.name, repeat=repeat))
            bar.update(1)
    curves = pd.concat(histories, ignore_index=True)[CURVE_COLUMNS]
    order = {run.name: k for k, run in enumerate(runs)}
    curves = curves.sort_values(["run", "repeat", "epoch"], key=_run_order(order), kind="stable")
    return curves.reset_index(drop=True), diverged


class TrialRunner(Protocol):
    """What `search_lr` needs: one trial of a run within a budget, as a search-table row."""

    def trial(self, run: Run, budget: Budget) -> dict[str, Any]: ...


def search_lr(trainer: TrialRunner, run: Run, budget: Budget) -> tuple[float, list[dict[str, Any]]]:
    """Choose `run`'s learning rate by the lowest validation RMSE of trial runs.

    The grid is 1-2-5 times powers of ten. Stage ``short``, from the grid point nearest
    `start_lr`, climbs in steps of ×10 with trials of `SEARCH_FRACTION` of the budget, to find
    the order of magnitude; a short trial counts only if J never rose between two epochs by
    more than `RISE_TOLERANCE`, since such a rate tends to blow up later. Stage ``full``
    climbs by one grid point with trials of the whole budget (the best rate for a short run
    is larger than for a long one), judged by their lowest validation RMSE as the table is.
    Diverged trials never count. Returns the chosen rate and the trials as dicts, the
    chosen one marked.
    """
    trials: list[dict[str, Any]] = []

    def scorer(stage: str, trial_budget: Budget, counts: tuple[str, ...]):
        scores: dict[int, float] = {}

        def score(index: int) -> float:
            if index not in scores and len(scores) < SEARCH_MAX_TRIALS:
                trial = trainer.trial(replace(run, lr=grid_lr(index)), trial_budget)
                trials.append({"stage": stage, **trial})
                ok = trial["status"] in counts
                scores[index] = trial["validation_rmse"] if ok else math.inf
            return scores.get(index, math.inf)

        return score, scores

    short, _ = scorer("short", budget.fraction(SEARCH_FRACTION), ("ok",))
    best = _climb(short, _grid_index(start_lr(run)), 3)
    full, scores = scorer("full", budget, ("ok", "unstable"))
    best = _climb(full, best, 1)
    if math.isinf(scores.get(best, math.inf)):
        # Nothing held at full length (or the trials ran out): the smallest rate tried is
        # the safest; the run will show whether it holds.
        best = min(scores)
    chosen = grid_lr(best)
    for trial in trials:
        trial["chosen"] = trial["stage"] == "full" and trial["lr"] == chosen
    logger.info("%s: learning rate %g chosen from %d trials", run.name, chosen, len(trials))
    trials.sort(key=lambda t: (t["stage"] == "full", t["lr"]))
    return chosen, trials


def _climb(score, best: int, step: int) -> int:
    """Move `best` by `step` grid points while the score falls: upward first, else down.

    From a point that does not count (infinite score: the rate is too large) it first steps
    down until one does.
    """
    for _ in range(SEARCH_MAX_TRIALS):
        if math.isfinite(score(best)):
            break
        best -= step
    for direction in (1, -1):
        moved = False
        while score(best + direction * step) < score(best):
            best += direction * step
            moved = True
        if moved:
            break
    return best


def start_lr(run: Run) -> float:
    """Where the learning-rate search starts for `run`.

    The solver's own default when `run` uses its default optimizer. Otherwise, for steps that
    scale with the gradient (constant, decay, momentum), the linear scaling rule
    ``PLAIN_SGD_LR × batch size``: a batch-averaged gradient moves each row about
    1/batch as far as one SGD step. For adaptive optimizers (adagrad, adam), which undo the
    gradient's scale, the mini-batch solver's default.
    """
    solver_cls = SOLVERS[run.solver]
    if run.optimizer == solver_cls.default_optimizer:
        return solver_cls.default_lr
    if run.optimizer in ADAPTIVE_OPTIMIZERS:
        return MiniBatch.default_lr
    return PLAIN_SGD_LR * run.batch_size


def grid_lr(index: int) -> float:
    """The learning rate at `index` of the 1-2-5 grid: 0 → 1, 1 → 2, 2 → 5, 3 → 10, -1 → 0.5."""
    decade, position = divmod(index, len(LR_MANTISSAS))
    # Through a decimal string, so 0.2 prints as 0.2 and not 0.20000000000000004.
    return float(f"{LR_MANTISSAS[position]}e{decade}")


def _grid_index(lr: float) -> int:
    """The grid index whose rate is nearest `lr` on a log scale."""
    decade = math.floor(math.log10(lr))
    candidates = range(3 * decade - 3, 3 * decade + 6)
    return min(candidates, key=lambda i: abs(math.log(grid_lr(i) / lr)))


class _Trainer:
    """Trains runs through `mfrec.training.trainer.train` on the shared sets; one place for the
    calls."""

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


# -- checking and preparing ------------------------------------------------------------------


def _check_solvers(
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
    if optimizer not in OPTIMIZERS:
        raise ParameterError("optimizer", optimizer, f"must be one of {', '.join(OPTIMIZERS)}")
    if batch_sizes is not None and "minibatch" not in solvers:
        raise ParameterError(
            "batch_sizes", list(batch_sizes), "only minibatch takes batch sizes; add it to solvers"
        )
    sizes = DEFAULT_BATCH_SIZES if batch_sizes is None else tuple(batch_sizes)
    if len(sizes) == 0:
        raise ParameterError("batch_sizes", "", "give at least one batch size for minibatch")
    for k, size in enumerate(sizes):
        _check_int("batch_sizes", size)
        if size in sizes[:k]:
            raise ParameterError("batch_sizes", size, "named twice")
    return tuple(sorted(int(b) for b in sizes))


def _plan_runs(
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


def _budget(epochs: int | None, seconds: float | None) -> Budget:
    if epochs is not None and seconds is not None:
        raise ParameterError(
            "budget_seconds", seconds, "give a budget in epochs or in seconds, not both"
        )
    if seconds is not None:
        if not _is_real(seconds) or not (math.isfinite(seconds) and seconds > 0):
            raise ParameterError("budget_seconds", seconds, "must be a number > 0")
        return Budget(seconds=float(seconds))
    if epochs is None:
        return Budget(epochs=DEFAULT_BUDGET_EPOCHS)
    _check_int("budget_epochs", epochs)
    return Budget(epochs=int(epochs))


def _given_lrs(lr: Mapping[str, float], runs: tuple[Run, ...]) -> dict[str, float]:
    """Learning rates by run name; a solver name gives all its runs, a run name wins."""
    names = [r.name for r in runs]
    out: dict[str, float] = {}
    for key, value in sorted(lr.items(), key=lambda kv: kv[0] in names):
        matched = [r for r in runs if key in (r.name, r.solver)]
        if not matched:
            raise ParameterError("lr", key, f"no run of that name; the runs are {', '.join(names)}")
        if any(r.optimizer is None for r in matched):
            raise ParameterError("lr", key, f"{key} has no learning rate")
        if not _is_real(value) or not (math.isfinite(value) and value > 0):
            raise ParameterError("lr", f"{key}={value}", "a learning rate must be a number > 0")
        out.update({r.name: float(value) for r in matched})
    return out


def _prepare(
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


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def _check_int(name: str, value: object) -> None:
    if not isinstance(value, Integral) or isinstance(value, bool | np.bool_) or value < 1:
        raise ParameterError(name, value, "must be an integer >= 1")


def _check_real(name: str, value: object) -> None:
    if not _is_real(value) or not (math.isfinite(value) and value >= 0):
        raise ParameterError(name, value, "must be a number >= 0")


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


# -- words -----------------------------------------------------------------------------------


def findings(c: Comparison) -> list[str]:
    """A few sentences read off the measures: who converged fastest per epoch and per second
    (and why they differ), who reached the lowest RMSE (and whether that beats the spread),
    who was still improving or past its best, who diverged, and what an epoch costs."""
    s = c.summary.set_index("run")
    labels = {r.name: r.label for r in c.runs}
    per_epoch = _ranked(s, "epochs_to_target")
    per_second = _ranked(s, "seconds_to_target")
    out = [
        _fastest(s, per_epoch, labels, "epochs_to_target", "Per epoch", c.setup),
        _fastest(s, per_second, labels, "seconds_to_target", "Per second of solver time", c.setup),
    ]
    if per_epoch and per_second and per_epoch[0] != per_second[0]:
        a, b = per_epoch[0], per_second[0]
        ratio = s.loc[a, "seconds_per_epoch"] / s.loc[b, "seconds_per_epoch"]
        out.append(
            f"The winners differ because an epoch of {labels[a]} takes {ratio:.3g} times as long "
            f"as one of {labels[b]}: {labels[b]} needs more passes, but cheaper ones."
        )
    out.append(_lowest(s, labels, c.setup.repeats))
    out += _trends(c, labels)
    out.append(_diverged(s, labels, c.results))
    out.append(_costs(s, labels, c.setup))
    return [sentence for sentence in out if sentence]


def _ranked(s: pd.DataFrame, measure: str) -> list[str]:
    """Runs that got within the target in some repeat: most often first, then fastest."""
    reached = s[s["reached"] > 0].sort_values(["reached", measure], ascending=[False, True])
    return list(reached.index)


def _fastest(s, ranked: list[str], labels, measure: str, how: str, setup: Setup) -> str:
    if not ranked:
        return ""
    fmt = _fmt_epochs if measure == "epochs_to_target" else _fmt_s
    first = ranked[0]
    text = (
        f"{how}, {labels[first]} was fastest: within {TARGET_TOLERANCE:.0%} of the best "
        f"validation RMSE after {fmt(s.loc[first, measure])}"
    )
    others = [f"{fmt(s.loc[n, measure])} for {labels[n]}" for n in ranked[1:]]
    if others:
        text += ", against " + _join(others)
    missing = [labels[n] for n in s.index if n not in ranked]
    if missing:
        text += f"; {_join(missing)} did not get there within {setup.budget.describe()}"
    return text + "."


def _lowest(s, labels, repeats: int) -> str:
    ranked = s.sort_values("best_validation_rmse")
    first = ranked.index[0]
    row = ranked.iloc[0]
    text = (
        f"The lowest validation RMSE was {labels[first]}'s {_fmt_rmse(row, repeats)} "
        f"(epoch {_fmt_number(row['best_epoch'])}, {_fmt_s(row['best_seconds'])})"
    )
    if len(ranked) > 1 and repeats > 1:
        second = ranked.iloc[1]
        gap = second["best_validation_rmse"] - row["best_validation_rmse"]
        spread = np.nansum([row["best_validation_rmse_sd"], second["best_validation_rmse_sd"]])
        verdict = (
            "more than the spread across repeats" if gap > spread else
            "within the spread across repeats, so the two cannot be told apart"
        )  # fmt: skip
        text += f"; {labels[ranked.index[1]]} trails by {gap:.4f}, {verdict}"
    return text + "."


def _trends(c: Comparison, labels: Mapping[str, str]) -> list[str]:
    """Runs still improving when the budget ran out, and runs past their best (repeat 1)."""
    improving, past_best = [], []
    first = c.results[c.results["repeat"] == 1].set_index("run")
    for run in c.runs:
        row = first.loc[run.name]
        if not math.isnan(row["diverged_epoch"]) or row["epochs"] < 2:
            continue
        h = c.curves[(c.curves["run"] == run.name) & (c.curves["repeat"] == 1)]
        rmse = h["validation_rmse"].to_numpy()
        rise = row["final_validation_rmse"] / row["best_validation_rmse"] - 1.0
        # Over the last tenth of the epochs (at least one): still falling noticeably?
        back = max(1, (len(rmse) - 1) // 10)
        fall = 1.0 - rmse[-1] / rmse[-1 - back]
        if rise > 0.005:
            past_best.append(
                f"{labels[run.name]} (best at epoch {int(row['best_epoch'])}, then up {rise:.1%})"
            )
        elif fall > 0.001:
            span = f"its last {back} epochs" if back > 1 else "its last epoch"
            improving.append(f"{labels[run.name]} (down {fall:.1%} over {span})")
    out = []
    if improving:
        out.append(
            f"Still improving when the budget ran out: {_join(improving)}; "
            "a larger budget would lower the RMSE further."
        )
    if past_best:
        out.append(
            f"Past the best: {_join(past_best)}. Validation RMSE rose again (overfitting, or "
            "steps too large to settle); `mfrec train --patience` keeps the best epoch."
        )
    return out


def _diverged(s, labels, results: pd.DataFrame) -> str:
    parts = []
    for name, row in s[s["diverged"] > 0].iterrows():
        epochs = results.loc[results["run"] == name, "diverged_epoch"].dropna()
        often = f" in {row['diverged']} of {row['repeats']} repeats" if row["repeats"] > 1 else ""
        parts.append(
            f"{labels[name]}{often}, at epoch {int(epochs.min())} with lr {row['lr']:g} "
            f"(try --lr {name}={row['lr'] / 10:g})"
        )
    return f"Diverged: {_join(parts)}." if parts else ""


def _costs(s, labels, setup: Setup) -> str:
    parts = [
        f"{labels[n]} {_fmt_count(r['updates_per_epoch'])} "
        f"update{'s' if r['updates_per_epoch'] != 1 else ''} in {_fmt_ms(r['seconds_per_epoch'])}"
        for n, r in s.iterrows()
        if not math.isnan(r["updates_per_epoch"])
    ]
    if not parts:
        return ""
    return f"One epoch over the {setup.n_train:,} training ratings: {_join(parts)}."


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# -- tables and the report -------------------------------------------------------------------


def _fmt_mean(
    row: Mapping[str, Any], measure: str, fmt, repeats: int, spread: str = "{:.2g}"
) -> str:
    """The mean, and with repeats ± the standard deviation (`spread` formats it)."""
    text = fmt(row[measure])
    sd = row.get(measure + "_sd", math.nan)
    if repeats > 1 and not math.isnan(sd):
        text += " ± " + spread.format(sd)
    return text


def _fmt_rmse(row: Mapping[str, Any], repeats: int) -> str:
    return _fmt_mean(row, "best_validation_rmse", "{:.4f}".format, repeats, "{:.4f}")


def _fmt_epochs(value: float) -> str:
    if math.isnan(value):
        return "–"
    if float(value).is_integer():
        return f"{int(value)} epoch" + ("s" if value != 1 else "")
    return f"{value:.1f} epochs"


def _fmt_s(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3g} s"


def _fmt_ms(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def _fmt_count(value: float) -> str:
    if math.isnan(value):
        return "–"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _fmt_number(value: float) -> str:
    """An epoch count or mean: 12, or 12.3 for a mean over repeats."""
    if math.isnan(value):
        return "–"
    return f"{int(value)}" if float(value).is_integer() else f"{value:.1f}"


def _fmt_seconds(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3g}"


def _table_cells(c: Comparison) -> tuple[list[str], list[list[str]], str]:
    """Headers, rows of cell strings and per-column alignment (l/r) of the summary table."""
    headers = [
        "solver",
        "batch size",
        "lr",
        "best val RMSE",
        "epoch at best",
        "s at best",
        "epochs to 1%",
        "s to 1%",
        "updates/s",
        "diverged",
    ]
    repeats = c.setup.repeats
    rows = []
    for row in c.summary.to_dict("records"):
        if row["solver"] == "als":
            batch = "–"
        elif row["solver"] == "bgd":
            batch = f"{int(row['batch_size']):,} (all)"
        else:
            batch = f"{int(row['batch_size']):,}"
        if row["lr_source"] == LR_NONE:
            lr = "–"
        else:
            lr = f"{row['lr']:g}" + ("*" if row["lr_source"] == LR_SEARCH else "")
        rows.append(
            [
                row["solver"],
                batch,
                lr,
                _fmt_rmse(row, repeats),
                _fmt_mean(row, "best_epoch", _fmt_number, repeats),
                _fmt_mean(row, "best_seconds", _fmt_seconds, repeats),
                _reached(row, "epochs_to_target", _fmt_number, repeats),
                _reached(row, "seconds_to_target", _fmt_seconds, repeats),
                _fmt_count(row["updates_per_second"]),
                _diverged_cell(row, c.results),
            ]
        )
    return headers, rows, "lrlrrrrrrl"


def _reached(row: Mapping[str, Any], measure: str, fmt, repeats: int) -> str:
    if row["reached"] == 0:
        return "not reached"
    text = _fmt_mean(row, measure, fmt, repeats)
    if row["reached"] < repeats:
        text += f" ({row['reached']}/{repeats})"
    return text


def _diverged_cell(row: Mapping[str, Any], results: pd.DataFrame) -> str:
    if row["diverged"] == 0:
        return "no"
    epochs = results.loc[results["run"] == row["run"], "diverged_epoch"].dropna()
    text = f"yes, epoch {int(epochs.min())}"
    if row["repeats"] > 1:
        text += f" ({row['diverged']}/{row['repeats']})"
    return text


def _text_table(headers: list[str], rows: list[list[str]], align: str) -> str:
    widths = [max(len(r[k]) for r in [headers, *rows]) for k in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if a == "r" else cell.ljust(w)
            for cell, w, a in zip(cells, widths, align, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _markdown_table(headers: list[str], rows: list[list[str]], align: str) -> str:
    rule = ["---:" if a == "r" else "---" for a in align]
    # A lone * (the searched-rate mark) must not start emphasis.
    body = [[cell.replace("*", "\\*") for cell in cells] for cells in rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [headers, rule, *body])


def _report_markdown(c: Comparison, figure: str | None) -> str:
    s = c.setup
    where = f"`{s.source}`" if s.source else "the ratings"
    optimizer = (
        "plain gradient steps (x ← x − lr·g)"
        if s.optimizer == "constant"
        else f"the {s.optimizer} optimizer"
    )
    lines = [
        "# Solver comparison",
        "",
        f"Data: {where}, {s.n_ratings:,} ratings, {s.n_users:,} users and {s.n_items:,} items "
        f"in training; {s.n_train:,} training and {s.n_validation:,} validation ratings "
        f"({s.validation}).",
        "",
        f"Every run minimises the same objective J (k = {s.factors} factors, λ = {s.reg:g}, "
        f"λ_b = {s.reg_bias:g}, {s.dtype}) from the same starting P and Q, with {optimizer}; "
        "only the solver, its batch size and its learning rate differ. Budget: "
        f"{s.budget.describe()} per run. Repeats: {s.repeats} "
        f"(seed{'s' if s.repeats > 1 else ''} {_join(map(str, s.seeds))})"
        + ("; figures are mean ± standard deviation over the repeats." if s.repeats > 1 else "."),
        "",
        "## Results",
        "",
        c.table(markdown=True),
        "",
        f'Best validation RMSE of any run: {c.best_rmse:.4f}; "1%" columns: epochs and '
        f"seconds until a run first got within {TARGET_TOLERANCE:.0%} of it "
        f"(RMSE ≤ {c.target_rmse:.4f}). Seconds are solver time (wall clock, evaluation "
        "excluded, kernels warmed up first). updates/s: parameter updates per second "
        "(one per rating for sgd, per batch for minibatch, per epoch for bgd, two "
        "half-steps per epoch for als).",
    ]
    if (c.summary["lr_source"] == LR_SEARCH).any():
        lines += ["", "\\* learning rate chosen by the search below."]
    lines += ["", "## What the curves say", ""]
    lines += [f"- {sentence}" for sentence in c.findings]
    if figure is not None:
        lines += ["", f"![Objective and validation RMSE against epochs and seconds]({figure})"]
    if not c.lr_search.empty:
        lines += ["", "## Learning-rate search", "", _search_text(c), "", _search_table(c)]
    lines += [
        "",
        "## Files",
        "",
        "- `curves.csv`: one row per run, repeat and epoch (epoch 0 is the shared start): "
        "seconds, updates, objective, train RMSE, validation RMSE.",
        "- `summary.json`: the setup, the table's measures per run and per repeat, the "
        "learning-rate trials and the sentences above.",
        "",
    ]
    return "\n".join(lines)


def _search_text(c: Comparison) -> str:
    return (
        "Each gradient run without a given rate climbed the grid 1, 2, 5 × 10^k with seed "
        f"{c.setup.seed}, scoring a trial by the lowest validation RMSE it reached. Stage "
        "`short`: from the solver's default (for plain steps, the linear scaling rule "
        f"0.02 × batch size), steps of ×10 with trials of {c.setup.search_budget.describe()}, "
        "to find the order of magnitude; a trial in which J rose between two epochs "
        "(unstable) does not count, as such a rate tends to blow up later. Stage `full`: "
        "steps of one grid point with trials of the whole budget "
        f"({c.setup.budget.describe()}), since the best rate for a short run is larger than "
        "for a long one. Diverged trials never count."
    )


def _search_table(c: Comparison) -> str:
    rows = [
        [
            t["run"],
            t["stage"],
            f"{t['lr']:g}",
            _fmt_number(t["epochs"]),
            f"{t['validation_rmse']:.4f}" if math.isfinite(t["validation_rmse"]) else "–",
            t["status"] + (" (chosen)" if t["chosen"] else ""),
        ]
        for t in c.lr_search.to_dict("records")
    ]
    headers = ["run", "stage", "lr", "epochs", "best val RMSE", "status"]
    return _markdown_table(headers, rows, "llrrrl")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values; NaN becomes None (JSON has no NaN)."""
    out = []
    for row in frame.to_dict("records"):
        clean = {}
        for key, value in row.items():
            if value is pd.NA:
                value = None
            elif isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            clean[key] = value
        out.append(clean)
    return out
