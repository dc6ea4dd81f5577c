"""`mfrec train`: fit a model on a ratings file and save it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mfrec.cli.app import CliError
from mfrec.cli.options import ratings_options

if TYPE_CHECKING:
    from mfrec.data import RatingData
    from mfrec.errors import ParameterError
    from mfrec.model import MatrixFactorization

# Kept in step with mfrec.solvers.SOLVERS, mfrec.optimizers.OPTIMIZERS and the estimator's
# defaults by tests/test_cli_train.py; listed here so that building the CLI stays cheap.
SOLVER_NAMES = ("sgd", "bgd", "minibatch", "als")
OPTIMIZER_NAMES = ("constant", "decay", "adagrad", "momentum", "adam")
DTYPE_NAMES = ("float32", "float64")
# Estimator parameters whose option is not simply --<name with dashes>.
_OPTION_NAMES = {"use_bias": "--no-bias"}


@click.command("train")
@click.argument("ratings")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Model file to write (.npz).",
)
@click.option(
    "--solver",
    type=click.Choice(SOLVER_NAMES),
    default="sgd",
    show_default=True,
    help="sgd: one rating at a time; bgd: full-batch gradient descent; minibatch: batches "
    "of --batch-size ratings; als: alternating least squares.",
)
@click.option("--factors", type=int, default=None, help="Latent dimensions.  [default: 100]")
@click.option("--epochs", type=int, default=None, help="Passes over the data.  [default: solver's]")
@click.option("--lr", type=float, default=None, help="Learning rate.  [default: solver's]")
@click.option("--reg", type=float, default=None, help="L2 penalty on the factors.  [default: 0.1]")
@click.option(
    "--reg-bias", type=float, default=None, help="L2 penalty on the biases.  [default: 0.05]"
)
@click.option(
    "--batch-size", type=int, default=None, help="Ratings per batch (minibatch).  [default: 1024]"
)
@click.option(
    "--optimizer",
    type=click.Choice(OPTIMIZER_NAMES),
    default=None,
    help="How gradients become steps.  [default: solver's]",
)
@click.option(
    "--decay", type=float, default=None, help="lr / (1 + decay * epoch) with --optimizer decay."
)
@click.option(
    "--momentum",
    type=float,
    default=None,
    help="Momentum (and adam's beta1), in [0, 1).  [default: 0.9]",
)
@click.option("--line-search", is_flag=True, help="Backtracking line search on J (bgd).")
@click.option("--no-bias", is_flag=True, help="No mean and biases: r̂ = p_u·q_i.")
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
    "--dtype",
    type=click.Choice(DTYPE_NAMES),
    default="float32",
    show_default=True,
    help="Precision of the factors and the arithmetic.",
)
@click.option(
    "--history",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the per-epoch history (objective, RMSEs, seconds) as CSV.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
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
    from mfrec.model import MatrixFactorization

    load_options = pop_loader_options(options)
    data = load_from_options(ratings, **load_options)
    held_out = _validation(validation, load_options)
    params = {k: v for k, v in options.items() if v is not None and v is not False}
    model = MatrixFactorization(solver, use_bias=not no_bias, progress=not quiet, **params)
    start = time.perf_counter()
    try:
        model.fit(data, validation=held_out)
    except ParameterError as exc:
        raise CliError(_option_message(exc, validation), 2) from exc
    seconds = time.perf_counter() - start
    model.save(output)
    if history is not None:
        from mfrec.atomic import atomic_open

        with atomic_open(history, newline="") as fh:
            model.history_.to_csv(fh, index=False)
    click.echo(_summary(model, seconds))


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


def _option_message(exc: ParameterError, validation: str | None) -> str:
    """A ParameterError in terms of the command's options (--reg-bias, not reg_bias)."""
    option = _OPTION_NAMES.get(exc.param, "--" + exc.param.replace("_", "-"))
    if exc.param == "validation":
        return f"{option} {validation!r}: {exc.reason}"
    if isinstance(exc.value, bool):  # a flag: its value says nothing
        return f"{option}: {exc.reason}"
    return f"{option} {exc.value!r}: {exc.reason}"


def _summary(model: MatrixFactorization, seconds: float) -> str:
    epochs = f"{model.n_epochs_} epochs"
    if model.stop_reason_ == "patience":
        epochs += f" (early stop, best {model.best_epoch_})"
    line = f"{model.solver}: {epochs}, train RMSE {model.train_rmse_:.4f}"
    if "validation_rmse" in model.history_:
        line += f", validation RMSE {model.validation_rmse_:.4f}"
    return line + f", {seconds:.2f} s"
