"""Model options shared by `mfrec train`, `mfrec cv` and `mfrec tune`, and ``--params FILE``.

`model_options` adds one option per estimator hyperparameter; `estimator_params` turns what
the command received into `mfrec.model.estimator.MatrixFactorization` keyword arguments;
`option_message` words a ParameterError in terms of those options; `params_file_option`
reads a JSON file of parameters (as ``mfrec tune --best-params`` writes) whose values become
the options' defaults, so that options given on the command line still win.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from mfrec.errors import ParameterError

# Kept in step with mfrec.training.solvers.SOLVERS, mfrec.training.optimizers.OPTIMIZERS and the
# estimator's
# defaults by tests/cli/test_train_cmd.py; listed here so that building the CLI stays cheap.
SOLVER_NAMES = ("sgd", "bgd", "minibatch", "als")
OPTIMIZER_NAMES = ("constant", "decay", "adagrad", "momentum", "adam")
DTYPE_NAMES = ("float32", "float64")
# Estimator parameters whose option is not simply --<name with dashes>.
_OPTION_NAMES = {"use_bias": "--no-bias"}
# The keyword arguments `model_options` adds, as the command receives them.
MODEL_KEYS = (
    "solver", "factors", "epochs", "lr", "reg", "reg_bias", "batch_size", "optimizer", "decay",
    "momentum", "line_search", "no_bias", "init_std", "dtype",
)  # fmt: skip


def model_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the estimator's hyperparameter options (--solver ... --dtype) to a command; the
    command receives them as keyword arguments (`MODEL_KEYS`), see `estimator_params`."""
    options = [
        click.option(
            "--solver",
            type=click.Choice(SOLVER_NAMES),
            default="sgd",
            show_default=True,
            help="sgd: one rating at a time; bgd: full-batch gradient descent; minibatch: "
            "batches of --batch-size ratings; als: alternating least squares.",
        ),
        click.option(
            "--factors", type=int, default=None, help="Latent dimensions.  [default: 100]"
        ),
        click.option(
            "--epochs", type=int, default=None, help="Passes over the data.  [default: solver's]"
        ),
        click.option("--lr", type=float, default=None, help="Learning rate.  [default: solver's]"),
        click.option(
            "--reg", type=float, default=None, help="L2 penalty on the factors.  [default: 0.1]"
        ),
        click.option(
            "--reg-bias",
            type=float,
            default=None,
            help="L2 penalty on the biases.  [default: 0.05]",
        ),
        click.option(
            "--batch-size",
            type=int,
            default=None,
            help="Ratings per batch (minibatch).  [default: 1024]",
        ),
        click.option(
            "--optimizer",
            type=click.Choice(OPTIMIZER_NAMES),
            default=None,
            help="How gradients become steps.  [default: solver's]",
        ),
        click.option(
            "--decay",
            type=float,
            default=None,
            help="lr / (1 + decay * epoch) with --optimizer decay.  [default: 0.4]",
        ),
        click.option(
            "--momentum",
            type=float,
            default=None,
            help="Momentum (and adam's beta1), in [0, 1).  [default: 0.9]",
        ),
        click.option("--line-search", is_flag=True, help="Backtracking line search on J (bgd)."),
        click.option("--no-bias", is_flag=True, help="No mean and biases: r̂ = p_u·q_i."),
        click.option(
            "--init-std",
            type=float,
            default=None,
            help="Standard deviation of the random starting factors.  [default: 0.05]",
        ),
        click.option(
            "--dtype",
            type=click.Choice(DTYPE_NAMES),
            default="float32",
            show_default=True,
            help="Precision of the factors and the arithmetic.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def estimator_params(options: dict[str, Any]) -> dict[str, Any]:
    """Remove the `model_options` from a command's keyword arguments and return them as
    estimator parameters: unset options left out, --no-bias as ``use_bias=False``."""
    given = {key: options.pop(key) for key in MODEL_KEYS if key in options}
    params = {k: v for k, v in given.items() if v is not None and v is not False}
    if params.pop("no_bias", False):
        params["use_bias"] = False
    return params


def option_message(exc: ParameterError, validation: str | None = None) -> str:
    """A ParameterError in terms of the command's options (--reg-bias, not reg_bias)."""
    option = _OPTION_NAMES.get(exc.param, "--" + exc.param.replace("_", "-"))
    if exc.param == "validation":
        return f"{option} {validation!r}: {exc.reason}"
    if isinstance(exc.value, bool):  # a flag: its value says nothing
        return f"{option}: {exc.reason}"
    return f"{option} {exc.value!r}: {exc.reason}"


def params_file_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--params FILE``: a JSON object of estimator parameters whose values become the
    defaults of the command's options (options on the command line override them)."""
    return click.option(
        "--params",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        is_eager=True,
        expose_value=False,
        callback=_apply_params_file,
        help="JSON file of parameters (as `mfrec tune --best-params` writes) used as the "
        "defaults of the options above; options given here override it.",
    )(func)


def _apply_params_file(ctx: click.Context, param: click.Parameter, path: Path | None) -> None:
    """Make the file's values the defaults of the matching options.

    Eager, so it runs before the other options take their values; those then look in
    ``ctx.default_map`` before their own defaults, and a value on the command line wins.
    """
    if path is None:
        return
    from mfrec.cli.app import CliError
    from mfrec.experiments.paramsfile import read_params

    options = {p.name: p for p in ctx.command.params if isinstance(p, click.Option)}
    defaults = dict(ctx.default_map or {})
    for key, value in read_params(path).items():
        name = "no_bias" if key == "use_bias" else key
        if name not in options or name == "params":
            raise CliError(
                f"{path}: parameter {key!r} has no option in `mfrec {ctx.command.name}`", 2
            )
        if name == "no_bias":
            if not isinstance(value, bool):
                raise CliError(f"{path}: use_bias={value!r}: must be true or false", 2)
            value = not value
        try:
            defaults[name] = options[name].type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise CliError(f"{path}: {key}={value!r}: {exc.message}", 2) from None
    ctx.default_map = defaults
