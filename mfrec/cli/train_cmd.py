"""`mfrec train`: fit a model on a ratings file and save it."""

from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mfrec.cli.app import CliError
from mfrec.cli.options import ratings_options

# The solver, optimizer and dtype names live with the shared model options; re-exported.
from mfrec.cli.train_options import DTYPE_NAMES as DTYPE_NAMES
from mfrec.cli.train_options import OPTIMIZER_NAMES as OPTIMIZER_NAMES
from mfrec.cli.train_options import SOLVER_NAMES as SOLVER_NAMES
from mfrec.cli.train_options import model_options, option_message, params_file_option

if TYPE_CHECKING:
    from mfrec.model.estimator import MatrixFactorization
    from mfrec.ratings.ratingdata import RatingData
    from mfrec.training.trainer import History

ENGINE_NAMES = ("local", "dask")
# Options of --engine dask, as the command receives them.
_CLUSTER_OPTIONS = ("scheduler", "n_workers", "checkpoint_dir", "checkpoint_every", "resume")


@click.command("train")
@click.argument("ratings")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Model file to write (.npz).",
)
@model_options
@params_file_option
@click.option(
    "--validation",
    metavar="FRACTION|FILE",
    default=None,
    help="Score a validation set after each epoch: a fraction (0 < f < 1) of the ratings "
    "held out at random, or a ratings file read with the same loader options.",
)
@click.option(
    "--patience",
    type=int,
    default=None,
    metavar="N",
    help="Stop when validation RMSE has not improved for N epochs; keep the best epoch.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed; the same seed, data and options give the same model.",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    metavar="N",
    help="Threads for training; sgd, bgd and als give the same model whatever N.  "
    "[default: all cores, or NUMBA_NUM_THREADS when set]",
)
@click.option(
    "--history",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the per-epoch history (objective, RMSEs, seconds) as CSV.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--engine",
    type=click.Choice(ENGINE_NAMES),
    default="local",
    show_default=True,
    help="local: train in this process. dask: train on a Dask cluster (pip install "
    "'mfrec[dask]'); RATINGS may then also be a directory, a glob or a URL of CSV or Parquet "
    "files. sgd and minibatch run as DSGD, bgd as distributed gradient steps.",
)
@click.option(
    "--scheduler",
    metavar="ADDR",
    default=None,
    help="With --engine dask: the Dask scheduler to train on, e.g. tcp://HOST:8786. "
    "Default: start a local cluster.",
)
@click.option(
    "--n-workers",
    type=int,
    default=None,
    metavar="N",
    help="With --engine dask and no --scheduler: workers of the local cluster.  "
    "[default: one per core]",
)
@click.option(
    "--checkpoint-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --engine dask: save the training state in this folder every "
    "--checkpoint-every epochs.",
)
@click.option(
    "--checkpoint-every",
    type=int,
    default=None,
    metavar="N",
    help="Epochs between checkpoints.  [default: 1]",
)
@click.option(
    "--resume",
    is_flag=True,
    help="With --engine dask: continue from the checkpoint in --checkpoint-dir (same data "
    "and options; --epochs may be raised).",
)
@ratings_options
def train(
    ratings: str,
    output: Path,
    solver: str,
    validation: str | None,
    no_bias: bool,
    history: Path | None,
    quiet: bool,
    **options: Any,
) -> None:
    """Train a matrix-factorization model on RATINGS and save it to OUTPUT.

    Options left unset take the solver's defaults. A progress bar on stderr shows each
    epoch's objective and RMSEs (when stderr is a terminal and without --quiet). Ends with
    one line on stdout: solver, epochs run, train (and validation) RMSE and seconds.
    """
    from mfrec.cli.options import load_from_options, pop_loader_options
    from mfrec.errors import ParameterError
    from mfrec.model.estimator import MatrixFactorization

    load_options = pop_loader_options(options)
    engine = options.pop("engine")
    cluster = {key: options.pop(key) for key in _CLUSTER_OPTIONS}
    if engine == "local":
        _local_only(cluster)
        data = load_from_options(ratings, **load_options)
        held_out = _validation(validation, load_options)
    elif validation is not None:
        raise CliError("--validation: not available with --engine dask", 2)
    params = {k: v for k, v in options.items() if v is not None and v is not False}
    model = MatrixFactorization(solver, use_bias=not no_bias, progress=not quiet, **params)
    start = time.perf_counter()
    try:
        if engine == "local":
            model.fit(data, validation=held_out)
        else:
            _fit_dask(model, ratings, load_options, cluster)
    except ParameterError as exc:
        raise CliError(option_message(exc, validation), 2) from exc
    seconds = time.perf_counter() - start
    model.save(output)
    if history is not None:
        _write_history(history, model.history_data_)
    click.echo(_summary(model, seconds))


def _local_only(cluster: dict[str, Any]) -> None:
    """CliError for a cluster option given without --engine dask."""
    for key, value in cluster.items():
        if value not in (None, False):
            raise CliError(f"--{key.replace('_', '-')}: needs --engine dask", 2)


def _fit_dask(
    model: MatrixFactorization, ratings: str, load_options: dict[str, Any], cluster: dict
) -> None:
    """Fit `model` on a Dask cluster (`mfrec.distributed.fit.fit_dask`)."""
    from mfrec.distributed.engine import require_dask

    require_dask()
    from mfrec.distributed.fit import fit_dask
    from mfrec.ratings.load import parse_scale

    scale = load_options.pop("scale", None)
    if cluster["checkpoint_every"] is None:
        cluster["checkpoint_every"] = 1
    fit_dask(
        model,
        ratings,
        scale=parse_scale(scale) if scale is not None else None,
        **load_options,
        **cluster,
    )


def _validation(value: str | None, load_options: dict[str, Any]) -> float | RatingData | None:
    """--validation as a fraction, or the ratings of the file it names."""
    if value is None:
        return None
    try:
        fraction = float(value)
    except ValueError:
        from mfrec.cli.options import load_from_options

        return load_from_options(value, **load_options)
    if not 0.0 < fraction < 1.0:
        raise CliError(f"--validation {value!r}: a fraction must be between 0 and 1", 2)
    return fraction


def _write_history(path: Path, history: History) -> None:
    """The history as CSV, exactly as ``DataFrame.to_csv(index=False)`` writes it."""
    from mfrec.utils.atomicfile import atomic_open

    columns = [values.tolist() for values in history.columns.values()]
    with atomic_open(path, newline="") as fh:
        # pandas ends lines with os.linesep and writes NaN as an empty field; repr of a Python
        # float is the shortest round trip, as pandas writes a float64.
        writer = csv.writer(fh, lineterminator=os.linesep)
        writer.writerow(history.columns)
        writer.writerows(
            ["" if isinstance(v, float) and math.isnan(v) else v for v in row]
            for row in zip(*columns, strict=True)
        )


def _summary(model: MatrixFactorization, seconds: float) -> str:
    epochs = f"{model.n_epochs_} epochs"
    if model.stop_reason_ == "patience":
        epochs += f" (early stop, best {model.best_epoch_})"
    line = f"{model.solver}: {epochs}, train RMSE {model.train_rmse_:.4f}"
    if "validation_rmse" in model.history_data_.columns:
        line += f", validation RMSE {model.validation_rmse_:.4f}"
    return line + f", {seconds:.2f} s"
