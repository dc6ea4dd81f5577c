"""Raw ID <-> contiguous integer index maps; raw IDs are opaque strings (``007`` is not ``7``).

pandas (a quarter of a second to import) is needed only to look up many IDs at once: building
a map, turning indices back into IDs and looking up up to `DICT_LOOKUP_MAX` string IDs use
numpy and a dict, so that loading a file and training need not import it. More string IDs are
looked up by pyarrow's hash join (``pyarrow.compute.index_in``, several times faster than
pandas' index on Python strings) when pyarrow is installed, otherwise by pandas' index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    import pandas as pd

#: Lookups of at most this many string IDs go through a dict of the map (built once); more go
#: through pandas' index, which hashes in C.
DICT_LOOKUP_MAX = 100_000


class IdMap:
    """A bijection between raw string IDs and indices ``0..n-1``.

    An ID the map does not hold maps to ``-1``; the caller decides what that means (a fallback
    prediction, or a named error).
    """

    __slots__ = ("_arrow_ids", "_ids", "_pd_index", "_positions")

    def __init__(self, ids: ArrayLike):
        arr = np.array(ids, dtype=object).ravel()
        if not _all_strings(arr):
            arr = np.array([str(x) for x in arr], dtype=object)
        if len(set(arr.tolist())) != len(arr):
            raise ValueError(f"IdMap: duplicate ID {_first_repeat(arr)!r}")
        self._set(arr)

    @classmethod
    def from_distinct_strings(cls, ids: NDArray[np.object_]) -> IdMap:
        """A map over `ids`, which the caller knows to be distinct ``str``: no checks, no copy."""
        new = cls.__new__(cls)
        new._set(ids)
        return new

    def _set(self, ids: NDArray[np.object_]) -> None:
        # Read-only, as pandas hands out an Index's values: a caller cannot renumber the map.
        ids.flags.writeable = False
        self._ids = ids
        self._pd_index = None
        self._positions: dict[str, int] | None = None
        self._arrow_ids = None

    @classmethod
    def factorize(cls, values: ArrayLike) -> tuple[NDArray[np.int32], IdMap]:
        """Number the distinct values in order of first appearance; return (codes, map)."""
        arr = np.asarray(values, dtype=object).ravel()
        if not _all_strings(arr):
            # Missing values (code -1) and mixed types keep pandas' rules.
            import pandas as pd

            codes, uniques = pd.factorize(arr, sort=False)
            return codes.astype(np.int32, copy=False), cls(uniques)
        values_list = arr.tolist()
        numbering = {v: k for k, v in enumerate(dict.fromkeys(values_list))}
        codes = np.fromiter(map(numbering.__getitem__, values_list), np.int32, len(values_list))
        return codes, cls.from_distinct_strings(np.array(list(numbering), dtype=object))

    @property
    def _index(self) -> pd.Index:
        """The IDs as a pandas Index, built on the first lookup by raw ID."""
        if self._pd_index is None:
            import pandas as pd

            self._pd_index = pd.Index(self._ids, dtype=object)
        return self._pd_index

    def _position(self) -> dict[str, int]:
        """ID -> index as a dict, built on the first lookup that uses it."""
        if self._positions is None:
            self._positions = {raw: k for k, raw in enumerate(self._ids.tolist())}
        return self._positions

    @property
    def ids(self) -> NDArray[np.object_]:
        """The raw IDs, position i holding the ID of index i (read-only)."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, IdMap)
            and len(self) == len(other)
            and bool((self._ids == other._ids).all())
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self._ids[:3])
        return f"IdMap({len(self)} ids: {head}{', ...' if len(self) > 3 else ''})"

    def __contains__(self, raw: object) -> bool:
        if isinstance(raw, str):
            return raw in self._position()
        return raw in self._index

    def index(self, raw: str) -> int:
        """The index of one raw ID, or -1 when the map does not hold it."""
        if isinstance(raw, str):
            return self._position().get(raw, -1)
        try:
            loc = self._index.get_loc(raw)
        except (KeyError, TypeError):
            return -1
        return int(loc)

    def indices(self, raw: ArrayLike) -> NDArray[np.int32]:
        """Indices of many raw IDs at once; -1 where an ID is unknown."""
        arr = np.asarray(raw, dtype=object).ravel()
        if len(arr) <= DICT_LOOKUP_MAX and _all_strings(arr):
            get = self._position().get
            return np.fromiter((get(x, -1) for x in arr.tolist()), np.int32, len(arr))
        found = self._arrow_indices(arr)
        if found is not None:
            return found
        return self._index.get_indexer(arr).astype(np.int32, copy=False)

    def _arrow_indices(self, arr: NDArray[np.object_]) -> NDArray[np.int32] | None:
        """`indices` by pyarrow's hash join, for an array of ``str``; None when pyarrow is
        missing or cannot take the strings (not ``str``, or not encodable as UTF-8)."""
        import pandas as pd

        if pd.api.types.infer_dtype(arr, skipna=False) != "string":
            return None
        try:
            import pyarrow as pa
            import pyarrow.compute as pc
        except ImportError:
            return None
        try:
            if self._arrow_ids is None:
                self._arrow_ids = pa.array(self._ids, type=pa.string())
            values = pa.array(arr, type=pa.string())
        except (ValueError, TypeError, pa.ArrowException):
            return None
        found = pc.index_in(values, value_set=self._arrow_ids).fill_null(-1)
        return found.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)

    def to_ids(self, idx: ArrayLike) -> NDArray[np.object_]:
        """Raw IDs of the given indices."""
        return self._ids[np.asarray(idx, dtype=np.intp)]

    def take(self, idx: ArrayLike) -> IdMap:
        """A new map holding only the IDs at `idx`, renumbered in that order."""
        return IdMap(self.to_ids(idx))

    def to_array(self) -> NDArray[np.str_]:
        """The IDs as a fixed-width unicode array, storable with ``allow_pickle=False``."""
        if len(self) == 0:
            return np.array([], dtype="<U1")
        return np.asarray(self._ids, dtype=str)


def _all_strings(arr: NDArray[np.object_]) -> bool:
    """Whether every element is a ``str`` (what pandas' ``infer_dtype`` calls "string")."""
    return all(isinstance(x, str) for x in arr.tolist())


def _first_repeat(arr: NDArray[np.object_]) -> str:
    """The first element equal to an earlier one (the one pandas' ``duplicated`` flags first)."""
    seen = set()
    for x in arr.tolist():
        if x in seen:
            return x
        seen.add(x)
    raise ValueError("no repeated element")
