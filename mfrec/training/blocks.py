"""The ratings cut into a grid of user blocks x item blocks, for parallel SGD.

Users are split into B groups and items into B groups of about equal numbers of ratings (rows
are shuffled first, so a group is a random sample of rows, not a run of IDs). Block (a, b)
holds the ratings of user group a on item group b; its ratings touch only the rows of P of
group a and the rows of Q of group b. Two blocks that share neither group can therefore be
trained at the same time, or one after the other, with the same result (DSGD, Gemulla et al.
2011; FPSGD/LIBMF, Chin et al. 2015).

Rows are renumbered so that each group is a contiguous range of *working rows*: the SGD solver
works on copies of P and Q in that order (`mfrec.training.solvers.sgd.WorkingCopy`), so the rows a
block
touches are one contiguous slice of P and one of Q, and blocks running on different threads
never share a cache line.

An epoch (`mfrec.kernels.blocked.schedule`) is B sub-epochs; sub-epoch s holds B blocks that
pairwise share no group, and over the B sub-epochs every block appears once. Which groups are
paired and the order of the sub-epochs are drawn afresh each epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from mfrec.kernels.group import row_counts

#: Blocks per sub-epoch at least, so that this many threads can work at once. It does not
#: depend on the machine: the grid, and so the result, is the same whatever the thread count.
PARALLEL_BLOCKS = 8
#: Bigger data get more blocks, of about this many ratings each: a block's rows of P and Q
#: then stay nearer the core (on 10M ratings, k=64: 16 blocks a side trained 1.8x faster than
#: 8 with 2 threads, 1.03x with 1), and more blocks than threads keep all threads busy.
BLOCK_RATINGS = 1 << 15
#: Fewer ratings per block than this and the per-block overhead starts to show.
MIN_BLOCK_RATINGS = 1024


def grid_size(n_ratings: int) -> int:
    """Blocks per side B for `n_ratings` ratings; 1 means too few to be worth cutting.

    B is `PARALLEL_BLOCKS`, or more for data with over B² `BLOCK_RATINGS` ratings, but at
    most what leaves `MIN_BLOCK_RATINGS` ratings per block.
    """
    n = max(int(n_ratings), 0)
    wanted = max(PARALLEL_BLOCKS, math.isqrt(n // BLOCK_RATINGS))
    return max(1, min(wanted, math.isqrt(n // MIN_BLOCK_RATINGS)))


@dataclass(frozen=True)
class Grid:
    """Ratings in block order, stored compactly.

    Block (a, b) is number ``a * n_blocks + b`` and holds positions
    ``block_ptr[blk]:block_ptr[blk + 1]`` of `users`, `items`, `codes`. A rating of block
    (a, b) is by working row ``user_start[a] + users[j]``, which is user
    ``user_rows[user_start[a] + users[j]]`` of the training set (likewise for items), and its
    value is ``values[codes[j]]``. Offsets and codes take the narrowest unsigned type that
    holds them: with 100M ratings of 1..5 on 1M users and 50k items, 5 bytes a rating
    (uint16, uint16, uint8) instead of 12.
    """

    users: NDArray[np.unsignedinteger]
    items: NDArray[np.unsignedinteger]
    codes: NDArray[np.unsignedinteger]
    values: NDArray[np.floating]
    block_ptr: NDArray[np.int64]
    user_rows: NDArray[np.int64]
    item_rows: NDArray[np.int64]
    user_start: NDArray[np.int64]
    item_start: NDArray[np.int64]

    @property
    def n_blocks(self) -> int:
        """Blocks per side, B."""
        return len(self.user_start) - 1

    def kernel_args(self) -> tuple[NDArray, ...]:
        """(users, items, codes, values, block_ptr, user_start, item_start): the ratings as the
        grid kernels (sgd, bgd, evaluation) take them, in that order."""
        return (
            self.users,
            self.items,
            self.codes,
            self.values,
            self.block_ptr,
            self.user_start,
            self.item_start,
        )

    def block_sizes(self) -> NDArray[np.int64]:
        """Ratings per block, shaped (B, B)."""
        b = self.n_blocks
        return np.diff(self.block_ptr).reshape(b, b)

    def expanded(
        self,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.floating]]:
        """Every rating's working user row, working item row and value, in grid order
        (full-size arrays: for tests and the numpy twins)."""
        b = self.n_blocks
        block = np.repeat(np.arange(b * b), np.diff(self.block_ptr))
        users = self.user_start[block // b] + self.users
        items = self.item_start[block % b] + self.items
        return users, items, self.values[self.codes]


def build_grid(
    users: NDArray[np.integer],
    items: NDArray[np.integer],
    ratings: NDArray[np.floating],
    n_users: int,
    n_items: int,
    n_blocks: int,
    rng: np.random.Generator,
    counts: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None,
) -> Grid:
    """Cut the ratings into `n_blocks` x `n_blocks` blocks (draws two row permutations).

    Within a block the ratings keep their input order (the sgd solver then shuffles them,
    `mfrec.kernels.blocked.shuffle_blocks`).
    `counts` are the ratings per user and per item when the caller has them already
    (`TrainSet.counts()`); otherwise they are counted here.
    Memory: the compact copy of the ratings and O(rows + distinct rating values) besides.
    """
    if counts is None:
        counts = row_counts(users, n_users), row_counts(items, n_items)
    user_rows, user_start = _groups(counts[0], n_blocks, rng)
    item_rows, item_start = _groups(counts[1], n_blocks, rng)
    values = _distinct(ratings)
    n = len(ratings)
    out_users = np.empty(n, _narrowest(np.diff(user_start).max(initial=1)))
    out_items = np.empty(n, _narrowest(np.diff(item_start).max(initial=1)))
    out_codes = np.empty(n, _narrowest(len(values)))
    block_ptr = np.zeros(n_blocks * n_blocks + 1, np.int64)
    _bucket(
        users,
        items,
        ratings,
        values,
        _inverse(user_rows),
        _inverse(item_rows),
        user_start,
        item_start,
        _group_of(user_start),
        _group_of(item_start),
        out_users,
        out_items,
        out_codes,
        block_ptr,
    )
    return Grid(
        out_users,
        out_items,
        out_codes,
        values,
        block_ptr,
        user_rows,
        item_rows,
        user_start,
        item_start,
    )


def _groups(
    counts: NDArray[np.int64], n_groups: int, rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Shuffle the rows and cut them into runs of about equal rating counts.

    Returns the rows in their new order and the start of each group in it (n_groups + 1).
    A row goes to the group in which its first rating falls.
    """
    rows = rng.permutation(len(counts))
    before = np.cumsum(counts[rows]) - counts[rows]
    total = max(int(counts.sum()), 1)
    group = np.minimum(before * n_groups // total, n_groups - 1)
    start = np.searchsorted(group, np.arange(n_groups + 1), side="left")
    return rows, start.astype(np.int64)


def _inverse(rows: NDArray[np.int64]) -> NDArray[np.int32]:
    inverse = np.empty(len(rows), np.int32)
    inverse[rows] = np.arange(len(rows), dtype=np.int32)
    return inverse


def _group_of(start: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.repeat(np.arange(len(start) - 1), np.diff(start))


def _narrowest(count: int) -> type[np.unsignedinteger]:
    """The smallest unsigned type whose values cover 0..count-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if count <= np.iinfo(dtype).max + 1:
            return dtype
    return np.uint64


def _distinct(ratings: NDArray[np.floating], chunk: int = 1 << 22) -> NDArray[np.floating]:
    """The sorted distinct rating values. Usually the first chunk already has them all (a few
    stars), which one pass confirms; otherwise chunk by chunk (bounded extra memory)."""
    values = np.unique(ratings[:chunk])
    if _all_among(ratings, values):
        return values
    for start in range(chunk, len(ratings), chunk):
        values = np.union1d(values, np.unique(ratings[start : start + chunk]))
    return values.astype(ratings.dtype)


@njit(cache=True)
def _all_among(ratings: NDArray[np.floating], values: NDArray[np.floating]) -> bool:
    """Whether every rating is one of the sorted `values`."""
    for j in range(ratings.shape[0]):
        at = np.searchsorted(values, ratings[j])
        if at == values.shape[0] or values[at] != ratings[j]:
            return False
    return True


@njit(cache=True)
def _bucket(
    users: NDArray[np.integer],
    items: NDArray[np.integer],
    ratings: NDArray[np.floating],
    values: NDArray[np.floating],
    user_work: NDArray[np.int32],
    item_work: NDArray[np.int32],
    user_start: NDArray[np.int64],
    item_start: NDArray[np.int64],
    user_group: NDArray[np.int64],
    item_group: NDArray[np.int64],
    out_users: NDArray[np.unsignedinteger],
    out_items: NDArray[np.unsignedinteger],
    out_codes: NDArray[np.unsignedinteger],
    block_ptr: NDArray[np.int64],
) -> None:
    """Counting sort of the ratings by block (stable): group-relative working rows, codes."""
    n_blocks = user_start.shape[0] - 1
    for j in range(ratings.shape[0]):
        a = user_group[user_work[users[j]]]
        b = item_group[item_work[items[j]]]
        block_ptr[a * n_blocks + b + 1] += 1
    for blk in range(n_blocks * n_blocks):
        block_ptr[blk + 1] += block_ptr[blk]
    fill = block_ptr[:-1].copy()
    for j in range(ratings.shape[0]):
        u = user_work[users[j]]
        i = item_work[items[j]]
        a = user_group[u]
        b = item_group[i]
        at = fill[a * n_blocks + b]
        fill[a * n_blocks + b] = at + 1
        out_users[at] = u - user_start[a]
        out_items[at] = i - item_start[b]
        out_codes[at] = np.searchsorted(values, ratings[j])
