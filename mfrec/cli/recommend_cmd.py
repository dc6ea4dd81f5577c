"""`mfrec recommend` (top-k items for users) and `mfrec similar` (items like an item)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from mfrec.cli.app import CliError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

FORMATS = ("table", "csv", "json")


def _common(func):
    """Options shared by recommend and similar."""
    options = [
        click.option("-k", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Length of each list."),
        click.option("--items", "items_file", type=click.Path(exists=True, dir_okay=False),
                     default=None, help="Items file with titles to show: item,title CSV, "
                     "MovieLens u.item or movies.csv."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                     show_default=True, help="A table for people, CSV or JSON for scripts."),
        click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="Write to this file (atomically) instead of stdout."),
        click.option("--memory-budget", type=click.IntRange(min=1), default=256,
                     show_default=True, metavar="MIB",
                     help="Megabytes of scores held at once; more is faster for many users."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


@click.command("recommend")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", "users", multiple=True, metavar="ID", help="A user (repeatable).")
@click.option("--all-users", is_flag=True, help="Every user of the model, in blocks.")
@click.option(
    "--exclude-seen/--include-seen",
    default=True,
    show_default=True,
    help="Leave out the items the user rated in training.",
)
@click.option(
    "--cold-start",
    type=click.Choice(["error", "popular"]),
    default="error",
    show_default=True,
    help="An unknown user: stop with an error, or get the most-rated items.",
)
@_common
def recommend(
    model: Path,
    users: tuple[str, ...],
    all_users: bool,
    exclude_seen: bool,
    cold_start: str,
    k: int,
    items_file: str | None,
    fmt: str,
    output: Path | None,
    memory_budget: int,
) -> None:
    """Recommend the top K items for users of MODEL, by predicted rating.

    Give --user ID (repeatable) or --all-users. Each list is best first; equal scores rank
    the item seen first in training first. The score is the predicted rating (not clipped).
    Columns: user, rank, item, score (and source with --cold-start popular: model or
    popular; title with --items).
    """
    from mfrec.errors import UnknownUserError
    from mfrec.model.estimator import MatrixFactorization
    from mfrec.model.recommend import iter_recommendations

    if bool(users) == all_users:
        raise CliError("give --user ID (repeatable) or --all-users, not both", 2)
    fitted = MatrixFactorization.load(model)
    blocks = iter_recommendations(
        fitted,
        None if all_users else list(users),
        k,
        exclude_seen=exclude_seen,
        cold_start=cold_start,
        memory_budget=memory_budget * 2**20,
    )
    columns = ["user", "rank", "item", "score"]
    if cold_start == "popular":
        columns.append("source")
    writer = _ListWriter(fmt, columns, _titles(items_file), fitted, keys=users or None)
    cold = 0
    try:
        with _sink(output) as out:
            for block in blocks:
                cold += int(block.cold.sum())
                writer.write(out, block.users, block.items, block.scores, block.cold)
            writer.close(out)
    except UnknownUserError as exc:
        raise CliError(f"{exc}; --cold-start popular recommends the most popular items", 2) from exc
    if cold:
        click.echo(f"{cold:,} unknown user(s): recommended the most popular items", err=True)


@click.command("similar")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--item", "items", multiple=True, required=True, metavar="ID",
              help="An item (repeatable).")  # fmt: skip
@_common
def similar(
    model: Path,
    items: tuple[str, ...],
    k: int,
    items_file: str | None,
    fmt: str,
    output: Path | None,
    memory_budget: int,
) -> None:
    """The K items most similar to each --item of MODEL: cosine similarity of their factor
    vectors, best first (an item is never listed as similar to itself).

    Columns: item, rank, similar, similarity (and title of the similar item with --items).
    """
    from mfrec.model.estimator import MatrixFactorization
    from mfrec.model.recommend import similar_items

    fitted = MatrixFactorization.load(model)
    ids, scores = similar_items(fitted, list(items), k, memory_budget=memory_budget * 2**20)
    columns = ["item", "rank", "similar", "similarity"]
    writer = _ListWriter(fmt, columns, _titles(items_file), fitted, keys=items)
    with _sink(output) as out:
        writer.write(out, list(items), ids, scores, None)
        writer.close(out)


def _titles(items_file: str | None) -> pd.Series | None:
    if items_file is None:
        return None
    from mfrec.ratings.titles import read_titles

    return read_titles(items_file)


@contextmanager
def _sink(output: Path | None) -> Iterator[IO[str]]:
    if output is None:
        yield sys.stdout
        return
    from mfrec.utils.atomicfile import atomic_open

    with atomic_open(output, newline="") as fh:
        yield fh


class _ListWriter:
    """Writes ranked lists, one per key (a user, or an item), block by block.

    `columns` name the key, rank, item and score columns, then optionally ``source`` (model
    or popular); a title column follows when `titles` is given. Table columns keep the
    widest width seen so far, starting from every ID of the model, so blocks line up.
    """

    def __init__(
        self,
        fmt: str,
        columns: list[str],
        titles: pd.Series | None,
        model: Any,
        keys: tuple[str, ...] | None,
    ):
        self.fmt = fmt
        self.columns = [*columns, "title"] if titles is not None else list(columns)
        self.key, _, self.item, self.score = columns[:4]
        self.titles = titles
        self.first = True
        self.widths = {c: len(c) for c in self.columns}
        self.widths[self.key] = max([len(self.key), *map(len, keys or model.user_map_.ids)])
        self.widths[self.item] = max([len(self.item), *map(len, model.item_map_.ids)])

    def write(
        self,
        out: IO[str],
        keys: NDArray[np.object_] | list[str],
        items: NDArray[np.object_],
        scores: NDArray[np.float64],
        cold: NDArray[np.bool_] | None,
    ) -> None:
        """Write the lists of one block: row r of `items` / `scores` belongs to keys[r]."""
        import numpy as np

        listed = items != None  # noqa: E711 (elementwise on an object array)
        row, rank = np.nonzero(listed)
        columns = {
            self.key: np.asarray(keys, dtype=object)[row],
            "rank": rank + 1,
            self.item: items[listed],
            self.score: np.round(scores[listed], 4),
        }
        if "source" in self.columns:
            columns["source"] = np.where(cold[row], "popular", "model")
        if self.titles is not None:
            columns["title"] = self._title(columns[self.item])
        if self.fmt == "csv":
            from mfrec.model.csvtext import write_csv

            write_csv(out.write, columns, header=self.first)
        else:
            import pandas as pd

            rows = pd.DataFrame(columns)
            if self.fmt == "json":
                self._json(out, keys, row, rows, cold)
            else:
                self._table(out, rows)
        self.first = False

    def close(self, out: IO[str]) -> None:
        """Finish the output: the JSON array's closing bracket."""
        if self.fmt == "json":
            out.write("[]\n" if self.first else "\n]\n")

    def _title(self, ids: NDArray[np.object_]) -> NDArray[np.object_]:
        from mfrec.ratings.titles import titles_of

        return titles_of(self.titles, ids)

    def _json(self, out: IO[str], keys, row, rows: pd.DataFrame, cold) -> None:
        entries = rows.drop(columns=[self.key, "source"], errors="ignore").to_dict("records")
        per_key: list[list[dict]] = [[] for _ in keys]
        for r, entry in zip(row.tolist(), entries, strict=True):
            per_key[r].append(entry)
        for r, key in enumerate(keys):
            record: dict[str, Any] = {self.key: key}
            if "source" in self.columns:
                record["source"] = "popular" if cold[r] else "model"
            if self.titles is not None and self.key == "item":
                record["title"] = self._title([key])[0]
            record["items"] = per_key[r]
            out.write(("[\n" if self.first else ",\n") + json.dumps(record, ensure_ascii=False))
            self.first = False

    def _table(self, out: IO[str], rows: pd.DataFrame) -> None:
        right = {"rank", self.score}
        cells = {c: rows[c].astype(str) for c in self.columns}
        cells[self.score] = rows[self.score].map("{:.4f}".format)
        for c in self.columns:
            if len(rows) and c != "title":
                self.widths[c] = max(self.widths[c], int(cells[c].str.len().max()))

        def pad(c: str, values):
            if c == "title":
                return values
            return (
                values.str.rjust(self.widths[c]) if c in right else values.str.ljust(self.widths[c])
            )

        if self.first:
            header = [c.rjust(self.widths[c]) if c in right else c.ljust(self.widths[c])
                      for c in self.columns]  # fmt: skip
            out.write("  ".join(header).rstrip() + "\n")
        if len(rows):
            lines = pad(self.columns[0], cells[self.columns[0]])
            for c in self.columns[1:]:
                lines = lines + "  " + pad(c, cells[c])
            out.write("\n".join(lines.str.rstrip()) + "\n")
