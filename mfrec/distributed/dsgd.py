"""DSGD (Gemulla et al., KDD 2011) on Dask, with LIBMF's scheduling of free blocks.

The ratings sit in a d x d grid of blocks (`mfrec.distributed.grid`); block (a, b) touches only
user stripe a of P and item stripe b of Q, so blocks that share neither a row nor a column of
the grid can run at the same time and the result is that of running them one after another.
Each user stripe, its blocks and its P rows live on one worker for the whole run; a block task
runs one epoch of the local solver on the block (`SGD` / `MiniBatch` `run_epoch`, single-
threaded: the same numba kernels as local training) and hands back the updated stripes of P
and Q. Only Q stripes move
between workers: the next block that needs one may run elsewhere.

With more blocks than workers the driver keeps every worker busy as LIBMF does: whenever a
worker finishes a block, it is handed a block of one of its own stripes whose item stripe is
free and which has not run yet in this epoch, so a slow block holds up only its row and its
column, not the whole sub-epoch. The order in which blocks were handed out (the *schedule*)
depends on timing; replaying it with `replay` in one process gives bit-identical factors.
"""

from __future__ import annotations

import operator
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from mfrec.distributed import engine
from mfrec.distributed.grid import Side, Stripe, block_state
from mfrec.training.optimizers import optimizer_code
from mfrec.training.solvers import get_solver
from mfrec.training.state import SolverParams

if TYPE_CHECKING:
    from collections.abc import Callable

    from distributed import Client, Future

    from mfrec.distributed.ingest import Grid

#: spawn_key prefix of the per-block shuffle streams (distinct from SeedSequence.spawn's keys).
BLOCK_STREAM = 7001

Block = tuple[int, int]


@dataclass(frozen=True)
class BlockJob:
    """What every block task of a run needs besides its data: solver, hyperparameters, seed.

    `optimizer` is resolved (the solver's default filled in).
    """

    solver: str
    params: SolverParams
    optimizer: str
    mu: float
    use_bias: bool
    seed: int

    @property
    def opt_code(self) -> int:
        """The optimizer's kernel rule."""
        return optimizer_code(self.optimizer)


@dataclass(frozen=True)
class BlockStats:
    """One block run: its place, the solver's update count and the kernel's seconds."""

    block: Block
    ratings: int
    updates: int
    seconds: float


def block_rng(seed: int, epoch: int, block: Block) -> np.random.Generator:
    """The shuffle stream of `block` in `epoch`: fixed by the seed, whatever runs when."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(BLOCK_STREAM, epoch, *block))
    )


def run_block(
    stripe: Stripe, b: int, user: Side, item: Side, job: BlockJob, epoch: int
) -> tuple[Side, Side, BlockStats]:
    """One epoch of the local solver on block (stripe.index, b): new user and item sides.

    The inputs are not modified (Dask may hold them, and a retried task must see them again).
    """
    user, item = user.copy(), item.copy()
    blk = stripe.blocks[b]
    updates = 0
    start = time.perf_counter()
    if len(blk):
        factors, opt = block_state(user, item, job.mu, job.use_bias, job.opt_code)
        rng = block_rng(job.seed, epoch, (stripe.index, b))
        # One thread: a worker runs one block at a time, on one core.
        params = replace(job.params, threads=1)
        solver = get_solver(job.solver)(factors, blk, params, rng)
        # The block continues the run's optimizer state rather than starting a fresh one.
        solver.opt = opt
        updates = solver.run_epoch(epoch)
        solver.sync()  # the factors are views of `user` and `item`
    seconds = time.perf_counter() - start
    return user, item, BlockStats((stripe.index, b), len(blk), updates, seconds)


def replay(
    stripes: list[Stripe],
    users: list[Side],
    items: list[Side],
    schedule: list[list[Block]],
    job: BlockJob,
    first_epoch: int = 0,
) -> tuple[list[Side], list[Side]]:
    """Run the blocks of `schedule` (one list per epoch, from `first_epoch`) in this process.

    Given the schedule a cluster run followed, this gives the same factors, bit for bit.
    """
    users, items = list(users), list(items)
    for epoch, blocks in enumerate(schedule, start=first_epoch):
        for a, b in blocks:
            users[a], items[b], _ = run_block(stripes[a], b, users[a], items[b], job, epoch)
    return users, items


class BlockScheduler:
    """Which block a worker runs next (LIBMF's rule, within epochs).

    A block may start when neither its user stripe nor its item stripe is in use and it has
    not run in this epoch. A worker only gets blocks of the user stripes it owns (their
    ratings and P rows are there). Among those it gets the one whose item stripe, then user
    stripe, has the most blocks left, so that no stripe is left with a queue at the end of
    the epoch; ties are broken at random.
    """

    def __init__(self, owners: list[str], d_cols: int, rng: np.random.Generator):
        self.owners = list(owners)
        self.d_rows = len(owners)
        self.d_cols = d_cols
        self.rng = rng
        self.start_epoch()

    def start_epoch(self) -> None:
        """Every block is to run once more."""
        self.todo = np.ones((self.d_rows, self.d_cols), dtype=bool)
        self.row_busy = np.zeros(self.d_rows, dtype=bool)
        self.col_busy = np.zeros(self.d_cols, dtype=bool)

    @property
    def finished(self) -> bool:
        """Whether every block of the epoch has run and none is running."""
        return not (self.todo.any() or self.row_busy.any())

    def take(self, worker: str) -> Block | None:
        """A block for `worker` to run now (marked as running), or None if none is free."""
        rows = np.array(
            [a for a, w in enumerate(self.owners) if w == worker and not self.row_busy[a]],
            dtype=np.int64,
        )
        if rows.size == 0:
            return None
        free = self.todo[rows] & ~self.col_busy[None, :]
        if not free.any():
            return None
        score = self.todo.sum(axis=0)[None, :] * (self.d_cols + 1) + self.todo[rows].sum(
            axis=1, keepdims=True
        )
        score = np.where(free, score, -1)
        best = np.flatnonzero(score == score.max())
        r, b = divmod(int(self.rng.choice(best)), self.d_cols)
        a = int(rows[r])
        self.todo[a, b] = False
        self.row_busy[a] = True
        self.col_busy[b] = True
        return a, b

    def finish(self, block: Block) -> None:
        """`block` has run: its stripes are free again."""
        a, b = block
        self.row_busy[a] = False
        self.col_busy[b] = False


@dataclass
class EpochRun:
    """What one distributed epoch did: the blocks in the order handed out, and their costs."""

    schedule: list[Block] = field(default_factory=list)
    stats: list[BlockStats] = field(default_factory=list)

    @property
    def updates(self) -> int:
        """Parameter updates made by all blocks (the history's ``updates``)."""
        return sum(s.updates for s in self.stats)


def run_epoch(
    client: Client,
    grid: Grid,
    users: list[Future],
    items: list[Future],
    job: BlockJob,
    epoch: int,
    scheduler: BlockScheduler,
    what: Callable[[], str],
) -> EpochRun:
    """One DSGD epoch on the cluster; replaces the futures in `users` and `items` in place.

    Each worker runs as many blocks at once as it has threads. Returns the schedule and the
    per-block figures. A lost worker or a failed task raises ClusterError (`what()` names the
    epoch and the checkpoint to resume from); the futures are then no longer usable.
    """
    slots = {w: n for w, n in engine.workers(client).items() if w in set(grid.owners)}
    running: dict[Future, tuple[Block, str]] = {}
    stats: list[Future] = []
    run = EpochRun()
    scheduler.start_epoch()

    def dispatch() -> None:
        for worker in slots:
            while slots[worker] > 0:
                block = scheduler.take(worker)
                if block is None:
                    break
                a, b = block
                where = {"workers": [worker], "allow_other_workers": False, "pure": False}
                fut = client.submit(
                    run_block, grid.stripes[a], b, users[a], items[b], job, epoch, **where
                )
                users[a] = client.submit(operator.getitem, fut, 0, **where)
                items[b] = client.submit(operator.getitem, fut, 1, **where)
                stats.append(client.submit(operator.getitem, fut, 2, **where))
                running[fut] = (block, worker)
                run.schedule.append(block)
                slots[worker] -= 1

    missing = [a for a, w in enumerate(grid.owners) if w not in slots]
    if missing:
        raise engine.ClusterError(f"worker {grid.owners[missing[0]]} left the cluster: {what()}")
    dispatch()
    while running:
        for fut in engine.wait_first(client, running, grid.owners, what):
            block, worker = running.pop(fut)
            scheduler.finish(block)
            slots[worker] += 1
        dispatch()
    run.stats = engine.gather(client, stats, grid.owners, what)
    return run
