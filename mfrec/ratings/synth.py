"""Synthetic ratings with a known answer: planted low-rank factors, biases, noise and long tails.

The generative model, for user ``u`` and item ``i``::

    score = mean + user_bias[u] + item_bias[i] + user_factors[u] @ item_factors[i] + noise * N(0, 1)
    rating = clip(round(score), 1, 5)

Which pairs get rated follows long tails: item popularity is Zipf-like (Zipf-Mandelbrot
weights over randomly ordered items) and so is user activity. Each user rates distinct items,
drawn by popularity without replacement, at increasing timestamps (bursts of ratings within a
session, longer breaks between sessions).

Output depends on the seed alone: generation runs in fixed chunks of users, each with its own
random stream derived from the seed, so the same arguments give the same bytes whether the
ratings are kept in memory (:func:`synthesize`) or streamed to a file (:func:`write_synthetic`,
which handles 100M ratings in bounded memory).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mfrec.errors import ParameterError
from mfrec.progress import ProgressBar
from mfrec.utils.atomicfile import atomic_open

# The constants below are part of the output format: changing one changes every generated file
# (and the checked-in data/ratings.csv).
GLOBAL_MEAN = 3.6
USER_BIAS_SD = 0.45
ITEM_BIAS_SD = 0.6
#: Standard deviation of the planted interaction ``user_factors[u] @ item_factors[i]``.
INTERACTION_SD = 0.6
#: Zipf-Mandelbrot weights ``(rank + offset) ** -exponent`` for item popularity ...
ITEM_ZIPF = (1.0, 10.0)
#: ... and for user activity (ratings beyond the minimum).
USER_ZIPF = (0.9, 30.0)
#: Every user rates at least this many items when there are enough ratings to go round
#: (as in MovieLens); see `_allocate`.
MIN_PER_USER = 20
#: 2005-01-01T00:00:00Z: users join over the following three years.
START = 1_104_537_600
JOIN_SPAN = 3 * 365 * 86_400
#: Gaps between a user's ratings: mostly seconds within a session, sometimes a break of days.
SESSION_GAP = 40.0
BREAK_GAP = 7 * 86_400.0
BREAK_PROB = 0.03
#: Timestamps have exactly ten digits (until 2286), which keeps rows fixed-width.
MAX_TIMESTAMP = 9_999_999_999
#: Users are generated in blocks of about this many ratings, each with its own random stream.
CHUNK_RATINGS = 1 << 20
#: A user who rates at least 1/DENSE of all items is sampled by Gumbel top-k instead of
#: rejection, which would need ever more draws as the popular items run out.
DENSE = 8

_ADJECTIVES = (
    "Amber Ancient Bitter Blue Broken Burning Crimson Crooked Dark Distant Electric Empty "
    "Endless Fallen Forgotten Frozen Gentle Golden Hidden Hollow Iron Last Little Lonely Lost "
    "Midnight Quiet Red Restless Secret Silent Silver Sleeping Small Stolen Strange Sudden "
    "Sweet Velvet Wandering Wild"
).split()
_NOUNS = (
    "Garden River Harbor Mirror Letter Winter Summer Island Station Kingdom Machine Frontier "
    "Orchard Lantern Voyage Stranger Empire Signal Shadow Forest Desert Ocean Mountain City "
    "Highway Circus Hotel Tower Bridge Echo Promise Comet Thunder Horizon Dream Journey Storm "
    "Moon Crown Heart"
).split()


@dataclass(frozen=True)
class Planted:
    """The ground truth behind a synthetic data set.

    Arrays are indexed by position in `user_ids` / `item_ids` (user ``user_ids[k]`` has bias
    ``user_bias[k]``). `popularity` holds each item's sampling weight (summing to 1) and
    `activity` each user's number of ratings; `noise` is the standard deviation of the noise.
    """

    user_ids: NDArray[np.str_]
    item_ids: NDArray[np.str_]
    mean: float
    user_bias: NDArray[np.float64]
    item_bias: NDArray[np.float64]
    user_factors: NDArray[np.float64]
    item_factors: NDArray[np.float64]
    popularity: NDArray[np.float64]
    activity: NDArray[np.int64]
    noise: float

    def score(self, users: NDArray[np.integer], items: NDArray[np.integer]) -> NDArray[np.float64]:
        """Noise-free planted score of (user index, item index) pairs, before rounding."""
        return _score(self, self.user_factors.T, self.item_factors.T, users, items)


@dataclass(frozen=True)
class Synthetic:
    """Generated data: `ratings` (user, item, rating, timestamp), `items` (item, title), truth."""

    ratings: pd.DataFrame
    items: pd.DataFrame
    planted: Planted


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`write_synthetic` wrote."""

    path: Path
    items_path: Path | None
    n_ratings: int
    n_users: int
    n_items: int


@dataclass(frozen=True)
class _Plan:
    planted: Planted
    titles: NDArray[np.str_]
    alias: tuple[NDArray[np.float64], NDArray[np.int64]]  # item popularity as an alias table
    user_factors_t: NDArray[np.float64]  # contiguous transposes: fast gathers factor by factor
    item_factors_t: NDArray[np.float64]
    entropy: int
    blocks: NDArray[np.int64]  # user boundaries of the generation blocks


def synthesize(
    n_users: int,
    n_items: int,
    n_ratings: int,
    *,
    factors: int = 10,
    noise: float = 0.5,
    seed: int | np.random.Generator | None = None,
) -> Synthetic:
    """Generate ratings in memory (see the module docstring for the model).

    Parameters
    ----------
    n_users, n_items
        Size of the population; IDs are zero-padded numbers ``"00001"``, always with at least
        one leading zero. Users or items that draw no rating are absent from `ratings` (every
        item is listed in `items`).
    n_ratings
        Exact number of ratings; each (user, item) pair occurs at most once.
    factors
        Rank of the planted interaction (0: biases only).
    noise
        Standard deviation of the Gaussian noise added before rounding.
    seed
        Same seed, same data, byte for byte (None: fresh randomness from the OS).

    Returns
    -------
    Synthetic
        For data too large for memory use :func:`write_synthetic`, which streams.
    """
    plan = _plan(n_users, n_items, n_ratings, factors, noise, seed)
    parts = list(_generate(plan))
    users, items, ratings, stamps = (np.concatenate([p[k] for p in parts]) for k in range(4))
    planted = plan.planted
    frame = pd.DataFrame(
        {
            "user": planted.user_ids[users],
            "item": planted.item_ids[items],
            "rating": ratings.astype(np.int64),
            "timestamp": stamps,
        }
    )
    return Synthetic(frame, _items_frame(plan), planted)


def write_synthetic(
    path: str | os.PathLike[str],
    n_users: int,
    n_items: int,
    n_ratings: int,
    *,
    factors: int = 10,
    noise: float = 0.5,
    seed: int | np.random.Generator | None = None,
    items_path: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> SynthSummary:
    """Stream the ratings of :func:`synthesize` (same arguments, same data) to a CSV file.

    The file has the header ``user,item,rating,timestamp`` and is written atomically, chunk by
    chunk, so memory stays bounded for any `n_ratings`. `items_path`, when given, receives the
    ``item,title`` table. `progress` reports on stderr.
    """
    plan = _plan(n_users, n_items, n_ratings, factors, noise, seed)
    planted = plan.planted
    user_width = len(planted.user_ids[0])
    item_width = len(planted.item_ids[0])
    seen_users = np.zeros(n_users, dtype=bool)
    seen_items = np.zeros(n_items, dtype=bool)
    path = Path(path)
    with (
        ProgressBar(n_ratings, f"Writing {path.name}", enabled=progress) as bar,
        atomic_open(path, "wb") as fh,
    ):
        fh.write(b"user,item,rating,timestamp\n")
        for users, items, ratings, stamps in _generate(plan):
            rows = _fixed_width_rows(
                [(users + 1, user_width), (items + 1, item_width), (ratings, 1), (stamps, 10)]
            )
            fh.write(rows.data)
            seen_users[users] = True
            seen_items[items] = True
            bar.update(len(users))
    items_out = None
    if items_path is not None:
        items_out = Path(items_path)
        with atomic_open(items_out, "w", newline="") as fh:
            _items_frame(plan).to_csv(fh, index=False, lineterminator="\n")
    return SynthSummary(path, items_out, n_ratings, int(seen_users.sum()), int(seen_items.sum()))


def _check(n_users: int, n_items: int, n_ratings: int, factors: int, noise: float) -> None:
    for name, value, low in (
        ("n_users", n_users, 1),
        ("n_items", n_items, 1),
        ("n_ratings", n_ratings, 1),
        ("factors", factors, 0),
    ):
        if not isinstance(value, Integral) or isinstance(value, bool):
            raise TypeError(f"{name}={value!r}: must be an integer")
        if value < low:
            raise ParameterError(name, value, f"must be >= {low}")
    if not isinstance(noise, Real) or not np.isfinite(noise) or noise < 0:
        raise ParameterError("noise", noise, "must be a finite number >= 0")
    pairs = n_users * n_items
    if n_ratings > pairs:
        raise ParameterError(
            "n_ratings",
            n_ratings,
            f"more than the {pairs} distinct (user, item) pairs of "
            f"{n_users} users x {n_items} items",
        )


def _id_strings(n: int) -> NDArray[np.str_]:
    """IDs ``1..n`` zero-padded to one digit more than needed, so every ID has a leading zero."""
    return np.char.zfill(np.arange(1, n + 1).astype(str), len(str(n)) + 1)


def _zipf_weights(n: int, law: tuple[float, float], rng: np.random.Generator) -> NDArray:
    exponent, offset = law
    weights = (np.arange(1, n + 1) + offset) ** -exponent
    # Random order, so that popularity or activity says nothing about the ID.
    weights = weights[rng.permutation(n)]
    return weights / weights.sum()


def _plan(
    n_users: int,
    n_items: int,
    n_ratings: int,
    factors: int,
    noise: float,
    seed: int | np.random.Generator | None,
) -> _Plan:
    _check(n_users, n_items, n_ratings, factors, noise)
    rng = np.random.default_rng(seed)
    # The order of these draws is part of the output format.
    user_bias = rng.standard_normal(n_users) * USER_BIAS_SD
    item_bias = rng.standard_normal(n_items) * ITEM_BIAS_SD
    # Entries of scale s give p @ q a standard deviation of sqrt(factors) * s**2.
    scale = np.sqrt(INTERACTION_SD / np.sqrt(factors)) if factors else 0.0
    user_factors = rng.standard_normal((n_users, factors)) * scale
    item_factors = rng.standard_normal((n_items, factors)) * scale
    popularity = _zipf_weights(n_items, ITEM_ZIPF, rng)
    activity = _allocate(n_ratings, _zipf_weights(n_users, USER_ZIPF, rng), n_items)
    entropy = int(rng.integers(2**63))
    titles = _titles(n_items, rng)

    first = np.cumsum(activity) - activity  # index of each user's first rating
    block_of_user = first // CHUNK_RATINGS
    cuts = np.flatnonzero(np.diff(block_of_user)) + 1
    blocks = np.concatenate([[0], cuts, [n_users]]).astype(np.int64)

    planted = Planted(
        _id_strings(n_users),
        _id_strings(n_items),
        GLOBAL_MEAN,
        user_bias,
        item_bias,
        user_factors,
        item_factors,
        popularity,
        activity,
        float(noise),
    )
    return _Plan(
        planted,
        titles,
        _alias_table(popularity),
        np.ascontiguousarray(user_factors.T),
        np.ascontiguousarray(item_factors.T),
        entropy,
        blocks,
    )


def _allocate(total: int, weights: NDArray, cap: int) -> NDArray[np.int64]:
    """Split `total` ratings over users: a common minimum plus shares proportional to weight.

    Nobody gets more than `cap` (the number of items); what the cap cuts off goes to the others.
    """
    n = len(weights)
    minimum = min(MIN_PER_USER, total // (2 * n), cap)
    counts = np.full(n, minimum, dtype=np.int64)
    rest = total - minimum * n
    open_ = np.ones(n, dtype=bool)
    while rest > 0:
        share = np.where(open_, weights, 0.0)
        exact = share / share.sum() * rest
        add = np.floor(exact).astype(np.int64)
        short = rest - int(add.sum())
        if short > 0:
            # Largest remainders first; a stable sort keeps ties deterministic.
            add[np.argsort(add - exact, kind="stable")[:short]] += 1
        counts += add
        excess = np.maximum(counts - cap, 0)
        rest = int(excess.sum())
        counts -= excess
        open_ &= counts < cap
    return counts


def _titles(n: int, rng: np.random.Generator) -> NDArray[np.str_]:
    adjective = np.array(_ADJECTIVES)[rng.integers(len(_ADJECTIVES), size=n)]
    noun = np.array(_NOUNS)[rng.integers(len(_NOUNS), size=n)]
    other = np.array(_NOUNS)[rng.integers(len(_NOUNS), size=n)]
    form = rng.random(n)
    # Skewed toward recent years, as film catalogues are.
    year = 2004 - np.floor(rng.random(n) ** 2 * 75).astype(np.int64)
    plain = np.char.add(np.char.add(adjective, " "), noun)
    of_the = np.char.add(np.char.add(noun, " of the "), other)
    core = np.where(form < 0.2, of_the, plain)
    core = np.where((form >= 0.2) & (form < 0.45), np.char.add("The ", core), core)
    return np.char.add(core, np.char.add(" (", np.char.add(year.astype(str), ")")))


def _items_frame(plan: _Plan) -> pd.DataFrame:
    return pd.DataFrame({"item": plan.planted.item_ids, "title": plan.titles})


def _score(
    planted: Planted,
    user_factors_t: NDArray[np.float64],
    item_factors_t: NDArray[np.float64],
    users: NDArray[np.integer],
    items: NDArray[np.integer],
) -> NDArray[np.float64]:
    out = planted.mean + planted.user_bias[users] + planted.item_bias[items]
    # Summed factor by factor rather than by BLAS: plain multiply-adds round the same way on
    # every machine, which keeps the generated bytes identical everywhere.
    for f in range(len(user_factors_t)):
        out += user_factors_t[f][users] * item_factors_t[f][items]
    return out


def _generate(plan: _Plan) -> Iterator[tuple[NDArray, NDArray, NDArray, NDArray]]:
    """Yield (user index, item index, rating int8, timestamp) arrays, block by block."""
    for b in range(len(plan.blocks) - 1):
        lo, hi = int(plan.blocks[b]), int(plan.blocks[b + 1])
        rng = np.random.default_rng([plan.entropy, b])
        yield _block(plan, lo, hi, rng)


def _block(
    plan: _Plan, lo: int, hi: int, rng: np.random.Generator
) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    planted = plan.planted
    n_items = len(planted.item_ids)
    counts = planted.activity[lo:hi]
    dense = counts * DENSE >= n_items
    owner_s, items_s = _sample_sparse(np.where(dense, 0, counts), plan, rng)
    owner_d, items_d = _sample_dense(np.where(dense, counts, 0), planted.popularity, rng)
    owner = np.concatenate([owner_s, owner_d])
    items = np.concatenate([items_s, items_d])
    # Each user's items in random order along their timeline: sort by (owner, random tag).
    # Integer keys and a stable sort make the order the same on every machine.
    tags = rng.integers(0, 1 << 32, size=len(owner), dtype=np.int64)
    order = np.argsort((owner << 32) | tags, kind="stable")
    owner, items = owner[order], items[order]

    join = START + np.floor(rng.random(hi - lo) * JOIN_SPAN).astype(np.int64)
    pause = np.where(rng.random(len(owner)) < BREAK_PROB, BREAK_GAP, SESSION_GAP)
    gaps = 1 + np.floor(-np.log1p(-rng.random(len(owner))) * pause).astype(np.int64)
    elapsed = np.cumsum(gaps)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    stamps = np.minimum(join[owner] + elapsed - elapsed[first], MAX_TIMESTAMP)

    users = owner + lo
    score = _score(planted, plan.user_factors_t, plan.item_factors_t, users, items)
    score += planted.noise * rng.standard_normal(len(owner))
    ratings = np.clip(np.rint(score), 1, 5).astype(np.int8)
    return users, items, ratings, stamps


def _sample_sparse(
    counts: NDArray[np.int64], plan: _Plan, rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Distinct items per user, by popularity, without replacement (rejection of repeats).

    Draws with replacement and keeps each user's first `counts[u]` distinct items in draw
    order, which is exactly sequential sampling without replacement. Each round over-draws by
    the user's expected rejection rate, so a few rounds suffice.
    """
    accept_at, alias = plan.alias
    n_items = len(alias)
    popularity = plan.planted.popularity
    owners = np.arange(len(counts), dtype=np.int64)
    have = np.empty(0, dtype=np.int64)  # sorted keys owner * n_items + item
    deficit = counts.astype(np.int64)
    mass = np.zeros(len(counts))
    while deficit.any():
        accept = np.maximum(1.0 - mass, 0.05)
        draws = np.where(deficit > 0, np.ceil(deficit / accept * 1.2).astype(np.int64) + 2, 0)
        who = np.repeat(owners, draws)
        keys = who * n_items + _draw(accept_at, alias, rng.random(len(who)))
        unique, first = _first_occurrences(keys)
        if len(have):
            pos = np.minimum(np.searchsorted(have, unique), len(have) - 1)
            first = first[have[pos] != unique]
        # Back in draw order (which is grouped by owner) without sorting.
        mark = np.zeros(len(keys), dtype=bool)
        mark[first] = True
        fresh = keys[mark]
        owner = fresh // n_items
        got = np.bincount(owner, minlength=len(counts))
        rank = np.arange(len(fresh)) - np.repeat(np.cumsum(got) - got, got)
        keep = rank < deficit[owner]
        fresh, owner = fresh[keep], owner[keep]
        # Both runs are sorted: the stable sort (timsort) merges them in linear time.
        have = np.sort(np.concatenate([have, np.sort(fresh)]), kind="stable")
        deficit -= np.bincount(owner, minlength=len(counts))
        mass += np.bincount(owner, weights=popularity[fresh % n_items], minlength=len(counts))
    return have // n_items, have % n_items


def _first_occurrences(keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The distinct values of `keys` (sorted) and the position of each one's first occurrence.

    Same result as ``np.unique(keys, return_index=True)``, about twice as fast: positions are
    packed into the low bits so that a plain sort of unique numbers does the work.
    """
    bits = max(1, len(keys).bit_length())
    if len(keys) == 0 or int(keys.max()) >= 1 << (62 - bits):
        return np.unique(keys, return_index=True)
    packed = np.sort((keys << bits) | np.arange(len(keys), dtype=np.int64))
    values = packed >> bits
    start = np.empty(len(values), dtype=bool)
    start[0] = True
    np.not_equal(values[1:], values[:-1], out=start[1:])
    return values[start], packed[start] & ((1 << bits) - 1)


def _alias_table(p: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Walker's alias table (Vose's construction): O(1) draws from the discrete law `p`."""
    n = len(p)
    scaled = (p * n).tolist()
    accept = [1.0] * n
    alias = list(range(n))
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        lo, hi = small.pop(), large.pop()
        accept[lo] = scaled[lo]
        alias[lo] = hi
        scaled[hi] = (scaled[hi] + scaled[lo]) - 1.0
        (small if scaled[hi] < 1.0 else large).append(hi)
    return np.array(accept), np.array(alias, dtype=np.int64)


def _draw(accept: NDArray, alias: NDArray, uniform: NDArray) -> NDArray[np.int64]:
    """Items for uniform numbers in [0, 1): the integer part picks a column, the rest decides."""
    x = uniform * len(alias)
    column = np.minimum(x.astype(np.int64), len(alias) - 1)
    return np.where(x - column < accept[column], column, alias[column])


def _sample_dense(
    counts: NDArray[np.int64], popularity: NDArray[np.float64], rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Distinct items per user by Gumbel top-k: the same law as sequential sampling."""
    n_items = len(popularity)
    log_p = np.log(popularity)
    rows = np.flatnonzero(counts)
    per_batch = max(1, (1 << 22) // n_items)
    owners, items = [], []
    for start in range(0, len(rows), per_batch):
        batch = rows[start : start + per_batch]
        with np.errstate(divide="ignore"):
            keys = log_p - np.log(-np.log(rng.random((len(batch), n_items))))
        ranked = np.argsort(-keys, axis=1, kind="stable")
        r, c = np.nonzero(np.arange(n_items) < counts[batch, None])
        owners.append(batch[r])
        items.append(ranked[r, c])
    if not owners:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(owners).astype(np.int64), np.concatenate(items).astype(np.int64)


def _fixed_width_rows(columns: list[tuple[NDArray, int]]) -> NDArray[np.uint8]:
    """CSV rows of non-negative integers, each column zero-padded to its width, as a byte matrix.

    Formatting digits with array arithmetic is far faster than pandas' ``to_csv``, which would
    dominate writing 100M ratings.
    """
    n = len(columns[0][0])
    width = sum(w for _, w in columns) + len(columns)
    buf = np.empty((n, width), dtype=np.uint8)
    at = 0
    for values, w in columns:
        rest = np.asarray(values, dtype=np.int64).copy()
        for j in range(at + w - 1, at - 1, -1):
            buf[:, j] = rest % 10 + ord("0")
            rest //= 10
        at += w
        buf[:, at] = ord(",")
        at += 1
    buf[:, -1] = ord("\n")
    return buf
