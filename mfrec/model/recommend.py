"""Top-k recommendations and similar items from a fitted model, in blocks of bounded memory.

Scores for a block of users come from one matrix product ``P[block] @ Q.T`` (BLAS); a compiled
kernel (`mfrec.kernels.topk`) then keeps each row's k best items, skipping the items the user
rated in training. The block holds as many rows as fit in `memory_budget` bytes of scores, so
100,000 users x 20,000 items need no more than the budget beyond the factors themselves, and
no (user, item) pair is ever scored in a Python loop.

Ranking is by predicted rating r̂(u,i) = mu + b_u + b_i + p_u·q_i (mu + b_u does not change a
user's order, so it is added to the k winners only). Equal scores rank the item with the
lower index first (the order in which items first appeared in the training data), so results
are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mfrec.errors import ParameterError, UnknownItemError, UnknownUserError
from mfrec.kernels.startup import load_numba
from mfrec.kernels.topk import top_k_rows
from mfrec.utils.validation import check_fitted

if TYPE_CHECKING:
    from mfrec.model.estimator import MatrixFactorization

#: Bytes of scores one block may hold (rows x items x itemsize).
DEFAULT_MEMORY_BUDGET = 256 * 2**20
COLD_START = ("error", "popular")


class TopK(NamedTuple):
    """Each row's best columns, best first: indices (-1 past the end of a short row) and
    scores (NaN there)."""

    indices: NDArray[np.int32]
    scores: NDArray[np.float64]


class Recommendations(NamedTuple):
    """Recommendations for a block of users, in raw IDs.

    ``items[r, j]`` is the item at rank j + 1 for ``users[r]`` (None past the end of a list
    shorter than k) and ``scores[r, j]`` its predicted rating (NaN there). ``cold[r]`` is true
    for an unknown user who got the most popular items instead.
    """

    users: NDArray[np.object_]
    items: NDArray[np.object_]
    scores: NDArray[np.float64]
    cold: NDArray[np.bool_]


def block_rows(n_cols: int, itemsize: int, memory_budget: int) -> int:
    """Rows per block so that a block of scores (rows x `n_cols`) fits in `memory_budget`."""
    if memory_budget < 1:
        raise ParameterError("memory_budget", memory_budget, "must be >= 1 (bytes)")
    return max(1, memory_budget // max(1, n_cols * itemsize))


def top_k(
    left: NDArray[np.floating],
    right: NDArray[np.floating],
    k: int,
    *,
    bias: NDArray[np.floating] | None = None,
    exclude: tuple[NDArray[np.int64], NDArray[np.int32]] | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    scratch: NDArray[np.floating] | None = None,
) -> TopK:
    """For each row x of `left`: the k rows y of `right` with the highest x·y + bias[y].

    `exclude` is a CSR (indptr, indices) over the rows of `left` naming the columns each row
    must not get. At most min(k, len(right)) columns per row; ties go to the lower column.
    Works in blocks of rows whose scores fit in `memory_budget` bytes, or in `scratch`: a
    (rows, len(right)) array of the scores' dtype that callers reuse from call to call
    (touching a fresh block's pages costs about as much as selecting from it).
    """
    n, m = len(left), len(right)
    width = min(k, m)
    if width == 0:
        return TopK(np.empty((n, 0), dtype=np.int32), np.empty((n, 0)))
    load_numba()  # before the first kernel: numba's start without its BLAS probe
    dtype = np.result_type(left.dtype, right.dtype)
    bias = np.zeros(m, dtype=dtype) if bias is None else np.ascontiguousarray(bias, dtype=dtype)
    if exclude is None:
        exclude = (np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int32))
    indptr, indices = exclude
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    if scratch is None:
        scratch = np.empty((min(n, block_rows(m, dtype.itemsize, memory_budget)), m), dtype)
    rows = len(scratch)
    out_idx = np.empty((n, width), dtype=np.int32)
    out_score = np.empty((n, width), dtype=dtype)
    right_t = right.T
    for start in range(0, n, max(rows, 1)):
        stop = min(start + rows, n)
        S = scratch[: stop - start]
        np.matmul(left[start:stop], right_t, out=S)
        block_indptr = np.ascontiguousarray(indptr[start : stop + 1], dtype=np.int64)
        top_k_rows(S, bias, block_indptr, indices, out_idx[start:stop], out_score[start:stop])
    scores = out_score.astype(np.float64)
    scores[out_idx < 0] = np.nan
    return TopK(out_idx, scores)


def sub_csr(
    indptr: NDArray[np.int64], indices: NDArray[np.int32], rows: NDArray[np.integer]
) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """The CSR rows `rows`, in that order, as a new (indptr, indices)."""
    starts = indptr[rows]
    counts = indptr[np.asarray(rows) + 1] - starts
    new_indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_indptr[1:])
    positions = np.repeat(starts - new_indptr[:-1], counts) + np.arange(new_indptr[-1])
    return new_indptr, indices[positions]


def recommend_indices(
    model: MatrixFactorization,
    users: NDArray[np.integer],
    k: int,
    *,
    exclude_seen: bool = True,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    scratch: NDArray[np.floating] | None = None,
) -> TopK:
    """Top-k items (indices) and predicted ratings for known users given by index
    (`memory_budget` and `scratch` as in `top_k`)."""
    users = np.asarray(users, dtype=np.intp)
    P, Q = model.user_factors_, model.item_factors_
    exclude = None
    if exclude_seen:
        exclude = sub_csr(model.seen_indptr_, model.seen_indices_, users)
    bias = model.item_bias_ if model.use_bias else None
    found = top_k(
        P[users], Q, k, bias=bias, exclude=exclude, memory_budget=memory_budget, scratch=scratch
    )
    if model.use_bias:
        offset = model.global_mean_ + model.user_bias_[users].astype(np.float64)
        found.scores[:] += offset[:, None]
    return found


def popular_indices(model: MatrixFactorization, k: int) -> TopK:
    """The k items with the most training ratings (ties: lower index first), scored as an
    unknown user's prediction: mu + b_i."""
    counts = np.bincount(model.seen_indices_, minlength=len(model.item_map_))
    order = np.lexsort((np.arange(len(counts)), -counts))[:k].astype(np.int32)
    scores = np.full(len(order), model.global_mean_, dtype=np.float64)
    if model.use_bias:
        scores += model.item_bias_[order]
    return TopK(order[None, :], scores[None, :])


def iter_recommendations(
    model: MatrixFactorization,
    users: ArrayLike | None = None,
    k: int = 10,
    *,
    exclude_seen: bool = True,
    cold_start: str = "error",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Iterator[Recommendations]:
    """Top-k recommendations for raw user IDs (all users when None), block by block.

    Parameters
    ----------
    users
        Raw user IDs (compared as strings), or None for every user of the model in index order.
    k
        Length of each list; a user with fewer candidate items gets a shorter one.
    exclude_seen
        Leave out the items the user rated in training.
    cold_start
        What an unknown user gets: ``error`` raises UnknownUserError naming the ID;
        ``popular`` gives the most-rated items (see `popular_indices`).
    memory_budget
        Bytes of scores one block may hold; blocks are yielded one at a time.
    """
    check_fitted(model)
    check_k(k)
    if cold_start not in COLD_START:
        raise ParameterError("cold_start", cold_start, f"must be one of {', '.join(COLD_START)}")
    if users is None:
        ids = model.user_map_.ids
        idx = np.arange(len(ids), dtype=np.int32)
    else:
        ids = np.asarray(users).astype(str).ravel().astype(object)
        idx = model.user_map_.indices(ids)
    unknown = idx < 0
    if unknown.any() and cold_start == "error":
        raise UnknownUserError(_unknown_message("user", ids[unknown]))
    width = min(k, len(model.item_map_))
    popular = popular_indices(model, width) if unknown.any() else None
    dtype = model.user_factors_.dtype
    rows = min(len(idx), block_rows(len(model.item_map_), dtype.itemsize, memory_budget))
    scratch = np.empty((rows, len(model.item_map_)), dtype=dtype)
    for start in range(0, len(idx), max(rows, 1)):
        block = idx[start : start + rows]
        cold = block < 0
        found = TopK(
            np.full((len(block), width), -1, dtype=np.int32),
            np.full((len(block), width), np.nan),
        )
        if (~cold).any():
            hot = recommend_indices(
                model,
                block[~cold],
                k,
                exclude_seen=exclude_seen,
                scratch=scratch,
            )
            found.indices[~cold], found.scores[~cold] = hot
        if cold.any():
            found.indices[cold], found.scores[cold] = popular
        yield Recommendations(
            ids[start : start + rows], _to_ids(model, found.indices), found.scores, cold
        )


def similar_indices(
    model: MatrixFactorization,
    items: NDArray[np.integer],
    k: int,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> TopK:
    """For items given by index: the k other items with the highest cosine similarity of
    their factor vectors. An all-zero vector has similarity 0 with everything."""
    Q = model.item_factors_
    norms = np.linalg.norm(Q, axis=1)
    unit = (Q / np.where(norms > 0, norms, 1)[:, None]).astype(Q.dtype)
    items = np.asarray(items, dtype=np.intp)
    itself = (np.arange(len(items) + 1, dtype=np.int64), items.astype(np.int32))
    width = min(k, len(Q) - 1)  # an item is never similar to itself
    return top_k(unit[items], unit, width, exclude=itself, memory_budget=memory_budget)


def similar_items(
    model: MatrixFactorization,
    items: ArrayLike,
    k: int = 10,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> tuple[NDArray[np.object_], NDArray[np.float64]]:
    """The k items most similar (cosine of factors) to each raw item ID: (ids, similarities),
    shaped (n_items_asked, min(k, n_items - 1)), None / NaN past the end."""
    check_fitted(model)
    check_k(k)
    ids = np.asarray(items).astype(str).ravel().astype(object)
    idx = model.item_map_.indices(ids)
    if (idx < 0).any():
        raise UnknownItemError(_unknown_message("item", ids[idx < 0]))
    found = similar_indices(model, idx, k, memory_budget=memory_budget)
    return _to_ids(model, found.indices), found.scores


def _to_ids(model: MatrixFactorization, indices: NDArray[np.int32]) -> NDArray[np.object_]:
    """Raw item IDs of an index array; None where the index is -1."""
    out = np.full(indices.shape, None, dtype=object)
    found = indices >= 0
    out[found] = model.item_map_.to_ids(indices[found])
    return out


def _unknown_message(kind: str, unknown: NDArray[np.object_]) -> str:
    more = f" (and {len(unknown) - 1} more unknown {kind}s)" if len(unknown) > 1 else ""
    return f"unknown {kind} {unknown[0]!r}{more}: not in the model's training data"


def check_k(k: object) -> None:
    """Raise ParameterError unless `k` is an integer >= 1."""
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ParameterError("k", k, "must be an integer >= 1")
