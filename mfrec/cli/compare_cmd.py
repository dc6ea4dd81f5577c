"""`mfrec compare`: full-batch vs stochastic vs mini-batch gradient descent at equal cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mfrec.cli.app import CliError
from mfrec.cli.options import ratings_options
from mfrec.cli.train_options import DTYPE_NAMES, OPTIMIZER_NAMES

if TYPE_CHECKING:
    from mfrec.errors import ParameterError

LR_SYNTAX = "expected NAME=VALUE pairs separated by commas, e.g. sgd=0.01,bgd=0.5"
# The library's defaults, shown in --help without importing it (kept in step by
# tests/cli/test_compare_cmd.py); options left unset are not passed, so the library decides.
DEFAULTS = {
    "solvers": "sgd,minibatch,bgd",
    "batch_sizes": "64,1024",
    "budget_epochs": 20,
    "test_size": 0.2,
    "factors": 100,
    "reg": 0.1,
    "reg_bias": 0.05,
}


@click.command("compare")
@click.argument("ratings")
@click.option(
    "-o",
    "--output",
    "report_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for report.md, convergence.png, curves.csv and summary.json.",
)
@click.option(
    "--solvers",
    default=None,
    metavar="NAME,...",
    help=f"Solvers to compare, in report order: sgd, minibatch, bgd, als.  "
    f"[default: {DEFAULTS['solvers']}]",
)
@click.option(
    "--batch-sizes",
    default=None,
    metavar="N,...",
    help=f"One minibatch run per batch size.  [default: {DEFAULTS['batch_sizes']}]",
)
@click.option(
    "--budget-epochs",
    type=int,
    default=None,
    metavar="N",
    help=f"Equal cost in passes over the training data.  [default: {DEFAULTS['budget_epochs']}]",
)
@click.option(
    "--budget-seconds",
    type=float,
    default=None,
    metavar="S",
    help="Equal cost in seconds of solver time (evaluation excluded) instead of epochs.",
)
@click.option(
    "--test-size",
    type=float,
    default=None,
    help="Fraction of the ratings held out at random for validation.  "
    f"[default: {DEFAULTS['test_size']}]",
)
@click.option(
    "--validation",
    default=None,
    metavar="FILE",
    help="Validate on this ratings file instead (read with the same loader options).",
)
@click.option(
    "--factors",
    type=int,
    default=None,
    help=f"Latent dimensions.  [default: {DEFAULTS['factors']}]",
)
@click.option(
    "--reg", type=float, default=None, help=f"L2 penalty on factors.  [default: {DEFAULTS['reg']}]"
)
@click.option(
    "--reg-bias",
    type=float,
    default=None,
    help=f"L2 penalty on biases.  [default: {DEFAULTS['reg_bias']}]",
)
@click.option(
    "--optimizer",
    type=click.Choice(OPTIMIZER_NAMES),
    default="constant",
    show_default=True,
    help="How every gradient solver turns gradients into steps (constant: x -= lr*g).",
)
@click.option(
    "--lr",
    default=None,
    metavar="NAME=VALUE,...",
    help="Learning rates by solver (sgd=0.01) or run (minibatch-64=2); the others are "
    "chosen by a search on the validation part.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the split and of repeat 1."
)
@click.option(
    "--repeats",
    type=int,
    default=1,
    show_default=True,
    help="Runs of each configuration with seeds SEED, SEED+1, ...: mean ± spread.",
)
@click.option(
    "--dtype",
    type=click.Choice(DTYPE_NAMES),
    default="float32",
    show_default=True,
    help="Precision of the factors and the arithmetic.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="What stdout gets: the table and findings, the summary as CSV, or summary.json.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no file list on stderr.")
@ratings_options
def compare(
    ratings: str,
    report_dir: Path,
    solvers: str | None,
    batch_sizes: str | None,
    validation: str | None,
    lr: str | None,
    fmt: str,
    quiet: bool,
    **options: Any,
) -> None:
    """Compare SGD, mini-batch and full-batch gradient descent on RATINGS at equal cost.

    Every run trains on the same split from the same starting factors on the same
    objective; only the solver, its batch size and its learning rate differ. Learning
    rates not given with --lr are chosen by a short search on the validation part, and
    reported. Every run gets the same budget, in epochs or in seconds.

    Writes REPORT_DIR/report.md (table and findings), convergence.png (objective and
    validation RMSE against epochs and seconds), curves.csv (one row per run, repeat and
    epoch) and summary.json, and prints the table and findings.
    """
    from mfrec.cli.options import load_from_options, pop_loader_options
    from mfrec.errors import ParameterError
    from mfrec.experiments.compare import compare as run_compare

    load_options = pop_loader_options(options)
    given = {k: v for k, v in options.items() if v is not None}
    if solvers is not None:
        given["solvers"] = [s.strip() for s in solvers.split(",") if s.strip()]
    if batch_sizes is not None:
        given["batch_sizes"] = _int_list("--batch-sizes", batch_sizes)
    if lr is not None:
        given["lr"] = parse_lr(lr)
    data = load_from_options(ratings, **load_options)
    if validation is not None:
        given["validation"] = load_from_options(validation, **load_options)
    try:
        result = run_compare(data, progress=not quiet, **given)
    except ParameterError as exc:
        raise CliError(_option_message(exc), 2) from exc
    paths = result.write(report_dir)
    if fmt == "csv":
        click.echo(result.summary.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    else:
        click.echo(result.table())
        click.echo()
        for sentence in result.findings:
            click.echo(click.wrap_text(sentence, 100, initial_indent="- ", subsequent_indent="  "))
    if not quiet:
        click.echo(f"report: {paths['report']}", err=True)
        click.echo(f"plot:   {paths['plot']}", err=True)


def parse_lr(text: str) -> dict[str, float]:
    """``sgd=0.01,bgd=0.5`` as a dict; CliError (exit 2) naming what is wrong."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = (p.strip() for p in part.partition("="))
        if not sep or not name or not value:
            raise CliError(f"--lr {text!r}: {LR_SYNTAX}", 2)
        try:
            out[name] = float(value)
        except ValueError:
            raise CliError(f"--lr {text!r}: {value!r} is not a number", 2) from None
    return out


def _int_list(option: str, text: str) -> list[int]:
    out = []
    for part in (p.strip() for p in text.split(",")):
        try:
            out.append(int(part))
        except ValueError:
            raise CliError(f"{option} {text!r}: {part!r} is not an integer", 2) from None
    return out


def _option_message(exc: ParameterError) -> str:
    """A ParameterError in terms of the command's options (--budget-epochs, not budget_epochs).

    Names are quoted, numbers shown plainly, lists as the comma-separated text they came as.
    """
    option = "--" + exc.param.replace("_", "-")
    value = exc.value
    if isinstance(value, str):
        value = repr(value)
    elif isinstance(value, list):
        value = ",".join(map(str, value))
    elif isinstance(value, float):
        value = f"{value:g}"
    return f"{option} {value}: {exc.reason}"
