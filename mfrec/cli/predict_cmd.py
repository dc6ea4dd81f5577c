"""`mfrec predict`: predicted ratings for user,item pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mfrec.cli.options import pairs_options


@click.command("predict")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("pairs")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the CSV to this file (atomically) instead of stdout.",
)
@click.option(
    "--clip/--no-clip",
    default=True,
    show_default=True,
    help="Bound predictions to the model's rating scale.",
)
@pairs_options
def predict(model: Path, pairs: str, output: Path | None, clip: bool, **pair_options: Any) -> None:
    """Predict the ratings of the user,item pairs in PAIRS with MODEL.

    PAIRS is a file of user,item lines, or any ratings file (a test split) whose other
    columns are ignored; every line gets one output row, in order. The output is CSV with
    columns user,item,prediction,known. A pair whose user or item the model never saw is
    not an error: its prediction is the mean rating plus whichever bias is known, and
    `known` says what the model knew: both, user, item or none.
    """
    from mfrec.model.estimator import MatrixFactorization
    from mfrec.ratings.pairs import read_pairs

    fitted = MatrixFactorization.load(model)
    wanted = read_pairs(pairs, **pair_options)
    prediction, known = fitted.predict(wanted.users, wanted.items, clip=clip, return_known=True)
    _write_csv(output, wanted.users, wanted.items, prediction, known)
    fallback = int((known != "both").sum())
    if fallback:
        click.echo(
            f"{fallback:,} of {len(wanted):,} pairs have an unknown user or item: fallback "
            "predictions (see the known column)",
            err=True,
        )


def _write_csv(output: Path | None, users, items, prediction, known) -> None:
    from mfrec.model.csvtext import write_csv

    columns = {"user": users, "item": items, "prediction": prediction, "known": known}
    if output is None:
        write_csv(lambda text: click.echo(text, nl=False), columns, float_format="%.6g")
        return
    from mfrec.utils.atomicfile import atomic_open

    with atomic_open(output, newline="") as fh:
        write_csv(fh.write, columns, float_format="%.6g")
