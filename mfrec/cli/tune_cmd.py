"""`mfrec tune`: search hyperparameters on training ratings; optionally score the winner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mfrec.cli.app import CliError
from mfrec.cli.options import ratings_options
from mfrec.cli.train_options import model_options, option_message
from mfrec.utils.formatting import fixed

if TYPE_CHECKING:
    import pandas as pd

    from mfrec.errors import ParameterError
    from mfrec.experiments.space import Param
    from mfrec.experiments.tune import TuneResult
    from mfrec.model.evaluate import Evaluation

FORMATS = ("table", "csv", "json")
# The library's defaults, shown in --help without importing it (kept in step by
# tests/cli/test_cv_tune_cmd.py).
DEFAULTS = {"trials": 20, "validation": 0.1, "patience": 5, "max_epochs": 200}


@click.command("tune")
@click.argument("ratings")
@click.option(
    "--param",
    "specs",
    multiple=True,
    metavar="NAME=SPEC",
    help="A parameter to search, repeatable: a list (factors=16,32,64), a range "
    "(reg=0.01:0.2:log, uniform with :lin; integers when both ends are), with a number of "
    "points for grid search (lr=0.005:0.05:log:4).",
)
@click.option(
    "--search",
    type=click.Choice(["grid", "random"]),
    default="random",
    show_default=True,
    help="grid: every combination; random: --trials draws.",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help=f"Trials of a random search.  [default: {DEFAULTS['trials']}]",
)
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=None,
    metavar="K",
    help="Score each trial by K-fold cross-validation on RATINGS (K fits per trial).",
)
@click.option(
    "--validation",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    metavar="FRACTION",
    help="Or score each trial on this fraction of RATINGS, held out at random.  "
    f"[default: {DEFAULTS['validation']}]",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=DEFAULTS["patience"],
    show_default=True,
    metavar="N",
    help="Early stopping: a trial stops when its held-out RMSE has not improved for N epochs "
    "and keeps its best epoch (--epochs is then the most it runs, default "
    f"{DEFAULTS['max_epochs']}).",
)
@click.option(
    "--metric",
    type=click.Choice(["rmse", "mae"]),
    default="rmse",
    show_default=True,
    help="What the held-out part scores; lower wins.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="J",
    help="Trials run side by side in J processes, one thread each.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed of the trials, the held-out parts and every model; the same seed gives "
    "the same results whatever --jobs.",
)
@model_options
@click.option(
    "--test",
    default=None,
    metavar="FILE",
    help="After the search, refit the winner on all of RATINGS and score it on FILE (read "
    "with the same loader options). FILE plays no part in choosing the winner.",
)
@click.option(
    "-k",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    metavar="K",
    help="With --test: length of the recommendation lists the ranking metrics score.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the results table (one row per trial, best first) as CSV.",
)
@click.option(
    "--best-params",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the winning parameters as JSON, for `mfrec train --params FILE`.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="The results as a table for people, or CSV / JSON for scripts.",
)
@click.option("-q", "--quiet", is_flag=True, help="No line per trial on stderr.")
@ratings_options
def tune(
    ratings: str,
    specs: tuple[str, ...],
    search: str,
    trials: int | None,
    folds: int | None,
    validation: float | None,
    patience: int,
    metric: str,
    jobs: int,
    seed: int,
    test: str | None,
    k: int,
    output: Path | None,
    best_params: Path | None,
    fmt: str,
    quiet: bool,
    **options: Any,
) -> None:
    """Search the --param values for the ones that score best on held-out parts of RATINGS.

    Each trial trains with early stopping on its held-out part (--validation, or each of
    --folds) and is scored there; the model options below that are given stay fixed. Only
    RATINGS is seen: give the ratings to train on, not the test set. Prints the trials,
    best first, and the winner, whose parameters (with the epoch it stopped at) --best-params
    writes for `mfrec train --params`. With --test, the winner is refitted on all of RATINGS
    and scored on FILE, which is read only then.

    \b
    Example:
      mfrec tune u1.base --preset ml-100k --param factors=50,100,200 \\
        --param lr=0.005:0.03:log --param reg=0.03:0.15:log --trials 40 --jobs 2 \\
        --best-params best.json --test u1.test
    """
    from mfrec.cli.options import load_from_options, pop_loader_options
    from mfrec.cli.train_options import estimator_params
    from mfrec.errors import ParameterError
    from mfrec.experiments.space import parse_space
    from mfrec.experiments.tune import tune as run_tune

    load_options = pop_loader_options(options)
    params = estimator_params(options)
    try:
        space = parse_space(specs)
    except ParameterError as exc:
        raise CliError(f"--param {exc.value}: {exc.reason}", 2) from exc
    data = load_from_options(ratings, **load_options)
    try:
        result = run_tune(
            data,
            space,
            search=search,
            trials=trials,
            folds=folds,
            validation=validation,
            patience=patience,
            metric=metric,
            jobs=jobs,
            seed=seed,
            on_trial=None if quiet else _trial_echo(space, metric),
            **params,
        )
    except ParameterError as exc:
        raise CliError(_tune_message(exc, space), 2) from exc
    if output is not None:
        from mfrec.utils.atomicfile import atomic_open

        with atomic_open(output, newline="") as fh:
            result.results.to_csv(fh, index=False)
    if best_params is not None:
        from mfrec.experiments.paramsfile import write_params

        write_params(best_params, result.best_params)
    scores = None
    if test is not None:
        from mfrec.model.evaluate import evaluate

        # The winner is fixed before the test file is even opened.
        model = result.best_estimator().fit(data)
        scores = evaluate(model, load_from_options(test, **load_options), k)
    click.echo(_render(result, scores, test, fmt))


def _tune_message(exc: ParameterError, space: dict[str, Param]) -> str:
    """A ParameterError from the search: a searched value is named by its --param."""
    if exc.param in space:
        spec = space[exc.param].spec
        return f"--param {spec}: {exc.reason if exc.value == spec else exc}"
    return option_message(exc)


def _trial_echo(space: dict[str, Param], metric: str) -> Callable[[int, int, dict], None]:
    """A progress line on stderr per finished trial."""

    def echo(done: int, total: int, row: dict[str, Any]) -> None:
        figures = row["error"] or f"{metric} {row[metric]:.4f}"
        params = " ".join(f"{name}={row[name]}" for name in space)
        click.echo(
            f"trial {done}/{total}: {figures}  {params} (best epoch {row['best_epoch']}, "
            f"{row['seconds']:.1f} s)",
            err=True,
        )

    return echo


def _render(result: TuneResult, scores: Evaluation | None, test: str | None, fmt: str) -> str:
    table = result.results
    if fmt == "csv":
        return table.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        import json

        out: dict[str, Any] = {
            "metric": result.metric,
            "seed": result.seed,
            "best_params": result.best_params,
            "best_score": result.best_score,
            "results": _records(table),
        }
        if scores is not None:
            out["test"] = {"file": test, **scores.to_dict()}
        return json.dumps(out, indent=2)
    shown = table if table["error"].astype(bool).any() else table.drop(columns="error")
    lines = [
        shown.to_string(index=False, float_format=lambda x: f"{x:.4g}"),
        "",
        f"best ({result.metric} {result.best_score:.4f} held out): "
        + " ".join(f"{k}={v}" for k, v in result.best_params.items()),
    ]
    if scores is not None:
        lines.append(
            f"test ({test}, refitted on all of RATINGS): RMSE {fixed(scores.rmse)}, "
            f"MAE {fixed(scores.mae)}, precision@{scores.k} {fixed(scores.precision)}, "
            f"NDCG@{scores.k} {fixed(scores.ndcg)}"
        )
    return "\n".join(lines)


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    # NaN (a diverged trial) is not JSON: null instead.
    return table.astype(object).where(table.notna(), None).to_dict(orient="records")
