"""The columns of a file that pandas' parser reads in chunks, built as the chunks arrive.

Each chunk's IDs are numbered at once (`GrowingIdMap`) and its columns written into arrays
allocated once for the whole file (`ChunkColumns`), so that peak memory stays near the final
arrays: no chunk is kept, nothing is concatenated.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
from numpy.typing import NDArray

from mfrec.ratings.idmap import IdMap

if TYPE_CHECKING:
    import pandas as pd


def pandas_chunks(
    fh: TextIO, *, sep: str, header: bool, dtypes: dict, split_on_one_char: bool, rows: int
) -> Iterator[pd.DataFrame]:
    """The text `fh` in frames of `rows` rows, columns numbered from 0, read by pandas' C parser
    (its python engine for a separator of several characters that `split_on_one_char` does not
    allow splitting on its one repeated character); `fh` is closed at the end.

    `dtypes` holds each column's dtype. Raises ValueError (or pandas' ParserError) when a line
    cannot be parsed, and when a field split on the separator's character holds that character.
    """
    import pandas as pd

    n = len(dtypes)
    split = split_on_one_char and len(sep) > 1
    # Field j is column 2j when "::" is split on ":"; the columns between must be empty, or
    # a field held the separator's character ("a:b::x" is not "a", "b", "x").
    step = len(sep) if split else 1
    width = step * (n - 1) + 1
    types = {step * j: t for j, t in dtypes.items()}
    types.update((j, str) for j in range(width) if j not in types)
    kw: dict = dict(
        header=None,
        skiprows=1 if header else 0,
        keep_default_na=False,
        na_values={},
        skip_blank_lines=True,
        chunksize=rows,
        engine="c",
        dtype=types,
        names=list(range(width)),
        # Not an index from a first field too many on each line, but an error (below).
        index_col=False,
    )
    if sep == " ":
        kw["sep"] = r"\s+"
    elif len(sep) == 1:
        kw.update(sep=sep, skipinitialspace=True)
    elif split:
        kw["sep"] = sep[0]
    else:
        kw.update(sep=re.escape(sep), engine="python")
    with fh:
        frames = _strict(lambda: pd.read_csv(fh, **kw))
        while (frame := _strict(lambda: next(frames, None))) is not None:
            if split:
                gaps = frame[[j for j in range(width) if j % step]]  # missing in a short line
                if not ((gaps == "") | gaps.isna()).all(axis=None):
                    raise ValueError("a field holds the separator's character")
                frame = frame.iloc[:, ::step]
                frame.columns = range(n)
            yield frame


def _strict(call: Callable[[], Any]) -> Any:
    """`call()`, pandas' warning that a line's fields beyond the names were dropped raised as
    the ValueError it is here."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return call()
        except pd.errors.ParserWarning as exc:
            raise ValueError(str(exc)) from None


class GrowingIdMap:
    """Numbers IDs chunk by chunk in order of first appearance (pandas hashing, no Python loop
    per rating)."""

    def __init__(self):
        import pandas as pd

        self.index = pd.Index([], dtype=object)

    def add(self, ids: pd.Series) -> NDArray[np.int32] | None:
        """Indices of `ids`, numbering new ones; None when an ID is empty."""
        import pandas as pd

        codes, uniques = pd.factorize(ids, sort=False)
        # Surrounding whitespace is not part of an ID; stripping the few distinct values is
        # much cheaper than stripping every row.
        stripped = pd.Index(uniques).str.strip()
        if (stripped == "").any():
            return None
        if not stripped.equals(pd.Index(uniques)):
            merged, stripped = pd.factorize(stripped, sort=False)
            codes = merged[codes]
        uniques = stripped
        pos = self.index.get_indexer(uniques)
        new = pos < 0
        if new.any():
            pos[new] = len(self.index) + np.arange(int(new.sum()))
            self.index = self.index.append(pd.Index(np.asarray(uniques[new], dtype=object)))
        return pos.astype(np.int32)[codes]

    def to_idmap(self) -> IdMap:
        """The IDs numbered so far, as a map."""
        return IdMap(self.index.to_numpy(dtype=object))


class ChunkColumns:
    """The parsed columns, written chunk by chunk into arrays that are allocated once.

    Keeping the chunks and concatenating them at the end needs the final arrays twice. These
    arrays are allocated for the expected rows up front (pages never written cost no memory),
    grow by half when the guess was short, and are trimmed in place at the end. Ratings stay
    float32 while every chunk is exact in float32 (`mfrec.ratings.checks.narrow_ratings`), as
    concatenating would give.
    """

    def __init__(self, capacity: int, timestamps: bool):
        self.n = 0
        self.users = np.empty(capacity, np.int32)
        self.items = np.empty(capacity, np.int32)
        self.ratings = np.empty(capacity, np.float32)
        self.stamps = np.empty(capacity, np.int64) if timestamps else None

    def append(self, users, items, ratings, stamps) -> None:
        """Add one chunk's rows."""
        end = self.n + len(users)
        if end > len(self.users):
            self._reallocate(max(end, len(self.users) * 3 // 2), self.ratings.dtype)
        if ratings.dtype == np.float64 and self.ratings.dtype == np.float32:
            self._reallocate(len(self.users), np.float64)
        self.users[self.n : end] = users
        self.items[self.n : end] = items
        self.ratings[self.n : end] = ratings
        if self.stamps is not None:
            self.stamps[self.n : end] = stamps
        self.n = end

    def _reallocate(self, capacity: int, ratings_dtype: type[np.floating]) -> None:
        # One column at a time, so that at most one column exists twice.
        for name in ("users", "items", "ratings", "stamps"):
            old = getattr(self, name)
            if old is None:
                continue
            new = np.empty(capacity, ratings_dtype if name == "ratings" else old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def finish(self) -> tuple[NDArray, NDArray, NDArray, NDArray | None]:
        """(users, items, ratings, timestamps or None), trimmed to the rows read."""
        out = []
        for name in ("users", "items", "ratings", "stamps"):
            column = getattr(self, name)
            setattr(self, name, None)
            if column is not None:
                # In place (realloc shrinks without copying); nothing else refers to it.
                column.resize(self.n, refcheck=False)
            out.append(column)
        return tuple(out)


def blank_rows(frame: pd.DataFrame) -> NDArray[np.bool_]:
    """Lines holding only whitespace: pandas keeps them as rows, the diagnosis skips them."""
    rest_missing = frame.iloc[:, 1:].isna().all(axis=1).to_numpy()
    if not rest_missing.any():
        return rest_missing
    return rest_missing & (frame.iloc[:, 0].fillna("").str.strip() == "").to_numpy()


def release_arrow_memory() -> None:
    """Hand back the memory Arrow's pool kept for reuse after the parse.

    pandas holds the ID columns as Arrow strings; the pool keeps a chunk's worth of freed
    blocks (about 100 MB with 1M-row chunks) for the next allocation, which never comes.
    """
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()
