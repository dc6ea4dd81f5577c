"""`mfrec info`: describe a ratings file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mfrec.cli.options import ratings_options

if TYPE_CHECKING:
    from mfrec.describe import Description


@click.command("info")
@click.argument("path")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table for people, or JSON for scripts.",
)
@ratings_options
def info(path: str, fmt: str, **load_options: Any) -> None:
    """Describe the ratings in PATH.

    Prints the numbers of ratings, users and items, the density, the rating scale and
    histogram, quantiles of ratings per user and per item, and the timestamp range.
    PATH is a ratings file or the name of a fetched dataset (ml-100k); the loader
    options below apply as in `mfrec train`.
    """
    description = _describe(path, load_options)
    if fmt == "json":
        import json

        click.echo(json.dumps(description.to_dict(), indent=2))
    else:
        click.echo(description.to_text())


def _describe(path: str, load_options: dict[str, Any]) -> Description:
    """The description of whatever PATH holds: the one place that tells kinds of file apart."""
    from mfrec.cli.options import load_from_options
    from mfrec.describe import describe

    return describe(load_from_options(path, **load_options))
