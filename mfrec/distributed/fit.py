"""`fit_dask`: train a `MatrixFactorization` on a Dask cluster, with checkpoints.

The estimator's parameters mean what they mean locally and the fitted estimator is the same
(same attributes, same history columns, same ``.npz`` file), so predict, recommend, evaluate
and compare work on it unchanged. What differs:

- ``sgd`` and ``minibatch`` run as DSGD (`mfrec.distributed.dsgd`), ``bgd`` as distributed
  full-batch steps (`mfrec.distributed.dbgd`); ``als``, validation sets, early stopping and
  the line search are not available on the cluster.
- The start is the local one (`Factors.initial` from the seed, over the same ID maps), and
  bgd follows local bgd up to rounding. DSGD visits the ratings in another order than local
  SGD (block by block), and which blocks run together depends on timing: two runs with the
  same seed need not give identical factors. `DaskReport.schedule` records what ran.
- History ``seconds`` is the wall time of the epochs on the cluster; ``eval_seconds`` that of
  the extra scoring pass DSGD needs after each epoch (bgd scores in its gradient pass).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mfrec.distributed import checkpoint as ckpt
from mfrec.distributed import dbgd, dsgd, engine
from mfrec.distributed.grid import Side, evaluate_stripe, sides_of
from mfrec.errors import DivergenceError, ParameterError
from mfrec.progress import ProgressBar
from mfrec.training.fitting import FittedState, check_params
from mfrec.training.optimizers import OptimizerState, epoch_lr
from mfrec.training.state import DEFAULT_FACTORS, Factors
from mfrec.training.trainer import DIVERGENCE_FACTOR, STOP_CALLBACK, STOP_EPOCHS
from mfrec.utils.validation import check_int, resolve_seed

if TYPE_CHECKING:
    from distributed import Client, Future

    from mfrec.distributed.ingest import Grid
    from mfrec.model.estimator import MatrixFactorization

logger = logging.getLogger(__name__)

#: The solvers the cluster runs, and how.
DASK_SOLVERS = {"sgd": "dsgd", "minibatch": "dsgd", "bgd": "bgd"}
#: spawn_key of the stream that numbers users and items for the grid, and of the scheduler's.
LAYOUT_STREAM = 7002
SCHEDULE_STREAM = 7003
#: Blocks per side of the DSGD grid for each worker thread (LIBMF uses about twice as many
#: blocks as threads, so that a worker finishing a block nearly always finds a free one).
BLOCKS_PER_THREAD = 2

Callback = Callable[[int, dict[str, float]], "bool | None"]


@dataclass
class DaskReport:
    """What a cluster run did, beside the fitted model.

    ``epochs``: one row per epoch run here: ``seconds`` and ``eval_seconds`` (wall time of
    training and of scoring), ``bytes`` and ``eval_bytes`` (data the workers sent, from Dask's
    transfer counters). ``blocks`` (DSGD): one row per block run: epoch, a, b, ratings,
    updates, kernel seconds. ``schedule``: for each epoch run, the blocks in the order handed
    out (see `dsgd.replay`).
    """

    workers: int
    grid: tuple[int, int]
    n_ratings: int
    ingest_seconds: float
    first_epoch: int
    epochs: pd.DataFrame
    blocks: pd.DataFrame
    schedule: list[list[tuple[int, int]]] = field(default_factory=list)


def fit_dask(
    model: MatrixFactorization,
    source: str,
    *,
    client: Client | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    blocks: int | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    callback: Callback | None = None,
    preset: str = "auto",
    sep: str | None = None,
    header: bool | None = None,
    columns: Any = None,
    scale: tuple[float, float] | None = None,
    duplicates: str = "last",
    encoding: str | None = None,
) -> DaskReport:
    """Fit `model` on the ratings at `source` on a Dask cluster; the model ends up fitted.

    Parameters
    ----------
    source
        A ratings file, a directory or a glob of CSV or Parquet files, or a URL Dask reads.
    client, scheduler, n_workers
        The cluster: a Client, the address of a scheduler, or else a LocalCluster of
        `n_workers` single-threaded workers (default: one per core).
    blocks
        Stripes per side of the DSGD grid (default: two per worker thread); for bgd, user
        stripes (default: one per worker thread).
    checkpoint_dir, checkpoint_every
        Save the training state there after every `checkpoint_every` epochs.
    resume
        Continue from the checkpoint in `checkpoint_dir` (same data and options).
    callback
        ``callback(epoch, history_row)`` after each epoch; a true result stops training.
    preset, sep, header, columns, scale, duplicates, encoding
        As for `mfrec.ratings.load.load_ratings`.

    Raises
    ------
    ParameterError
        A parameter the cluster does not support (see the module docstring).
    ClusterError
        The cluster is unreachable, or lost a worker or failed a task during training: no
        model is produced; with checkpoints, `resume` continues from the last one.
    """
    from mfrec.distributed.ingest import ingest, read_frame

    solver_cls, params = check_params(model.get_params())
    _check_supported(model, params)
    check_int("checkpoint_every", checkpoint_every)
    if resume and checkpoint_dir is None:
        raise ParameterError("resume", resume, "needs a checkpoint directory")
    check_int("blocks", blocks, optional=True)
    seed = resolve_seed(model.seed)
    dtype = np.dtype(model.dtype)
    optimizer = params.optimizer or solver_cls.default_optimizer
    settings = _settings(model, dtype, seed)
    n_epochs = solver_cls.default_epochs if model.epochs is None else int(model.epochs)
    engine.require_dask()
    connection = (
        contextlib.nullcontext(client)
        if client is not None
        else engine.connect(scheduler, n_workers)
    )
    with connection as cl:
        threads = sum(engine.workers(cl).values())
        dsgd_run = DASK_SOLVERS[model.solver] == "dsgd"
        d = blocks or BLOCKS_PER_THREAD * threads
        started = time.perf_counter()
        frame = read_frame(
            source, preset=preset, sep=sep, header=header, columns=columns, encoding=encoding
        )
        grid = ingest(
            cl,
            frame,
            source=source,
            d_rows=d if dsgd_run else (blocks or threads),
            d_cols=d if dsgd_run else 1,
            rng=_stream(seed, LAYOUT_STREAM),
            dtype=dtype,
            scale=scale,
            duplicates=duplicates,
        )
        ingest_seconds = time.perf_counter() - started
        logger.info("ingest: %.2f s", ingest_seconds)
        if resume:
            state = ckpt.load_checkpoint(checkpoint_dir)
            ckpt.check_resumable(
                state, settings, grid.user_map, grid.item_map, str(ckpt.path_in(checkpoint_dir))
            )
            logger.info("resuming after epoch %d", state.epoch)
        else:
            state = _start(model, grid, optimizer, seed, settings)
        first_epoch = state.epoch
        run = _Run(cl, grid, model, params, solver_cls, optimizer, seed, state)
        del state  # the factors now live on the workers
        run.train(n_epochs, checkpoint_dir, checkpoint_every, callback)
        factors = run.gather_factors()
        indptr, indices = _seen(cl, grid, run.what)
    model.set_fitted(_fitted_state(grid, run, factors, (indptr, indices), seed))
    return DaskReport(
        workers=len(set(grid.owners)),
        grid=(grid.layout.d_rows, grid.layout.d_cols),
        n_ratings=grid.n_ratings,
        ingest_seconds=ingest_seconds,
        first_epoch=first_epoch,
        epochs=pd.DataFrame(run.figures),
        blocks=pd.DataFrame(run.block_rows),
        schedule=run.schedule,
    )


def _settings(model: MatrixFactorization, dtype: np.dtype, seed: int) -> dict[str, Any]:
    """What a resumed run must share with the checkpoint's, as JSON (more epochs are fine;
    the cluster runs one thread per worker whatever `threads` says)."""
    skip = ("progress", "seed", "epochs", "threads")
    settings = {k: v for k, v in model.get_params().items() if k not in skip}
    settings.update(dtype=dtype.name, seed=seed)
    return json.loads(json.dumps(settings, default=_plain))


def _fitted_state(
    grid: Grid, run: _Run, factors: Factors, seen: tuple[NDArray, NDArray], seed: int
) -> FittedState:
    """The gathered factors and the run's history, as a fit leaves them in a model."""
    return FittedState(
        user_factors=factors.P,
        item_factors=factors.Q,
        user_bias=factors.bu,
        item_bias=factors.bi,
        global_mean=grid.mu,
        user_map=grid.user_map,
        item_map=grid.item_map,
        scale=grid.scale,
        seen_indptr=seen[0],
        seen_indices=seen[1],
        history=run.history(),
        best_epoch=run.epoch,
        stop_reason=run.stop_reason,
        seed=seed,
    )


def _start(
    model: MatrixFactorization, grid: Grid, optimizer: str, seed: int, settings: dict
) -> ckpt.Checkpoint:
    """Epoch 0: the local trainer's starting factors (`Factors.initial` from the seed)."""
    factors = Factors.initial(
        grid.n_users,
        grid.n_items,
        DEFAULT_FACTORS if model.factors is None else int(model.factors),
        mu=grid.mu if model.use_bias else 0.0,
        use_bias=bool(model.use_bias),
        init_std=float(model.init_std),
        dtype=np.dtype(model.dtype).type,
        rng=np.random.default_rng(seed),
    )
    opt = OptimizerState.create(optimizer, factors)
    return ckpt.Checkpoint(0, factors, opt, pd.DataFrame(), grid.user_map, grid.item_map, settings)


def _check_supported(model: MatrixFactorization, params: Any) -> None:
    if model.solver not in DASK_SOLVERS:
        raise ParameterError(
            "solver",
            model.solver,
            f"the dask engine runs {', '.join(DASK_SOLVERS)}; train {model.solver} locally",
        )
    for name in ("validation", "patience"):
        if getattr(model, name) is not None:
            raise ParameterError(name, getattr(model, name), "not available on the dask engine")
    if params.line_search:
        raise ParameterError("line_search", True, "not available on the dask engine")


def _plain(value: Any) -> Any:
    """A numpy scalar as a plain number, anything else as its text."""
    return value.item() if isinstance(value, np.generic) else str(value)


def _stream(seed: int, key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))


class _Run:
    """The epoch loop of a cluster run: the factors live on the workers as Side futures."""

    def __init__(
        self,
        client: Client,
        grid: Grid,
        model: MatrixFactorization,
        params: Any,
        solver_cls: type,
        optimizer: str,
        seed: int,
        state: ckpt.Checkpoint,
    ):
        self.client = client
        self.grid = grid
        self.name = model.solver
        self.params = params
        self.lr = solver_cls.default_lr if params.lr is None else params.lr
        self.optimizer = optimizer
        self.progress = bool(model.progress)
        self.settings = state.settings
        # Only for `hyper`: the optimizer's arrays live in the Sides on the workers.
        self.opt = OptimizerState(state.opt.code, (), state.opt.steps[:0])
        self.epoch = state.epoch
        self.rows: list[dict[str, float]] = state.history.to_dict("records")
        self.stop_reason = STOP_EPOCHS
        self.figures: list[dict[str, float]] = []
        self.block_rows: list[dict[str, float]] = []
        self.schedule: list[list[tuple[int, int]]] = []
        self.last_checkpoint: int | None = state.epoch if state.epoch else None
        self.checkpoint_dir: str | os.PathLike[str] | None = None
        f = state.factors
        self.use_bias = f.use_bias
        self.mu = f.mu
        self.dtype = f.P.dtype
        lay = grid.layout
        self.user_members = [lay.user_members(a) for a in range(lay.d_rows)]
        self.item_members = [lay.item_members(b) for b in range(lay.d_cols)]
        user, item = sides_of(f, state.opt)
        self.users = [
            client.scatter(user.take(m), workers=[w])
            for m, w in zip(self.user_members, grid.owners, strict=True)
        ]
        self.items = [client.scatter(item.take(m)) for m in self.item_members]
        self.bgd = DASK_SOLVERS[self.name] == "bgd"
        self.job = dsgd.BlockJob(self.name, params, optimizer, f.mu, f.use_bias, seed)
        self.scheduler = dsgd.BlockScheduler(
            grid.owners, lay.d_cols, _stream(seed, SCHEDULE_STREAM)
        )
        self.objective = dbgd.Model(f.mu, f.use_bias, params.reg, params.reg_bias, grid.n_ratings)
        self.grads: dbgd.Pass | None = None
        self.train_seconds = 0.0 if not self.rows else float(self.rows[-1]["seconds"])
        self.eval_seconds = 0.0 if not self.rows else float(self.rows[-1]["eval_seconds"])
        self.updates = 0 if not self.rows else int(self.rows[-1]["updates"])

    # -- the loop -------------------------------------------------------------------------

    def train(
        self,
        n_epochs: int,
        checkpoint_dir: str | os.PathLike[str] | None,
        every: int,
        callback: Callback | None,
    ) -> None:
        """Run epochs `epoch + 1 .. n_epochs`, recording, checking and checkpointing each."""
        self.checkpoint_dir = checkpoint_dir
        if not self.rows:
            start = time.perf_counter()
            scores = self._pass(gradient=n_epochs > 0) if self.bgd else self._evaluate()
            self.eval_seconds += time.perf_counter() - start
            self._record(0, scores, 0)
        todo = max(n_epochs - self.epoch, 0)
        with ProgressBar(todo, self.name, enabled=self.progress) as bar:
            for epoch in range(self.epoch + 1, n_epochs + 1):
                row = self._epoch(epoch, last=epoch == n_epochs)
                bar.update(1, f"J={row['objective']:.5g} RMSE train {row['train_rmse']:.4f}")
                if checkpoint_dir is not None and epoch % every == 0:
                    self._checkpoint(epoch)
                if callback is not None and callback(epoch, dict(row)):
                    self.stop_reason = STOP_CALLBACK
                    break

    def what(self) -> str:
        """What a failure during the current epoch means for the user."""
        text = f"epoch {self.epoch + 1} did not finish and no model was written; "
        if self.last_checkpoint is not None:
            return text + (
                f"run again with --resume to continue from the checkpoint of epoch "
                f"{self.last_checkpoint} in {self.checkpoint_dir}"
            )
        return text + "with --checkpoint-dir a run can be resumed after such a failure"

    def _epoch(self, epoch: int, last: bool) -> dict[str, float]:
        before = engine.outgoing_bytes(self.client)
        start = time.perf_counter()
        figures: dict[str, float] = {"epoch": epoch}
        if self.bgd:
            scores = self._bgd_epoch(epoch - 1, last)
            updates = 1
            middle, moved = time.perf_counter(), engine.outgoing_bytes(self.client)
            eval_time, eval_bytes = 0.0, 0
        else:
            run = dsgd.run_epoch(
                self.client,
                self.grid,
                self.users,
                self.items,
                self.job,
                epoch - 1,
                self.scheduler,
                self.what,
            )
            middle, moved = time.perf_counter(), engine.outgoing_bytes(self.client)
            scores = self._evaluate()
            eval_time = time.perf_counter() - middle
            eval_bytes = engine.outgoing_bytes(self.client) - moved
            updates = run.updates
            self.schedule.append(run.schedule)
            self.block_rows.extend(
                {
                    "epoch": epoch,
                    "a": s.block[0],
                    "b": s.block[1],
                    "ratings": s.ratings,
                    "updates": s.updates,
                    "seconds": s.seconds,
                }
                for s in run.stats
            )
        self.train_seconds += middle - start
        self.eval_seconds += eval_time
        figures.update(
            seconds=middle - start,
            eval_seconds=eval_time,
            bytes=moved - before,
            eval_bytes=eval_bytes,
        )
        self.figures.append(figures)
        self.epoch = epoch
        row = self._record(epoch, scores, updates)
        logger.info(
            "%s epoch %d: %.3f s, %.3f s scoring; workers sent %.1f MB (+%.1f MB scoring)",
            self.name,
            epoch,
            figures["seconds"],
            eval_time,
            figures["bytes"] / 1e6,
            eval_bytes / 1e6,
        )
        return row

    def _record(self, epoch: int, scores: tuple[float, float], updates: int) -> dict[str, float]:
        n = self.grid.n_ratings
        self.updates += updates
        row = {
            "epoch": epoch,
            "objective": scores[0] / n,
            "train_rmse": math.sqrt(scores[1] / n),
            "seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds,
            "updates": self.updates,
        }
        self._check_divergence(epoch, row["objective"])
        self.rows.append(row)
        logger.info(
            "%s epoch %d: J=%.6g, train RMSE %.4f",
            self.name,
            epoch,
            row["objective"],
            row["train_rmse"],
        )
        return row

    def _check_divergence(self, epoch: int, value: float) -> None:
        # As the local trainer: non-finite J, or J past DIVERGENCE_FACTOR times its start.
        if self.rows:
            limit = DIVERGENCE_FACTOR * max(self.rows[0]["objective"], self.grid.mean_square)
            if math.isfinite(value) and value <= limit:
                return
        elif math.isfinite(value):
            return
        raise DivergenceError(
            f"{self.name} diverged at epoch {epoch} (objective {value:.3g}) with "
            f"lr={self.lr:g}: try a smaller --lr, e.g. {self.lr / 10:g}"
        )

    # -- the solvers ----------------------------------------------------------------------

    def _evaluate(self) -> tuple[float, float]:
        items = [self.client.submit(Side.factors_only, item, pure=False) for item in self.items]
        futs = [
            self.client.submit(
                evaluate_stripe,
                self.grid.stripes[a],
                self.users[a],
                items,
                self.mu,
                self.use_bias,
                self.params.reg,
                self.params.reg_bias,
                workers=[owner],
                allow_other_workers=False,
                pure=False,
            )
            for a, owner in enumerate(self.grid.owners)
        ]
        parts = engine.gather(self.client, futs, self.grid.owners, self.what)
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    def _pass(self, gradient: bool) -> tuple[float, float]:
        p = dbgd.submit_pass(
            self.client, self.grid, self.users, self.items[0], self.objective, gradient
        )
        self.grads = p if gradient else None
        parts = engine.gather(self.client, p.scores, self.grid.owners, self.what)
        return sum(s[0] for s in parts), sum(s[1] for s in parts)

    def _bgd_epoch(self, index: int, last: bool) -> tuple[float, float]:
        if self.grads is None:  # resumed: the gradient at the checkpoint is not known yet
            self._pass(gradient=True)
        lr = epoch_lr(self.lr, self.optimizer, self.params.decay, index)
        hyper = self.opt.hyper(lr, self.params, self.dtype)
        self.users, item = dbgd.submit_step(
            self.client,
            self.grid,
            self.users,
            self.items[0],
            self.grads,
            self.opt.code,
            hyper,
            self.use_bias,
        )
        self.items = [item]
        return self._pass(gradient=not last)

    # -- state ----------------------------------------------------------------------------

    def gather_factors(self) -> Factors:
        """The current factors in ID-map order (gathered from the workers)."""
        return self._gather()[0]

    def _gather(self) -> tuple[Factors, OptimizerState]:
        needed = self.grid.owners
        users = engine.gather(self.client, self.users, needed, self.what)
        items = engine.gather(self.client, self.items, needed, self.what)
        user = Side.join(users, self.user_members, self.grid.n_users)
        item = Side.join(items, self.item_members, self.grid.n_items)
        factors = Factors(user.X, item.X, user.b, item.b, self.mu, self.use_bias)
        state = (user.X1, user.X2, item.X1, item.X2, user.b1, user.b2, item.b1, item.b2)
        return factors, OptimizerState(self.opt.code, state, (user.t, item.t))

    def _checkpoint(self, epoch: int) -> None:
        factors, opt = self._gather()
        ck = ckpt.Checkpoint(
            epoch,
            factors,
            opt,
            self.history(),
            self.grid.user_map,
            self.grid.item_map,
            self.settings,
        )
        path = ckpt.save_checkpoint(self.checkpoint_dir, ck)
        self.last_checkpoint = epoch
        logger.info("checkpoint of epoch %d written to %s", epoch, path)

    def history(self) -> pd.DataFrame:
        """The history table, with the local trainer's columns."""
        return pd.DataFrame(self.rows, columns=list(self.rows[0]))


def _seen(
    client: Client, grid: Grid, what: Callable[[], str]
) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """The CSR of the items each user rated, built stripe by stripe from the workers."""
    lay = grid.layout
    item_order = client.scatter(lay.item_order, broadcast=True)
    futs: list[Future] = [
        client.submit(_stripe_seen, s, item_order, lay.d_cols, workers=[w])
        for s, w in zip(grid.stripes, grid.owners, strict=True)
    ]
    counts = np.zeros(grid.n_users, dtype=np.int64)
    parts = []
    for a, fut in enumerate(futs):
        users, items = engine.gather(client, fut, grid.owners, what)
        members = lay.user_members(a)
        local = np.bincount(users, minlength=len(members))
        counts[members] = local
        parts.append((members, users, items, local))
    indptr = np.zeros(grid.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(indptr[-1], dtype=np.int32)
    for members, users, items, local in parts:
        start_local = np.cumsum(local) - local
        offset = np.arange(len(users)) - start_local[users]
        indices[indptr[members[users]] + offset] = items
    return indptr, indices


def _stripe_seen(
    stripe: Any, item_order: NDArray[np.int64], d_cols: int
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """(local users, items) of a stripe's ratings, by user and then item index."""
    users = np.concatenate([blk.users for blk in stripe.blocks])
    ranks = np.concatenate(
        [blk.items.astype(np.int64) * d_cols + b for b, blk in enumerate(stripe.blocks)]
    )
    items = item_order[ranks].astype(np.int32)
    order = np.lexsort((items, users))
    return users[order], items[order]
