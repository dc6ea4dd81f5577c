"""Write ratings back to a delimited text file with their raw IDs, in the layout they came in."""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mfrec.errors import DataFormatError
from mfrec.ratings.idmap import IdMap
from mfrec.ratings.ratingdata import Layout, RatingData
from mfrec.utils.atomicfile import atomic_path

#: Rows formatted and written at a time: bounds memory to a few hundred MB for any file size.
_CHUNK = 1 << 20

#: Integers up to 2**53 are exact in a float64, so a whole rating below that prints as an int.
_EXACT_INT = 2.0**53

_DEFAULT_NAMES = ("user", "item", "rating", "timestamp")


def _gzip_writer(raw: IO[bytes], target: Path) -> IO[bytes]:
    # mtime=0 and the target's own name keep the output byte-identical from run to run.
    return gzip.GzipFile(filename=target.name, mode="wb", fileobj=raw, mtime=0)


_COMPRESSORS: dict[str, Callable[[IO[bytes], Path], IO[bytes]]] = {
    ".gz": _gzip_writer,
    ".bz2": lambda raw, _target: bz2.BZ2File(raw, mode="wb"),
    ".xz": lambda raw, _target: lzma.LZMAFile(raw, mode="wb"),
}


def write_ratings(
    data: RatingData, path: str | os.PathLike[str], layout: Layout | None = None
) -> Path:
    """Write `data` to `path` as ``user<sep>item<sep>rating[<sep>timestamp]`` lines.

    IDs are written exactly as loaded (``007`` stays ``007``). Ratings are written as integers
    when all of them are whole numbers, otherwise in the shortest form that reads back as the
    same value; timestamps as integers. The file is compressed when `path` ends in ``.gz``,
    ``.bz2`` or ``.xz``, and written atomically.

    Parameters
    ----------
    layout
        Separator, header line and header names; defaults to ``data.layout``, the layout of the
        file the ratings were loaded from. With a one-character separator, a field holding the
        separator, a double quote or a line break is quoted CSV-style (quotes doubled). A longer
        separator such as ``::`` cannot be quoted: a field holding it or a line break raises
        `DataFormatError`.

    Returns
    -------
    The path written.
    """
    layout = data.layout if layout is None else layout
    path = Path(path)
    if not layout.sep:
        raise ValueError("layout.sep='': the separator must not be empty")
    quote = _quoter(layout.sep, str(path))
    users = _id_strings(data.user_map, data.users, quote, "user")
    items = _id_strings(data.item_map, data.items, quote, "item")
    ratings = _rating_strings(data.ratings)
    compress = _COMPRESSORS.get(path.suffix.lower())
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        out = raw if compress is None else compress(raw, path)
        with out:
            if layout.header:
                names = _header_names(layout.names, data.timestamps is not None)
                out.write(_join_line(quote(np.array(names, dtype=object), "header"), layout.sep))
            for chunk in _lines(users, items, ratings, data.timestamps, layout.sep):
                out.write(chunk.encode("utf-8"))
    return path


def _header_names(names: tuple[str, ...], with_timestamps: bool) -> list[str]:
    """The header of the written columns: the layout's names, padded with the defaults."""
    n_cols = 4 if with_timestamps else 3
    return [*names[:n_cols], *_DEFAULT_NAMES[len(names) : n_cols]]


def _join_line(fields: NDArray[np.object_], sep: str) -> bytes:
    return (sep.join(fields.tolist()) + "\n").encode("utf-8")


def _quoter(sep: str, where: str) -> Callable[[NDArray[np.object_], str], NDArray[np.object_]]:
    """A function that makes an array of fields safe to write between `sep` separators.

    Readers honour CSV quotes only with a one-character separator (``" "`` standing for any
    run of whitespace, as in `load_ratings`). With a longer one a quote is an ordinary
    character, and a field that holds the separator, would run into the next one (``a:``
    before ``::``) or holds a line break cannot be written.
    """
    if len(sep) > 1:
        return functools.partial(_check_unquotable, sep=sep, where=where)
    special = r'[\s"]' if sep == " " else "|".join(map(re.escape, (sep, '"', "\n", "\r")))

    def quote(fields: NDArray[np.object_], what: str) -> NDArray[np.object_]:
        needs = pd.Series(fields, dtype=object).str.contains(special, regex=True).to_numpy(bool)
        if not needs.any():
            return fields
        out = fields.copy()
        out[needs] = ['"' + f.replace('"', '""') + '"' for f in fields[needs]]
        return out

    return quote


def _check_unquotable(
    fields: NDArray[np.object_], what: str, *, sep: str, where: str
) -> NDArray[np.object_]:
    # Splitting "<sep><field><sep>" must find its next separator exactly at the field's end.
    col = pd.Series(fields, dtype=object)
    wrapped = sep + col + sep
    bad = (wrapped.str.find(sep, 1) != col.str.len() + len(sep)) | col.str.contains("[\r\n]")
    if bad.any():
        raise DataFormatError(
            f"{what} {fields[bad.to_numpy(bool)][0]!r} holds or touches the separator {sep!r} "
            f"or holds a line break, which a {sep!r}-separated file cannot quote; write it "
            "with a one-character separator such as ',' instead",
            source=where,
        )
    return fields


def _id_strings(
    idmap: IdMap,
    idx: NDArray[np.integer],
    quote: Callable[[NDArray[np.object_], str], NDArray[np.object_]],
    what: str,
) -> NDArray[np.object_]:
    """The (quoted) raw ID of every row; only IDs that occur are checked and quoted."""
    used = np.zeros(len(idmap), dtype=bool)
    used[idx] = True
    fields = idmap.ids.copy()
    fields[used] = quote(fields[used], f"{what} ID")
    return fields[idx]


def _rating_strings(ratings: NDArray[np.floating]) -> NDArray[np.object_]:
    """Each rating as text, formatting each distinct value once."""
    values, inverse = np.unique(ratings, return_inverse=True)
    whole = bool(np.all(np.abs(values) < _EXACT_INT) and np.all(values == np.round(values)))
    if whole:
        text = list(map(str, values.astype(np.int64).tolist()))
    else:
        # numpy's str is the shortest text that reads back as the same value of that dtype.
        text = values.astype(str).tolist()
    return np.array(text, dtype=object)[inverse]


def _lines(
    users: NDArray[np.object_],
    items: NDArray[np.object_],
    ratings: NDArray[np.object_],
    timestamps: NDArray[np.int64] | None,
    sep: str,
) -> Iterator[str]:
    """The data lines, a chunk of rows at a time, each chunk one string."""
    n_fields = 3 if timestamps is None else 4
    for start in range(0, len(users), _CHUNK):
        stop = min(start + _CHUNK, len(users))
        # Fields and separators interleaved in one object array, then a single str.join: no
        # per-row Python code and no intermediate per-row strings.
        cells = np.empty((stop - start, 2 * n_fields), dtype=object)
        cells[:, 0] = users[start:stop]
        cells[:, 2] = items[start:stop]
        cells[:, 4] = ratings[start:stop]
        if timestamps is not None:
            cells[:, 6] = list(map(str, timestamps[start:stop].tolist()))
        cells[:, 1:-1:2] = sep
        cells[:, -1] = "\n"
        yield "".join(cells.ravel().tolist())
