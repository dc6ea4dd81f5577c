"""`mfrec data`: generate synthetic ratings, fetch public datasets into the cache, list them."""

from __future__ import annotations

from pathlib import Path

import click

_STATE_WORDS = {"cached": "cached", "missing": "not fetched", "corrupted": "corrupted"}
_CACHE_HELP = "Cache folder.  [default: $MFREC_CACHE_DIR, else ~/.cache/mfrec]"


@click.group("data")
def data() -> None:
    """Sample data: synthetic ratings with a known answer, and public datasets.

    Fetched datasets can be used by name wherever a ratings file is expected,
    e.g. `mfrec info ml-100k` after `mfrec data fetch ml-100k`.
    """


@data.command("synth")
@click.option("--users", type=click.IntRange(min=1), required=True, help="Number of users.")
@click.option("--items", type=click.IntRange(min=1), required=True, help="Number of items.")
@click.option(
    "--ratings",
    type=click.IntRange(min=1),
    required=True,
    help="Number of ratings (distinct user-item pairs).",
)
@click.option(
    "--factors",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Rank of the planted user-item interaction (0: biases only).",
)
@click.option(
    "--noise",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="Standard deviation of the Gaussian noise added before rounding to 1-5.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    required=True,
    help="Random seed; the same arguments give the same file, byte for byte.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Ratings CSV to write (user,item,rating,timestamp).",
)
@click.option(
    "--items-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the item titles (item,title) to this CSV.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary on stderr.")
def synth(
    users: int,
    items: int,
    ratings: int,
    factors: int,
    noise: float,
    seed: int,
    output: Path,
    items_out: Path | None,
    quiet: bool,
) -> None:
    """Write synthetic ratings with planted structure to a CSV file.

    Ratings 1-5 come from planted low-rank user and item factors plus user and
    item biases and Gaussian noise; item popularity and user activity are
    long-tailed; each user rates distinct items at increasing timestamps. IDs
    are zero-padded ("00042"). The file is written in chunks, so memory stays
    bounded even for 100M ratings.
    """
    from mfrec.ratings.synth import write_synthetic

    summary = write_synthetic(
        output,
        users,
        items,
        ratings,
        factors=factors,
        noise=noise,
        seed=seed,
        items_path=items_out,
        progress=not quiet,
    )
    if not quiet:
        click.echo(
            f"wrote {summary.n_ratings} ratings by {summary.n_users} users on "
            f"{summary.n_items} items to {summary.path}",
            err=True,
        )
        if summary.items_path is not None:
            click.echo(f"wrote {items} item titles to {summary.items_path}", err=True)


@data.command("fetch")
@click.argument("name")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=_CACHE_HELP,
)
@click.option("--force", is_flag=True, help="Download again even if the cache has a copy.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or license note on stderr.")
def fetch(name: str, cache_dir: Path | None, force: bool, quiet: bool) -> None:
    """Download dataset NAME into the cache, verify its checksum, unpack it.

    Prints the folder it was unpacked into. A dataset already in the cache is
    checked, not downloaded again. NAME is one of the names `mfrec data list`
    shows (ml-100k, ml-1m, ml-latest-small). Set MFREC_DATASETS_URL to download
    from a mirror.
    """
    from mfrec.ratings import datasets

    path = datasets.fetch(name, cache_dir, progress=not quiet, force=force)
    if not quiet:
        click.echo(f"{name}: {datasets.get(name).license}", err=True)
    click.echo(str(path))


@data.command("list")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=_CACHE_HELP,
)
def list_(cache_dir: Path | None) -> None:
    """List the known public datasets and whether each is in the cache."""
    from mfrec.ratings import datasets

    rows = [("NAME", "STATUS", "DESCRIPTION")]
    rows += [
        (s.dataset.name, _STATE_WORDS[s.state], s.dataset.description)
        for s in datasets.status(cache_dir)
    ]
    widths = [max(len(r[k]) for r in rows) for k in range(2)]
    for name, state, description in rows:
        click.echo(f"{name:<{widths[0]}}  {state:<{widths[1]}}  {description}")
    click.echo(f"cache: {datasets.cache_dir(cache_dir) / 'datasets'}", err=True)
