"""Raw ID <-> contiguous integer index maps; raw IDs are opaque strings (``007`` is not ``7``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray


class IdMap:
    """A bijection between raw string IDs and indices ``0..n-1``.

    An ID the map does not hold maps to ``-1``; the caller decides what that means (a fallback
    prediction, or a named error).
    """

    __slots__ = ("_index",)

    def __init__(self, ids: ArrayLike):
        arr = np.asarray(ids, dtype=object).ravel()
        if arr.size and pd.api.types.infer_dtype(arr, skipna=False) != "string":
            arr = np.array([str(x) for x in arr], dtype=object)
        index = pd.Index(arr, dtype=object)
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise ValueError(f"IdMap: duplicate ID {dup!r}")
        self._index = index

    @classmethod
    def factorize(cls, values: ArrayLike) -> tuple[NDArray[np.int32], IdMap]:
        """Number the distinct values in order of first appearance; return (codes, map)."""
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=False)
        return codes.astype(np.int32, copy=False), cls(uniques)

    @property
    def ids(self) -> NDArray[np.object_]:
        """The raw IDs, position i holding the ID of index i."""
        return self._index.to_numpy(dtype=object)

    def __len__(self) -> int:
        return len(self._index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self._index[:3])
        return f"IdMap({len(self)} ids: {head}{', ...' if len(self) > 3 else ''})"

    def __contains__(self, raw: object) -> bool:
        return raw in self._index

    def index(self, raw: str) -> int:
        """The index of one raw ID, or -1 when the map does not hold it."""
        try:
            loc = self._index.get_loc(raw)
        except (KeyError, TypeError):
            return -1
        return int(loc)

    def indices(self, raw: ArrayLike) -> NDArray[np.int32]:
        """Indices of many raw IDs at once; -1 where an ID is unknown."""
        arr = np.asarray(raw, dtype=object).ravel()
        return self._index.get_indexer(arr).astype(np.int32, copy=False)

    def to_ids(self, idx: ArrayLike) -> NDArray[np.object_]:
        """Raw IDs of the given indices."""
        return self._index.to_numpy(dtype=object)[np.asarray(idx, dtype=np.intp)]

    def take(self, idx: ArrayLike) -> IdMap:
        """A new map holding only the IDs at `idx`, renumbered in that order."""
        return IdMap(self.to_ids(idx))

    def to_array(self) -> NDArray[np.str_]:
        """The IDs as a fixed-width unicode array, storable with ``allow_pickle=False``."""
        if len(self) == 0:
            return np.array([], dtype="<U1")
        return np.asarray(self._index.to_numpy(dtype=object), dtype=str)
