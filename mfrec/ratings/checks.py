"""Checks the local loader and the Dask ingest share, and the RatingData built after them.

IDs as strings, what makes a rating bad (and the words that say so), timestamps as seconds,
and repeated (user, item) pairs found and resolved by the ``duplicates`` policy (``last``,
``mean`` or ``error``): `mfrec.ratings.load` and `mfrec.distributed.ingest` both come here,
so that a file gives the same IDs, errors and ratings either way. `assemble_ratings` turns
the loader's checked columns into a RatingData.

Small data is checked for repeated pairs by a stable sort of their keys, with numpy alone;
above `SORT_MAX_ROWS` by the compiled counting sort and pandas' hashing, which need less
memory (the same answers either way). The compiled kernels are imported only there, inside
the function, so that reading a small file never imports numba.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from mfrec.errors import DataFormatError
from mfrec.ratings.idmap import IdMap
from mfrec.ratings.ratingdata import Layout, RatingData

if TYPE_CHECKING:
    import pandas as pd

#: Up to this many ratings (more than a plain-text file read without pandas holds), duplicate
#: pairs are found by a stable sort of their keys, with numpy alone; above it by the compiled
#: counting sort and pandas' hashing, which need less memory (the same answers either way).
SORT_MAX_ROWS = 8 << 20
#: Rows compared at a time by `single_runs`.
RUN_SLICE = 1 << 20


# -- columns --------------------------------------------------------------------------------


def id_strings(col: pd.Series) -> NDArray[np.object_]:
    """IDs as strings; whole-number floats (pandas' NaN-padded ints) lose the ``.0``."""
    import pandas as pd

    if pd.api.types.is_float_dtype(col) and (col % 1 == 0).all():
        col = col.astype(np.int64)
    return col.astype(str).str.strip().to_numpy(dtype=object)


def rating_problem(text: str, scale: tuple[float, float] | None) -> str | None:
    """What is wrong with the rating `text` (not a number, infinite, off the scale), or None."""
    try:
        value = float(text)
    except ValueError:
        return f"rating {text!r} is not a number" if text else "rating is missing"
    if math.isnan(value):
        return f"rating {text!r} is not a number (NaN)"
    if math.isinf(value):
        return f"rating {text!r} is infinite"
    if scale is not None and outside_scale(np.array([value]), scale)[0]:
        return f"rating {text} is outside the scale {scale[0]:g}..{scale[1]:g}"
    return None


def outside_scale(r: NDArray[np.float64], scale: tuple[float, float]) -> NDArray[np.bool_]:
    """Which ratings lie below ``scale[0]`` or above ``scale[1]``."""
    return (r < scale[0]) | (r > scale[1])


def narrow_ratings(ratings: NDArray[np.floating]) -> NDArray[np.floating]:
    """float32 when that is exact (1-5, half stars, 1-10 ...): half the memory; else float64."""
    narrow = ratings.astype(np.float32)
    return narrow if np.array_equal(narrow, ratings) else ratings.astype(np.float64, copy=False)


def parse_timestamps(col: pd.Series) -> NDArray[np.int64]:
    """Numbers (epoch seconds or any integer clock) as int64; otherwise dates, as epoch seconds.

    Raises ValueError when some are neither.
    """
    import pandas as pd

    nums = col if pd.api.types.is_float_dtype(col) else pd.to_numeric(col, errors="coerce")
    if not nums.isna().any():
        return epoch_seconds(nums.to_numpy(dtype=np.float64))
    dates = pd.to_datetime(col, errors="raise", utc=True, format="mixed")
    seconds = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.int64)


def epoch_seconds(numbers: NDArray[np.float64]) -> NDArray[np.int64]:
    """Numeric timestamps as whole int64 seconds (or ticks of whatever clock they count)."""
    return np.floor(numbers).astype(np.int64)


# -- repeated pairs -------------------------------------------------------------------------


def pair_keys(users: NDArray, items: NDArray, n_items: int) -> NDArray[np.int64]:
    """One int64 per rating, equal for ratings of the same (user, item) pair."""
    key = users.astype(np.int64)
    key *= max(n_items, 1)
    key += items
    return key


def has_duplicates(users: NDArray, items: NDArray, n_users: int, n_items: int) -> bool:
    """Whether a (user, item) pair occurs twice.

    Files are often written user by user (or item by item): when each user's ratings make one
    run of rows, the runs are checked a slice of whole runs at a time, by sorting the slice's
    keys with numpy. Otherwise each user's items are grouped by the compiled kernels' counting
    sort: one int32 per rating, where sorting all (user, item) keys needs an int64 per
    rating, or a hash table far more.
    """
    for rows, cols, n_rows, n_cols in (
        (users, items, n_users, n_items),
        (items, users, n_items, n_users),
    ):
        runs = single_runs(rows, n_rows)
        if runs is not None:
            return repeats_in_runs(runs, cols, n_cols)
    from mfrec.kernels.group import group_by_row, has_repeats

    indptr, grouped = group_by_row(users, items, n_users)
    return has_repeats(indptr, grouped, n_items)


def single_runs(values: NDArray[np.integer], n_values: int) -> NDArray[np.int64] | None:
    """Where each run of equal `values` starts, and their length at the end, when each value
    (in 0..n_values-1) makes one run; else None. Compared a slice at a time, so that the only
    full-length array is the answer's."""
    n = len(values)
    starts = [np.zeros(min(n, 1), dtype=np.int64)]
    n_runs = min(n, 1)
    for s in range(0, n - 1, RUN_SLICE):
        e = min(s + RUN_SLICE, n - 1)
        change = values[s + 1 : e + 1] != values[s:e]
        n_runs += int(np.count_nonzero(change))
        if n_runs > n_values:
            return None  # some value makes two runs
        starts.append(np.flatnonzero(change) + (s + 1))
    starts.append(np.array([n], dtype=np.int64))
    runs = np.concatenate(starts)
    # One run per value: no value starts two runs.
    if n and np.bincount(values[runs[:-1]], minlength=n_values).max() > 1:
        return None
    return runs


def repeats_in_runs(runs: NDArray[np.int64], cols: NDArray[np.integer], n_cols: int) -> bool:
    """Whether a run (rows ``runs[k]:runs[k+1]``) holds a value of `cols` twice."""
    first = 0
    while first < len(runs) - 1:
        # Whole runs, about RUN_SLICE rows (one run if it is longer).
        last = max(int(np.searchsorted(runs, runs[first] + RUN_SLICE, "right")) - 1, first + 1)
        lengths = np.diff(runs[first : last + 1])
        key = np.repeat(np.arange(last - first, dtype=np.int64), lengths)
        key *= max(n_cols, 1)
        key += cols[runs[first] : runs[last]]
        key.sort()
        if (key[1:] == key[:-1]).any():
            return True
        first = last
    return False


def assemble_ratings(
    users: NDArray,
    items: NDArray,
    ratings: NDArray[np.floating],
    stamps: NDArray[np.int64] | None,
    umap: IdMap,
    imap: IdMap,
    *,
    scale: tuple[float, float] | None,
    duplicates: str,
    layout: Layout | None,
    src: str,
    line_of: Callable[[Sequence[int]], list[int]] | None,
) -> RatingData:
    """RatingData from parsed columns, duplicates resolved by the policy `duplicates`.

    `line_of` turns rows into file lines for the message about a repeated pair (None: the
    message names rows). Small data is checked by sorting, which needs neither pandas nor
    the compiled kernels (`SORT_MAX_ROWS`).
    """
    if len(users) <= SORT_MAX_ROWS:
        key = pair_keys(users, items, len(imap))
        dup = duplicated_keys(key, keep=False)
        found = dup.any()
    else:
        found = has_duplicates(users, items, len(umap), len(imap))
        if found:
            key = pair_keys(users, items, len(imap))
            dup = duplicated_keys(key, keep=False)
    if found:
        users, items, ratings, stamps = resolve_duplicates(
            key, dup, users, items, ratings, stamps, umap, imap, duplicates, src, line_of
        )
    if scale is None:
        scale = (float(ratings.min()), float(ratings.max()))
    return RatingData(
        users=np.ascontiguousarray(users, dtype=np.int32),
        items=np.ascontiguousarray(items, dtype=np.int32),
        ratings=np.ascontiguousarray(ratings),
        user_map=umap,
        item_map=imap,
        scale=scale,
        timestamps=stamps,
        layout=layout,
        source=src,
    )


def resolve_duplicates(
    key: NDArray[np.int64],
    dup: NDArray[np.bool_],
    users: NDArray,
    items: NDArray,
    ratings: NDArray[np.floating],
    stamps: NDArray[np.int64] | None,
    umap: IdMap | None,
    imap: IdMap | None,
    policy: str,
    src: str | None,
    line_of: Callable[[Sequence[int]], list[int]] | None,
) -> tuple[NDArray, NDArray, NDArray[np.floating], NDArray[np.int64] | None]:
    """(users, items, ratings, timestamps) with each repeated pair once, by `policy`.

    `key` holds the `pair_keys`, `dup` marks every row of a repeated pair. ``last`` keeps the
    pair's last row; ``mean`` its first row with the mean rating and the latest timestamp;
    ``error`` raises DataFormatError naming the pair (by ID through the maps) and its two
    first rows, as file lines when `line_of` is given.
    """
    if policy == "error":
        rows = np.flatnonzero(dup)
        first = rows[0]
        second = rows[1:][key[rows[1:]] == key[first]][0]
        u, i = umap.to_ids([users[first]])[0], imap.to_ids([items[first]])[0]
        if line_of is not None:
            a, b = line_of([int(first), int(second)])
            where = f"lines {a} and {b}"
        else:
            where = f"rows {first} and {second}"
        raise DataFormatError(
            f"user {u!r} rated item {i!r} twice ({where}); choose --duplicates last or mean",
            source=src,
        )
    if policy == "last":
        keep = ~duplicated_keys(key, keep="last")
        sel = np.flatnonzero(keep)
        return users[sel], items[sel], ratings[sel], None if stamps is None else stamps[sel]
    codes, n_pairs = factorize_keys(key)
    counts = np.bincount(codes)
    mean = np.bincount(codes, weights=ratings) / counts
    first = np.full(n_pairs, len(key), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(key)))
    new_stamps = None
    if stamps is not None:
        new_stamps = np.full(n_pairs, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(new_stamps, codes, stamps)
    return users[first], items[first], mean, new_stamps


# pandas hashes the keys, in O(n), for big data; small data (`SORT_MAX_ROWS`) is sorted
# instead, with the same answers, where importing pandas would take longer than the sort.


def duplicated_keys(key: NDArray[np.int64], keep: str | bool) -> NDArray[np.bool_]:
    """``pd.Series(key).duplicated(keep=keep)`` for keep ``"last"`` or False."""
    if len(key) > SORT_MAX_ROWS:
        import pandas as pd

        return pd.Series(key).duplicated(keep=keep).to_numpy()
    order, new_group, group = _sorted_groups(key)
    if keep is False:
        repeated = (np.bincount(group) > 1)[group]
    else:
        # The stable sort keeps each pair's rows in file order: the last is before a new group.
        repeated = ~np.append(new_group[1:], True)
    out = np.empty(len(key), dtype=bool)
    out[order] = repeated
    return out


def factorize_keys(key: NDArray[np.int64]) -> tuple[NDArray[np.intp], int]:
    """``pd.factorize(key, sort=False)``: codes in order of first appearance, and their count."""
    if len(key) > SORT_MAX_ROWS:
        import pandas as pd

        codes, uniques = pd.factorize(key, sort=False)
        return codes, len(uniques)
    order, new_group, group = _sorted_groups(key)
    first_rows = order[new_group]  # the stable sort puts each pair's first row first
    code_of_group = np.empty(len(first_rows), dtype=np.intp)
    code_of_group[np.argsort(first_rows)] = np.arange(len(first_rows))
    codes = np.empty(len(key), dtype=np.intp)
    codes[order] = code_of_group[group]
    return codes, len(first_rows)


def _sorted_groups(key: NDArray[np.int64]) -> tuple[NDArray[np.intp], NDArray[np.bool_], NDArray]:
    """(stable sort order of `key`, whether each sorted key starts a new group, its group)."""
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    new_group = np.empty(len(key), dtype=bool)
    new_group[:1] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=new_group[1:])
    return order, new_group, np.cumsum(new_group) - 1
