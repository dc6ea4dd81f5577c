"""Item titles, to show next to recommended item IDs.

Reads the usual layouts without options: a CSV with a header naming a title column
(``item,title``, MovieLens latest ``movies.csv``: ``movieId,title,genres`` with quoted titles),
MovieLens 100k ``u.item`` (``id|title|date|...``, no header, latin-1) and MovieLens 1M/10M
``movies.dat`` (``id::title::genres``). Without a header the first column is the ID and the
second the title. IDs are kept as exact strings (``00001`` is not ``1``).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from mfrec.errors import DataFormatError
from mfrec.ratings.pairs import read_delimited
from mfrec.ratings.sniff import KNOWN_NAMES, normalize_name

#: Header names of a title column (compared lower-case without "_", "-" and spaces).
TITLE_NAMES = ("title", "name", "movietitle", "itemname", "booktitle", "tracktitle")
#: Header names of the ID column; without one, the first column.
ID_NAMES = (*KNOWN_NAMES["item"], "id")


def read_titles(path: str | os.PathLike[str], *, encoding: str | None = None) -> pd.Series:
    """Titles indexed by item ID (strings), from an items file in any layout above.

    Raises DataFormatError when the file has fewer than two columns or lists an item twice.
    """
    table = read_delimited(path, encoding=encoding, is_header=_has_title)
    n_fields = table.frame.shape[1]
    if n_fields < 2:
        raise DataFormatError("expected an item ID and a title on each line", source=table.source)
    id_col, title_col = 0, 1
    if table.names is not None:
        normalized = [normalize_name(n) for n in table.names]
        title_col = next(k for k, n in enumerate(normalized) if n in TITLE_NAMES)
        id_col = next((k for k, n in enumerate(normalized) if n in ID_NAMES), 0)
    ids = table.frame[id_col].str.strip()
    if (ids == "").any():
        row = int(np.argmax((ids == "").to_numpy()))
        raise DataFormatError("empty item ID", source=table.source, line=int(table.lines[row]))
    repeated = ids.duplicated(keep=False).to_numpy()
    if repeated.any():
        rows = np.flatnonzero(repeated)
        first = ids.iloc[rows[0]]
        second = rows[1:][(ids.iloc[rows[1:]] == first).to_numpy()][0]
        raise DataFormatError(
            f"item {first!r} is listed twice (lines {table.lines[rows[0]]} and "
            f"{table.lines[second]})",
            source=table.source,
        )
    titles = table.frame[title_col].str.strip().to_numpy(dtype=object)
    return pd.Series(titles, index=pd.Index(ids.to_numpy(dtype=object), dtype=object))


def titles_of(titles: pd.Series, ids: ArrayLike) -> NDArray[np.object_]:
    """The title of each ID; "" for an ID the file does not list (or None, for padding)."""
    arr = np.asarray(ids, dtype=object)
    found = titles.reindex(arr.ravel()).to_numpy(dtype=object)
    found[pd.isna(found)] = ""
    return found.reshape(arr.shape)


def _has_title(fields: list[str]) -> bool:
    return any(normalize_name(f) in TITLE_NAMES for f in fields)
