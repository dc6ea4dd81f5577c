"""What a comparison compares: the budget of a run, the runs, the setup they share, and the
constants that fix the method (the target, the learning-rate grid, the columns of the tables).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mfrec.training.state import SolverParams

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
