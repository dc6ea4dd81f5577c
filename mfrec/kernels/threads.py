"""How many threads the parallel kernels (numba ``prange``) may use.

numba is imported by the functions here, not by this module: the trainer imports it at module
level, and commands that train nothing never call them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

# GNU OpenMP (numba's threading layer here) lets an idle thread spin ~300k times before it
# sleeps. Our parallel regions come back to back (one per sub-epoch), so a short spin keeps
# them cheap; a long one, on a busy machine, takes the core from the thread the others wait
# for (measured on 2 shared cores: sgd epochs 8-40x slower with 2 threads than with 1). Set
# before numba starts its threads; a value the user set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")


def available_threads() -> int:
    """Threads numba can run: the cores it found at start-up (or NUMBA_NUM_THREADS)."""
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def resolve_threads(threads: int | None) -> int:
    """`threads` (None: all available), capped at what numba can run."""
    most = available_threads()
    if threads is None:
        return most
    if threads > most:
        logger.info("threads=%d: only %d available, using %d", threads, most, most)
    return max(1, min(int(threads), most))


@contextmanager
def numba_threads(threads: int) -> Iterator[None]:
    """Run parallel kernels with `threads` threads inside the block, then restore the setting."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)
