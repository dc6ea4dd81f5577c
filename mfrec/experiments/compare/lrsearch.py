"""The learning-rate search: per run, the rate on the 1-2-5 grid whose trials score lowest on
the validation part (a climb by ×10 with short trials, then by one grid point with trials of
the whole budget)."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any, Protocol

from mfrec.experiments.compare.config import (
    ADAPTIVE_OPTIMIZERS,
    LR_MANTISSAS,
    PLAIN_SGD_LR,
    SEARCH_FRACTION,
    SEARCH_MAX_TRIALS,
    Budget,
    Run,
)
from mfrec.training.solvers import SOLVERS
from mfrec.training.solvers.minibatch import MiniBatch

logger = logging.getLogger(__name__)


class TrialRunner(Protocol):
    """What `search_lr` needs: one trial of a run within a budget, as a search-table row."""

    def trial(self, run: Run, budget: Budget) -> dict[str, Any]: ...


def search_lr(runner: TrialRunner, run: Run, budget: Budget) -> tuple[float, list[dict[str, Any]]]:
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
                trial = runner.trial(replace(run, lr=grid_lr(index)), trial_budget)
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
