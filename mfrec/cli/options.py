"""Loader options shared by every command that reads a ratings file."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from mfrec.ratings.ratingdata import RatingData

LOADER_KEYS = ("preset", "sep", "header", "columns", "scale", "duplicates", "encoding")
# Kept in step with mfrec.ratings.load.PRESETS and DUPLICATE_POLICIES by tests/test_cli_load.py;
# listed here so that building the CLI does not import pandas.
PRESET_NAMES = ("auto", "generic", "ml-100k", "ml-1m", "ml-10m", "ml-latest")
DUPLICATE_CHOICES = ("last", "mean", "error")


def _loader_options(columns_metavar: str, columns_help: str) -> dict[str, Callable]:
    """The loader's click options by name, so commands can take the subset that applies."""
    return {
        "preset": click.option(
            "--preset",
            type=click.Choice(PRESET_NAMES),
            default="auto",
            show_default=True,
            help="Named file layout (ml-100k: u.data; ml-1m/ml-10m: ratings.dat with '::'; "
            "ml-latest: ratings.csv). Explicit options below override it.",
        ),
        "sep": click.option(
            "--sep",
            default=None,
            help="Column separator: ',', tab (or 'tab'), ';', '|', '::', or 'space' for any "
            "whitespace. Detected by default.",
        ),
        "header": click.option(
            "--header/--no-header",
            default=None,
            help="Whether the first line holds column names. Detected by default.",
        ),
        "columns": click.option(
            "--columns", default=None, metavar=columns_metavar, help=columns_help
        ),
        "scale": click.option(
            "--scale",
            default=None,
            metavar="MIN,MAX",
            help="Rating scale; ratings outside it are an error. Default: taken from the data.",
        ),
        "duplicates": click.option(
            "--duplicates",
            type=click.Choice(DUPLICATE_CHOICES),
            default="last",
            show_default=True,
            help="A repeated (user, item) pair: keep the last, average them, or stop.",
        ),
        "encoding": click.option(
            "--encoding",
            default=None,
            help="Text encoding. Default: UTF-8 (BOM allowed), latin-1 when not UTF-8.",
        ),
    }


def _apply(func: Callable[..., Any], options: list[Callable]) -> Callable[..., Any]:
    for option in reversed(options):
        func = option(func)
    return func


def ratings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the loader options (--preset, --sep, --header/--no-header, --columns, --scale,
    --duplicates, --encoding) to a command; pass them on with `load_from_options`."""
    options = _loader_options(
        "USER,ITEM,RATING[,TIMESTAMP]",
        "Columns by header name (userId,movieId,rating) or 1-based position (1,2,3).",
    )
    return _apply(func, list(options.values()))


def pairs_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The loader options that apply to a file of user,item pairs (no scale, no duplicates)."""
    options = _loader_options(
        "USER,ITEM",
        "The user and item columns by header name or 1-based position; further entries "
        "(a rating) are ignored. Default: found by name, else the first two.",
    )
    return _apply(func, [options[k] for k in ("preset", "sep", "header", "columns", "encoding")])


def pop_loader_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the loader options from a command's keyword arguments and return them."""
    return {key: kwargs.pop(key) for key in LOADER_KEYS if key in kwargs}


def load_from_options(source: str, **options: Any) -> RatingData:
    """Load `source` with the options that `ratings_options` collected."""
    from mfrec.ratings.load import load_ratings, parse_scale

    scale = options.pop("scale", None)
    return load_ratings(source, scale=parse_scale(scale) if scale is not None else None, **options)
