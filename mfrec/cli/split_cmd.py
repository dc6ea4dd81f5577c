"""`mfrec split`: write train/test files (or k folds of them) in the input file's layout."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mfrec.cli.app import CliError
from mfrec.cli.options import ratings_options

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mfrec.ratings.split import Split

# Suffixes kept on the output names because write_ratings compresses by them.
_COMPRESSED = (".gz", ".bz2", ".xz")
# Inputs that are not delimited text: their splits are written as CSV.
_NOT_TEXT = (".parquet", ".pq", ".zip")


@click.command("split")
@click.argument("ratings")
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the train and test files (created when missing).",
)
@click.option(
    "--test-size",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Fraction of ratings held out, between 0 and 1.  [default: 0.2]",
)
@click.option(
    "--by",
    type=click.Choice(["random", "user", "time"]),
    default="random",
    show_default=True,
    help="random: uniform over ratings; user: that fraction of each user's ratings; "
    "time: each user's latest ratings (needs timestamps).",
)
@click.option(
    "--min-ratings",
    type=click.IntRange(min=2),
    default=None,
    help="With --by user/time, users with fewer ratings stay whole in train.  [default: 5]",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed; the same seed gives the same split.",
)
@click.option(
    "-k",
    "--folds",
    type=click.IntRange(min=2),
    default=None,
    metavar="K",
    help="Write K cross-validation folds (each rating in exactly one test file) instead "
    "of one split; --by random or user.",
)
@click.option("--force", is_flag=True, help="Overwrite train/test files that already exist.")
@ratings_options
def split(
    ratings: str,
    out_dir: Path,
    test_size: float | None,
    by: str,
    min_ratings: int | None,
    seed: int,
    folds: int | None,
    force: bool,
    **load_options: Any,
) -> None:
    """Split RATINGS into train and test files in the input's own layout.

    Writes OUTPUT/train.EXT and OUTPUT/test.EXT, or with --folds K,
    OUTPUT/fold1/train.EXT, OUTPUT/fold1/test.EXT, ... OUTPUT/foldK/test.EXT, where
    EXT is the input file's extension (u.data gives train.data; Parquet and zip
    inputs give .csv). Files are written with the input's separator and header; IDs
    are kept exactly. Existing files are never overwritten unless --force is given.

    Prints each file written, and for each test file the test users and items that
    its train file lacks (a model cannot score them).
    """
    if folds is not None:
        for given, option in (
            (by == "time", "--by time"),
            (test_size is not None, "--test-size"),
            (min_ratings is not None, "--min-ratings"),
        ):
            if given:
                raise click.UsageError(f"{option} cannot be combined with --folds")
    from mfrec.cli.options import load_from_options

    data = load_from_options(ratings, **load_options)
    suffix = _output_suffix(data.source or ratings)
    folders = [out_dir] if folds is None else [out_dir / f"fold{f}" for f in range(1, folds + 1)]
    targets = [(d / f"train{suffix}", d / f"test{suffix}") for d in folders]
    existing = [p for pair in targets for p in pair if p.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CliError(f"{existing[0]} already exists{more}; use --force to overwrite", 2)

    from mfrec.ratings.split import kfold
    from mfrec.ratings.split import split as split_ratings
    from mfrec.ratings.write import write_ratings

    splits: Iterable[Split]
    if folds is None:
        # Options left out fall back to the library's defaults, which the help text quotes.
        given = {"test_size": test_size, "min_ratings": min_ratings}
        options = {k: v for k, v in given.items() if v is not None}
        splits = [split_ratings(data, by=by, seed=seed, **options)]
    else:
        splits = kfold(data, folds, seed=seed, by=by)
    for s, (train_path, test_path) in zip(splits, targets, strict=True):
        write_ratings(s.train, train_path)
        write_ratings(s.test, test_path)
        r = s.report
        click.echo(f"{train_path}: {r.n_train} ratings")
        click.echo(
            f"{test_path}: {r.n_test} ratings; not in train: {r.unknown_users} users, "
            f"{r.unknown_items} items ({r.unknown_ratings} ratings)"
        )


def _output_suffix(source: str) -> str:
    """The input's extension, compression suffix included: ratings.csv.gz gives .csv.gz."""
    suffixes = [s.lower() for s in Path(source).suffixes]
    if suffixes and suffixes[-1] in _NOT_TEXT:
        return ".csv"
    if suffixes and suffixes[-1] in _COMPRESSED:
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""
