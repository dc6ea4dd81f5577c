"""Blocked SGD: a grid of blocks trained by several threads at once (numba, with numpy twins).

The ratings are in block order (`mfrec.training.blocks.Grid`) and P, Q, bu, bi are the working
copies:
rows in block order, P and Q padded with zero columns to whole vectors (`mfrec.kernels.simd`).
`strata` lists sub-epochs, one per row, whose blocks share no user group and no item group.
The *serial order* is row after row. Threads take blocks in that order and start one as soon
as the blocks before it on its user group and on its item group are done; since every other
block touches other rows of P and Q, the result is that of the serial order, bit for bit,
whatever the number of threads and however they are scheduled.

Each block visits its ratings in a fresh random order every epoch: the walk
``lo + (start + t * step) mod n``, t = 0..n-1, over its n ratings, with ``start`` and ``step``
(coprime with n, so every rating comes exactly once) drawn from the epoch's ``seed`` and the
block's number by a counter-based hash (`visit_walk`): no draws are stored, any thread can
walk any block, and the numpy twin computes the same walk. The ratings themselves were put
in random order within their block once, when the grid was built (`shuffle_blocks`), so the
walk of every epoch is a random order, and the kernel never writes them. Ratings are visited
with the update of `mfrec.kernels.sgd.sgd_epoch`, written p <- (1 - lr reg) p + (lr e) q.
Two things make it fast rather than different: the dot product of the next rating is
computed in the same pass over the vectors as the current update (when the two share no row),
and, when ``prefetch`` > 0, the rows of the ratings that many places ahead are prefetched.
A walk costs an addition and a comparison per rating; the Fisher-Yates shuffle every epoch
it replaced cost a tenth of the epoch on MovieLens 100k, with the same test RMSE.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from mfrec.kernels import FASTMATH
from mfrec.kernels.sgd import sgd_epoch_reference
from mfrec.kernels.simd import prefetch_row, row_dot, row_step, row_step_dot
from mfrec.kernels.sync import fetch_add, load_acquire, store_release, yield_thread

#: How many ratings ahead the rows of P and Q are prefetched, when they are.
PREFETCH = 16
#: 2^64 / golden ratio: the odd step of the Weyl sequences that feed the shuffle's hash.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
#: Fruitless looks for a ready block before a worker starts yielding the processor between
#: looks (when the block it needs is held by a descheduled thread, spinning only delays it).
SPINS = 1000


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def sgd_strata(
    users: NDArray[np.unsignedinteger],
    items: NDArray[np.unsignedinteger],
    codes: NDArray[np.unsignedinteger],
    values: NDArray[np.floating],
    block_ptr: NDArray[np.int64],
    user_start: NDArray[np.int64],
    item_start: NDArray[np.int64],
    strata: NDArray[np.int64],
    seed: np.uint64,
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    lr: float,
    reg: float,
    reg_bias: float,
    use_bias: bool,
    workers: int,
    prefetch: int,
) -> float:
    """Run the blocks of ``strata`` (row by row: the *serial order*) in place, on `workers`
    threads; the result is that of the serial order.

    The ratings are stored as in `mfrec.training.blocks.Grid`. ``strata`` is (S, B) over a grid of
    B x B
    blocks; block ``blk`` is user group ``a = blk // B`` and item group ``c = blk % B``; its
    ratings are at positions ``block_ptr[blk]:block_ptr[blk + 1]``, by working rows
    ``user_start[a] + users[j]`` and ``item_start[c] + items[j]``, of value
    ``values[codes[j]]``. Each row of ``strata`` has every user group and every item group
    once. Block ``blk`` is visited in the order of ``visit_walk(seed, blk, n)``; ``prefetch``
    is how many ratings ahead rows are prefetched (0: none). The rating arrays are only read.
    Returns the sum of the squared errors seen (each before its update), in float64.

    No barrier between rows. Worker w owns the columns w, w + workers, ... of every row and
    takes its next own block as soon as the blocks before it on the same user group and the
    same item group (in the previous row) are done; while it is not, the worker takes any
    other ready block instead, so a slow or descheduled worker holds up only the blocks that
    need its rows. Taking is atomic, so every block runs once. The earliest block not yet
    taken is always ready (everything before it is taken, hence done or running), so the
    workers never wait forever, even if they run one after the other.
    """
    n_strata, width = strata.shape
    total = n_strata * width
    sequence = strata.ravel()
    one = np.ones(1, P.dtype)[0]
    shrink = one - lr * reg
    shrink_bias = one - lr * reg_bias
    sums = np.zeros(total)
    claims = np.zeros(total, np.int64)  # [n] > 0 once some worker has taken block n
    user_done = np.zeros(total, np.int64)  # [row * width + group] = 1 once that block is done
    item_done = np.zeros(total, np.int64)
    for w in prange(workers):
        mine = 0  # this worker's next own block, counted along its columns row by row
        n_cols = (width - w + workers - 1) // workers  # its columns: w, w + workers, ...
        n_own = n_strata * n_cols
        low = 0  # every block before `low` has been taken
        spins = 0
        while low < total:
            n = -1
            while mine < n_own and load_acquire(claims, _own(mine, n_cols, w, workers, width)) > 0:
                mine += 1
            if mine < n_own:
                m = _own(mine, n_cols, w, workers, width)
                if (
                    _ready(m, sequence, width, user_done, item_done)
                    and fetch_add(claims, m, 1) == 0
                ):
                    n = m
            if n < 0:
                # Own block not ready: take any ready block, in the serial order.
                while low < total and load_acquire(claims, low) > 0:
                    low += 1
                for m in range(low, total):
                    if (
                        load_acquire(claims, m) == 0
                        and _ready(m, sequence, width, user_done, item_done)
                        and fetch_add(claims, m, 1) == 0
                    ):
                        n = m
                        break
            if n < 0:
                spins += 1
                if spins > SPINS:
                    yield_thread()
                continue
            spins = 0
            blk = sequence[n]
            lo = block_ptr[blk]
            hi = block_ptr[blk + 1]
            start, step = visit_walk(seed, blk, hi - lo)
            base_u = user_start[blk // width]
            base_i = item_start[blk % width]
            sums[n] = _sgd_block(
                users,
                items,
                codes,
                values,
                lo,
                hi,
                start,
                step,
                base_u,
                base_i,
                P,
                Q,
                bu,
                bi,
                mu,
                lr,
                shrink,
                shrink_bias,
                use_bias,
                prefetch,
            )
            row = n // width
            store_release(user_done, row * width + blk // width, 1)
            store_release(item_done, row * width + blk % width, 1)
    return sums.sum()


@njit(cache=True)
def _own(mine, n_cols, w, workers, width):
    """Position in the serial order of worker w's `mine`-th own block (own columns: w,
    w + workers, ...; a column keeps its user group for the whole epoch, so a worker keeps
    its rows of P in its own cache)."""
    return (mine // n_cols) * width + w + (mine % n_cols) * workers


@njit(cache=True)
def _ready(n, sequence, width, user_done, item_done):
    """Whether the blocks before block n on its user group and on its item group are done."""
    row = n // width
    if row == 0:
        return True
    blk = sequence[n]
    previous = (row - 1) * width
    return (
        load_acquire(user_done, previous + blk // width) > 0
        and load_acquire(item_done, previous + blk % width) > 0
    )


@njit(cache=True)
def _mix(x):
    """splitmix64's finaliser: a bijection of 64-bit words that scrambles every bit."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


@njit(cache=True)
def stream_key(seed: np.uint64, n: int) -> np.uint64:
    """The key of stream `n` of `seed`: block n's walk in the epoch of `seed`, block n's
    shuffle, or the seed of epoch n from the solver's seed."""
    return _mix(np.uint64(seed) + np.uint64(n + 1) * GOLDEN)


@njit(cache=True)
def _word(key, m):
    """The m-th uniform 32-bit number of the stream `key` (splitmix64 at position m)."""
    return _mix(key + np.uint64(m + 1) * GOLDEN) >> np.uint64(32)


@njit(cache=True)
def visit_walk(seed: np.uint64, blk: int, n: int) -> tuple[np.uint64, np.uint64]:
    """(start, step) of block `blk`'s walk in the epoch of `seed`: position t of the walk is
    ``(start + t * step) mod n``. ``step`` is uniform on 1..n-1, moved up to the next number
    coprime with n (so the walk visits every position once); ``start`` is uniform on 0..n-1.
    The two are the first two numbers of ``shuffle_words(seed, blk, 2)``."""
    if n < 2:
        return np.uint64(0), np.uint64(1)
    key = stream_key(seed, blk)
    size = np.uint64(n)
    step = np.uint64(1) + _word(key, 0) % (size - np.uint64(1))
    while _gcd(step, size) != np.uint64(1):
        step = step + np.uint64(1) if step + np.uint64(1) < size else np.uint64(1)
    return _word(key, 1) % size, step


@njit(cache=True)
def _gcd(a, b):
    while b != np.uint64(0):
        a, b = b, a % b
    return a


@njit(cache=True)
def shuffle_words(seed: np.uint64, blk: int, n: int) -> NDArray[np.uint64]:
    """The n uniform 32-bit numbers (held in uint64) of block `blk` and `seed`: the d of
    position m of the block's Fisher-Yates (see `_shuffle`); the first two make its walk."""
    key = stream_key(seed, blk)
    out = np.empty(n, np.uint64)
    for m in range(n):
        out[m] = _word(key, m)
    return out


@njit(cache=True)
def schedule(n_blocks: int, seed: np.uint64) -> NDArray[np.int64]:
    """The epoch of `seed`'s order of blocks, shaped (B, B): row s lists the blocks of
    sub-epoch s.

    Sub-epoch s pairs user group ``pu[j]`` with item group ``pi[(j + shift[s]) % B]``: a
    random Latin square, so the blocks of a row share no group and every block comes once.
    pu, pi and shift are Fisher-Yates permutations of 0..B-1 (as in `_shuffle`), made from
    the numbers of stream B² of `seed` (the blocks' walks use streams 0..B²-1).
    """
    b = n_blocks
    words = shuffle_words(seed, b * b, 3 * b)
    perms = np.empty((3, b), np.int64)
    for p in range(3):
        for j in range(b):
            perms[p, j] = j
        for m in range(b - 1):
            j = m + np.int64((words[p * b + m] * np.uint64(b - m)) >> np.uint64(32))
            perms[p, m], perms[p, j] = perms[p, j], perms[p, m]
    out = np.empty((b, b), np.int64)
    for s in range(b):
        for j in range(b):
            out[s, j] = perms[0, j] * b + perms[1, (j + perms[2, s]) % b]
    return out


@njit(cache=True, fastmath=FASTMATH)
def _shuffle(users, items, codes, lo, hi, key):
    """Fisher-Yates on positions lo..hi-1: position m swaps with m + floor(d (hi - m) / 2^32),
    d the (m - lo)-th number of the stream `key`. The numbers are hashed from their position,
    not chained, so the loop carries no dependency through the generator. Unsigned positions
    spare numba's negative-index checks (a third of the time)."""
    if hi - lo < 2:
        return
    first = np.uint64(lo)
    end = np.uint64(hi)
    for m in range(first, end - np.uint64(1)):
        j = m + ((_word(key, m - first) * (end - m)) >> np.uint64(32))
        u = users[j]
        users[j] = users[m]
        users[m] = u
        i = items[j]
        items[j] = items[m]
        items[m] = i
        c = codes[j]
        codes[j] = codes[m]
        codes[m] = c


@njit(cache=True, parallel=True)
def shuffle_blocks(
    users: NDArray[np.unsignedinteger],
    items: NDArray[np.unsignedinteger],
    codes: NDArray[np.unsignedinteger],
    block_ptr: NDArray[np.int64],
    seed: np.uint64,
) -> None:
    """Put the ratings of every block in random order, in place: block ``blk`` gets the
    Fisher-Yates of ``shuffle_words(seed, blk, n)`` (blocks in parallel, the same result on any
    number of threads). Done once, when the grid is built; every epoch then walks it."""
    for blk in prange(block_ptr.shape[0] - 1):
        _shuffle(users, items, codes, block_ptr[blk], block_ptr[blk + 1], stream_key(seed, blk))


@njit(cache=True, fastmath=FASTMATH)
def _sgd_block(
    users,
    items,
    codes,
    values,
    lo,
    hi,
    start,
    step,
    base_u,
    base_i,
    P,
    Q,
    bu,
    bi,
    mu,
    lr,
    shrink,
    shrink_bias,
    use_bias,
    prefetch,
):
    """The SGD updates of ratings lo..hi-1 in the order of the walk (start, step) (see
    `visit_walk`); returns their squared errors (float64). The rows of the rating `prefetch`
    places ahead in the walk are prefetched (none when 0). Positions and rows are unsigned,
    which spares numba's negative-index checks."""
    sse = 0.0
    if lo >= hi:
        return sse
    n = np.uint64(hi - lo)
    first = np.uint64(lo)
    base_u = np.uint64(base_u)
    base_i = np.uint64(base_i)
    ahead = min(np.uint64(prefetch), n)
    # `pos` walks the visits, `pre` walks `ahead` visits in front of it.
    pre = start
    for _ in range(ahead):
        prefetch_row(P, base_u + users[first + pre])
        prefetch_row(Q, base_i + items[first + pre])
        pre = _advance(pre, step, n)
    pos = start
    j = first + pos
    u = base_u + users[j]
    i = base_i + items[j]
    dot = row_dot(P, u, Q, i)
    for t in range(n):
        if prefetch > 0:
            prefetch_row(P, base_u + users[first + pre])
            prefetch_row(Q, base_i + items[first + pre])
            pre = _advance(pre, step, n)
        # r - mu - b_u - b_i does not wait for the dot product.
        if use_bias:
            e = (values[codes[j]] - mu - bu[u] - bi[i]) - dot
            bu[u] = shrink_bias * bu[u] + lr * e
            bi[i] = shrink_bias * bi[i] + lr * e
        else:
            e = values[codes[j]] - dot
        sse += e * e
        g = lr * e
        if t + np.uint64(1) == n:
            row_step(P, u, Q, i, shrink, g)
            break
        pos = _advance(pos, step, n)
        j = first + pos
        u_next = base_u + users[j]
        i_next = base_i + items[j]
        if u_next != u and i_next != i:
            dot = row_step_dot(P, u, Q, i, shrink, g, u_next, i_next)
        else:
            # The next rating reads a row this one writes: its dot product must wait.
            row_step(P, u, Q, i, shrink, g)
            dot = row_dot(P, u_next, Q, i_next)
        u = u_next
        i = i_next
    return sse


@njit(cache=True)
def _advance(pos, step, n):
    """The walk's next position: (pos + step) mod n, for pos and step below n."""
    pos += step
    return pos - n if pos >= n else pos


def sgd_strata_reference(
    users: NDArray[np.unsignedinteger],
    items: NDArray[np.unsignedinteger],
    codes: NDArray[np.unsignedinteger],
    values: NDArray[np.floating],
    block_ptr: NDArray[np.int64],
    user_start: NDArray[np.int64],
    item_start: NDArray[np.int64],
    strata: NDArray[np.int64],
    seed: np.uint64,
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    mu: float,
    lr: float,
    reg: float,
    reg_bias: float,
    use_bias: bool,
    workers: int,
    prefetch: int,
) -> float:
    """Numpy twin of `sgd_strata`: the serial order (what any number of `workers` computes)
    with the updates of `mfrec.kernels.sgd.sgd_epoch_reference`. Any row length; `prefetch`
    changes nothing in the result."""
    width = strata.shape[1]
    sse = 0.0
    for blk in strata.ravel():
        lo, hi = int(block_ptr[blk]), int(block_ptr[blk + 1])
        u = user_start[blk // width] + users[lo:hi].astype(np.int64)
        i = item_start[blk % width] + items[lo:hi].astype(np.int64)
        r = values[codes[lo:hi]]
        order = visit_walk_reference(np.uint64(seed), int(blk), hi - lo)
        sse += sgd_epoch_reference(u, i, r, order, P, Q, bu, bi, mu, lr, reg, reg_bias, use_bias)
    return sse


def schedule_reference(n_blocks: int, seed: np.uint64) -> NDArray[np.int64]:
    """Numpy twin of `schedule`."""
    b = n_blocks
    words = shuffle_words_reference(np.uint64(seed), b * b, 3 * b)
    perms = np.tile(np.arange(b), (3, 1))
    for p in range(3):
        for m in range(b - 1):
            j = m + ((int(words[p * b + m]) * (b - m)) >> 32)
            perms[p, [m, j]] = perms[p, [j, m]]
    pu, pi, shift = perms
    return pu[None, :] * b + pi[(np.arange(b)[None, :] + shift[:, None]) % b]


def visit_walk_reference(seed: np.uint64, blk: int, n: int) -> NDArray[np.int64]:
    """Numpy twin of `visit_walk`, as the positions of the whole walk (block-relative)."""
    if n < 2:
        return np.arange(n)
    first, second = (int(x) for x in shuffle_words_reference(seed, blk, 2))
    step = 1 + first % (n - 1)
    while math.gcd(step, n) != 1:
        step = step + 1 if step + 1 < n else 1
    return (second % n + np.arange(n, dtype=np.int64) * step) % n


def shuffle_blocks_reference(
    users: NDArray[np.unsignedinteger],
    items: NDArray[np.unsignedinteger],
    codes: NDArray[np.unsignedinteger],
    block_ptr: NDArray[np.int64],
    seed: np.uint64,
) -> None:
    """Numpy twin of `shuffle_blocks`."""
    for blk in range(len(block_ptr) - 1):
        lo, hi = int(block_ptr[blk]), int(block_ptr[blk + 1])
        words = shuffle_words_reference(np.uint64(seed), blk, hi - lo)
        shuffle_reference(users, items, codes, lo, hi, words)


def shuffle_words_reference(seed: np.uint64, blk: int, n: int) -> NDArray[np.uint64]:
    """Numpy twin of `shuffle_words` (uint64 arithmetic wraps modulo 2^64, as in the kernel)."""

    def mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
        return x ^ (x >> np.uint64(31))

    with np.errstate(over="ignore"):
        key = mix(np.array([seed + np.uint64(blk + 1) * GOLDEN], np.uint64))[0]
        steps = np.arange(1, n + 1, dtype=np.uint64) * GOLDEN
        return mix(key + steps) >> np.uint64(32)


def shuffle_reference(
    users: NDArray[np.unsignedinteger],
    items: NDArray[np.unsignedinteger],
    codes: NDArray[np.unsignedinteger],
    lo: int,
    hi: int,
    words: NDArray[np.uint64],
) -> None:
    """Numpy twin of the kernel's in-place Fisher-Yates shuffle of positions lo..hi-1, with
    ``words[m - lo]`` the 32-bit number of position m."""
    for m in range(lo, hi - 1):
        j = m + ((int(words[m - lo]) * (hi - m)) >> 32)
        for a in (users, items, codes):
            a[m], a[j] = a[j], a[m]


#: Rows are copied in this many fixed chunks, spread over the threads.
COPY_CHUNKS = 64


@njit(cache=True)
def copy_in(
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
    user_rows: NDArray[np.int64],
    item_rows: NDArray[np.int64],
    Pw: NDArray[np.floating],
    Qw: NDArray[np.floating],
    buw: NDArray[np.floating],
    biw: NDArray[np.floating],
) -> None:
    """Working copies from the factors: ``Pw[w, :k] = P[user_rows[w]]``, ``buw[w] =
    bu[user_rows[w]]``, likewise for items (Pw and Qw may be wider than k). On all threads:
    bgd copies back after every epoch, and on 10M ratings one serial copy took 13 ms, a tenth
    of a 2-thread epoch."""
    _copy_rows(P, bu, user_rows, Pw, buw, False)
    _copy_rows(Q, bi, item_rows, Qw, biw, False)


@njit(cache=True)
def copy_out(
    Pw: NDArray[np.floating],
    Qw: NDArray[np.floating],
    buw: NDArray[np.floating],
    biw: NDArray[np.floating],
    user_rows: NDArray[np.int64],
    item_rows: NDArray[np.int64],
    P: NDArray[np.floating],
    Q: NDArray[np.floating],
    bu: NDArray[np.floating],
    bi: NDArray[np.floating],
) -> None:
    """The inverse of `copy_in`: the working rows back into the factors."""
    _copy_rows(P, bu, user_rows, Pw, buw, True)
    _copy_rows(Q, bi, item_rows, Qw, biw, True)


@njit(cache=True, parallel=True)
def _copy_rows(X, b, rows, Xw, bw, back):
    """``Xw[w] = X[rows[w]]`` (or back), row by row in `COPY_CHUNKS` parallel chunks; the
    shorter of the two row lengths is copied."""
    n = rows.shape[0]
    k = min(X.shape[1], Xw.shape[1])
    for chunk in prange(COPY_CHUNKS):
        for w in range(chunk * n // COPY_CHUNKS, (chunk + 1) * n // COPY_CHUNKS):
            r = rows[w]
            if back:
                X[r, :k] = Xw[w, :k]
                b[r] = bw[w]
            else:
                Xw[w, :k] = X[r, :k]
                bw[w] = b[r]


def copy_in_reference(P, Q, bu, bi, user_rows, item_rows, Pw, Qw, buw, biw) -> None:
    """Numpy twin of `copy_in`."""
    k = P.shape[1]
    Pw[:, :k] = P[user_rows]
    Qw[:, :k] = Q[item_rows]
    buw[:] = bu[user_rows]
    biw[:] = bi[item_rows]


def copy_out_reference(Pw, Qw, buw, biw, user_rows, item_rows, P, Q, bu, bi) -> None:
    """Numpy twin of `copy_out`."""
    k = P.shape[1]
    P[user_rows] = Pw[:, :k]
    Q[item_rows] = Qw[:, :k]
    bu[user_rows] = buw
    bi[item_rows] = biw
