"""`mfrec cv`: k-fold cross-validation of one set of training options."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mfrec.cli.app import CliError
from mfrec.cli.options import ratings_options
from mfrec.cli.train_options import (
    estimator_params,
    model_options,
    option_message,
    params_file_option,
)

if TYPE_CHECKING:
    import pandas as pd

    from mfrec.experiments.cv import CVResult

FORMATS = ("table", "csv", "json")
#: One numeric range in a --fold-files path: u{1..5}.base -> u1.base, ..., u5.base.
_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")


@click.command("cv")
@click.argument("ratings", required=False)
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=None,
    metavar="K",
    help="Cut RATINGS into K folds; each rating is tested once.  [default: 5]",
)
@click.option(
    "--by",
    type=click.Choice(["random", "user"]),
    default="random",
    show_default=True,
    help="random: ratings dealt at random; user: each user's ratings spread over the folds.",
)
@click.option(
    "--fold-files",
    nargs=2,
    multiple=True,
    metavar="BASE TEST",
    help="A predefined fold instead of RATINGS: train on BASE, score TEST. Repeat it for "
    "each fold, or give a range in quotes: --fold-files 'u{1..5}.base' 'u{1..5}.test'.",
)
@model_options
@params_file_option
@click.option(
    "--validation",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    metavar="FRACTION",
    help="Hold out this fraction of each fold's training part for early stopping.",
)
@click.option(
    "--patience",
    type=int,
    default=None,
    metavar="N",
    help="With --validation: stop when its RMSE has not improved for N epochs.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed of the folds and of every model (the folds of `mfrec split --folds`).",
)
@click.option(
    "-k",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    metavar="K",
    help="Length of the recommendation lists the ranking metrics score.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="A table for people (metrics by fold, mean, std), or CSV / JSON for scripts.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the per-fold figures and the mean and std rows as CSV.",
)
@click.option("-q", "--quiet", is_flag=True, help="No line per fold on stderr.")
@ratings_options
def cv(
    ratings: str | None,
    folds: int | None,
    by: str,
    fold_files: tuple[tuple[str, str], ...],
    validation: float | None,
    patience: int | None,
    seed: int,
    k: int,
    fmt: str,
    output: Path | None,
    quiet: bool,
    **options: Any,
) -> None:
    """Cross-validate the training options on RATINGS cut into --folds folds, or on
    predefined --fold-files pairs (MovieLens 100k's u1-u5, for example).

    Each fold trains a model with the options below (as `mfrec train` takes them) on its
    training part and scores its test part: RMSE and MAE over the test ratings whose user
    and item the model knows (rmse_all and mae_all over every test rating, the others with
    the fallback prediction), and precision, recall, NDCG, MAP, hit rate and coverage at K
    (as `mfrec evaluate` defines them). Prints every fold and the mean and standard
    deviation across folds.
    """
    from mfrec.cli.options import load_from_options, pop_loader_options
    from mfrec.errors import ParameterError
    from mfrec.experiments.cv import cross_validate
    from mfrec.ratings.load import parse_scale

    load_options = pop_loader_options(options)
    params = estimator_params(options)
    held_out = {"validation": validation, "patience": patience}
    params.update({k: v for k, v in held_out.items() if v is not None})
    pairs = _fold_pairs(ratings, folds, fold_files)
    data = load_from_options(ratings, **load_options) if pairs is None else None
    if load_options.get("scale") is not None:  # the fold files are read by the library
        load_options["scale"] = parse_scale(load_options["scale"])
    try:
        result = cross_validate(
            data,
            folds=folds or 5,
            folds_files=pairs,
            k=k,
            seed=seed,
            by=by,
            load_options=load_options,
            on_fold=None if quiet else _echo_fold,
            **params,
        )
    except ParameterError as exc:
        raise CliError(option_message(exc, validation), 2) from exc
    frame = _with_summary(result)
    if output is not None:
        from mfrec.utils.atomicfile import atomic_open

        with atomic_open(output, newline="") as fh:
            frame.to_csv(fh, index=False)
    click.echo(_render(result, frame, fmt))


def _fold_pairs(
    ratings: str | None, folds: int | None, fold_files: tuple[tuple[str, str], ...]
) -> list[tuple[str, str]] | None:
    """The --fold-files pairs with their ranges expanded; None when RATINGS is cut instead."""
    if not fold_files:
        if ratings is None:
            raise CliError("give RATINGS to cut into --folds folds, or --fold-files BASE TEST", 2)
        return None
    if ratings is not None:
        raise CliError("give RATINGS or --fold-files, not both", 2)
    if folds is not None:
        raise CliError("--folds: not with --fold-files (each pair is a fold)", 2)
    pairs: list[tuple[str, str]] = []
    for base, test in fold_files:
        bases, tests = expand_range(base), expand_range(test)
        if len(bases) != len(tests):
            raise CliError(
                f"--fold-files {base!r} {test!r}: BASE names {len(bases)} file(s) and TEST "
                f"{len(tests)}",
                2,
            )
        pairs += zip(bases, tests, strict=True)
    for path in (p for pair in pairs for p in pair):
        if not Path(path).is_file():
            raise CliError(f"--fold-files: {path}: no such file", 2)
    return pairs


def expand_range(pattern: str) -> list[str]:
    """``u{1..5}.base`` -> ``u1.base`` ... ``u5.base``; a path without a range is itself.

    Raises CliError for more than one range or a range that counts down.
    """
    found = list(_RANGE.finditer(pattern))
    if not found:
        return [pattern]
    if len(found) > 1:
        raise CliError(f"--fold-files {pattern!r}: at most one {{A..B}} range per path", 2)
    m = found[0]
    first, last = int(m.group(1)), int(m.group(2))
    if first > last:
        raise CliError(f"--fold-files {pattern!r}: the range {m.group(0)} counts down", 2)
    return [pattern[: m.start()] + str(n) + pattern[m.end() :] for n in range(first, last + 1)]


def _echo_fold(done: int, total: int, row: dict[str, Any]) -> None:
    click.echo(
        f"fold {done}/{total}: RMSE {row['rmse']:.4f}, MAE {row['mae']:.4f} "
        f"({row['seconds']:.2f} s)",
        err=True,
    )


def _with_summary(result: CVResult) -> pd.DataFrame:
    """The fold rows followed by the mean and std rows, ``fold`` naming each."""
    import pandas as pd

    folds = result.folds.astype({"fold": str})
    summary = result.summary.reset_index().rename(columns={"statistic": "fold"})
    return pd.concat([folds, summary], ignore_index=True)


def _render(result: CVResult, frame: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        import json

        summary = result.summary
        return json.dumps(
            {
                "k": result.k,
                "folds": result.folds.to_dict(orient="records"),
                "mean": summary.loc["mean"].to_dict(),
                "std": summary.loc["std"].to_dict(),
            },
            indent=2,
        )
    # Metrics down, folds across: a handful of folds fits a terminal, a dozen metrics would
    # not.
    names = [c for c in frame.columns if c != "fold"]
    heads = [f if f in ("mean", "std") else f"fold {f}" for f in frame["fold"]]
    width = max(map(len, names))
    lines = [" " * width + "".join(f"{h:>10}" for h in heads)]
    for name in names:
        cells = "".join(f"{_cell(name, v):>10}" for v in frame[name])
        lines.append(f"{name:<{width}}{cells}")
    return "\n".join(lines)


def _cell(name: str, value: float) -> str:
    if value != value:  # NaN: the figure could not be computed
        return "n/a"
    if name in ("train", "test", "epochs"):
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    return f"{value:.2f}" if name == "seconds" else f"{value:.4f}"
