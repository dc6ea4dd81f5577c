"""`mfrec evaluate`: rating and ranking metrics of a model on test ratings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mfrec.cli.options import ratings_options


@click.command("evaluate")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("test")
@click.option(
    "-k",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Length of the recommendation lists the ranking metrics score.",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    metavar="RATING",
    help="Lowest relevant test rating.  [default: min + 0.75 (max - min) of the "
    "model's scale: 4 on 1..5]",
)
@click.option(
    "--clip/--no-clip",
    default=True,
    show_default=True,
    help="Clip predictions to the rating scale before RMSE and MAE.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="A report for people, or JSON / one CSV row for scripts.",
)
@ratings_options
def evaluate(
    model: Path, test: str, k: int, threshold: float | None, clip: bool, fmt: str,
    **load_options: Any,
) -> None:  # fmt: skip
    """Score MODEL on the ratings in TEST (read with the loader options below).

    Rating accuracy: RMSE and MAE over the test ratings whose user and item the model
    knows; the others are counted by kind (unknown user, item or both), and scored
    separately with the fallback prediction. Ranking: each known test user gets a top-K
    list from the items they did not rate in training; a test rating >= the threshold is
    relevant. precision@K, recall@K, NDCG@K, MAP@K and hit rate are averaged over the users
    with a relevant item (the others are counted, not averaged); coverage is the share of
    the model's items recommended to anyone. See the README for the exact definitions.
    """
    from mfrec.cli.options import load_from_options
    from mfrec.model.estimator import MatrixFactorization
    from mfrec.model.evaluate import evaluate as run_evaluation

    fitted = MatrixFactorization.load(model)
    data = load_from_options(test, **load_options)
    report = run_evaluation(fitted, data, k, threshold, clip=clip)
    figures = {"model": str(model), "test": test, **report.to_dict()}
    if fmt == "json":
        import json

        click.echo(json.dumps(figures, indent=2))
    elif fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        figures["scale"] = "..".join(f"{x:g}" for x in report.scale)
        writer = csv.DictWriter(buffer, fieldnames=list(figures), lineterminator="\n")
        writer.writeheader()
        writer.writerow(figures)
        click.echo(buffer.getvalue(), nl=False)
    else:
        click.echo(f"model  {model}\ntest   {test}\n\n{report.to_text()}")
