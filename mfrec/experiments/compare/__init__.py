"""Compare solvers side by side at equal cost: stochastic, mini-batch and full-batch gradient
descent (and ALS as a reference) on the same data, from the same start, on the same objective.

How `compare` makes the runs comparable:

1. **One split.** The ratings are split once (``test_size`` held out at random, or a given
   ``validation`` set); every run trains on the same training part and is scored on the same
   validation part after every epoch.
2. **One start, one objective.** Every run trains through `mfrec.training.trainer.train` with
   the same factors, λ, λ_b and dtype; repeat r uses seed ``seed + r - 1`` for every run, so
   within a repeat all runs start from the same P and Q (`Factors.initial`). Only the solver,
   its batch size and its learning rate differ. The optimizer is the same for every gradient
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

The modules, one job each: `config` (the budget, the runs, the shared setup, the constants),
`plan` (checking the arguments, planning the runs, the shared split), `lrsearch` (the
learning-rate search), `run` (`compare` itself: training the runs and measuring the curves),
`result` (`Comparison` and its files), `report` (findings, tables, the Markdown report) and
`plot` (the convergence figure).
"""

from mfrec.experiments.compare.config import (
    CURVE_COLUMNS,
    DEFAULT_BATCH_SIZES,
    DEFAULT_BUDGET_EPOCHS,
    DEFAULT_OPTIMIZER,
    DEFAULT_SOLVERS,
    DEFAULT_TEST_SIZE,
    MEASURES,
    SEARCH_COLUMNS,
    TARGET_TOLERANCE,
    Budget,
    Run,
    Setup,
)
from mfrec.experiments.compare.lrsearch import TrialRunner, grid_lr, search_lr, start_lr
from mfrec.experiments.compare.plot import convergence_figure, save_figure
from mfrec.experiments.compare.report import findings
from mfrec.experiments.compare.result import Comparison
from mfrec.experiments.compare.run import compare

__all__ = [
    "CURVE_COLUMNS",
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_BUDGET_EPOCHS",
    "DEFAULT_OPTIMIZER",
    "DEFAULT_SOLVERS",
    "DEFAULT_TEST_SIZE",
    "MEASURES",
    "SEARCH_COLUMNS",
    "TARGET_TOLERANCE",
    "Budget",
    "Comparison",
    "Run",
    "Setup",
    "TrialRunner",
    "compare",
    "convergence_figure",
    "findings",
    "grid_lr",
    "save_figure",
    "search_lr",
    "start_lr",
]
