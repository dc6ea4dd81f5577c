"""`mfrec info`: describe a ratings file or a model file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mfrec.cli.options import ratings_options

if TYPE_CHECKING:
    from mfrec.ratings.describe import Description

# Parameters whose None stands for a default chosen at fit time.
_SOLVER_DEFAULTS = ("factors", "epochs", "lr", "optimizer")
# How training ended, in words (`MatrixFactorization.stop_reason_`).
_STOP_REASONS = {
    "epochs": "all epochs ran",
    "patience": "early stop: validation RMSE stopped improving",
    "callback": "stopped by a callback",
    "from_factors": "not trained by mfrec",
}


@click.command("info")
@click.argument("path")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table for people, or JSON for scripts.",
)
@ratings_options
def info(path: str, fmt: str, **load_options: Any) -> None:
    """Describe the ratings in PATH, or the model in PATH when it is a model file.

    For a model (.npz written by `mfrec train`): solver, hyperparameters, data sizes, and
    the objective and RMSEs at the last epoch and at the kept (best) one.

    Prints the numbers of ratings, users and items, the density, the rating scale and
    histogram, quantiles of ratings per user and per item, and the timestamp range.
    PATH is a ratings file or the name of a fetched dataset (ml-100k); the loader
    options below apply as in `mfrec train`.
    """
    description = _describe(path, load_options)
    if fmt == "json":
        import json

        click.echo(json.dumps(description.to_dict(), indent=2))
    else:
        click.echo(description.to_text())


def _describe(path: str, load_options: dict[str, Any]) -> Description | ModelInfo:
    """The description of whatever PATH holds: the one place that tells kinds of file apart."""
    from mfrec.cli.options import load_from_options
    from mfrec.ratings.describe import describe

    if _is_npz(path):
        from mfrec.model.estimator import MatrixFactorization

        return ModelInfo(path, MatrixFactorization.load(path).describe())
    return describe(load_from_options(path, **load_options))


def _is_npz(path: str) -> bool:
    """A model file: named .npz, or a zip whose members are all .npy arrays (a zipped ratings
    file is not).

    Any such file goes to the model reader, which says so when it is not an mfrec model.
    """
    import zipfile
    from pathlib import Path

    if not Path(path).is_file():
        return False
    if path.lower().endswith(".npz"):
        return True
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return bool(names) and all(name.endswith(".npy") for name in names)


def _param_text(name: str, value: Any) -> str:
    """None means the solver's default for these, and "not used" for the rest."""
    if value is None:
        return "default" if name in _SOLVER_DEFAULTS else "none"
    return str(value)


class ModelInfo:
    """A model's `describe()` figures, shown like a ratings description."""

    def __init__(self, path: str, figures: dict[str, Any]):
        self.path = path
        self.figures = figures

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON-able values, with the file they came from."""
        return {"model": self.path, **self.figures}

    def to_text(self) -> str:
        """Key figures, the final and best history rows, then the hyperparameters."""
        import textwrap

        from mfrec.utils.formatting import aligned, label_row, number

        f = self.figures
        lo, hi = f["scale"]
        stop = _STOP_REASONS.get(f["stop_reason"], f["stop_reason"])
        seconds = "" if f["seconds"] is None else f", {f['seconds']:.2f} s"
        biases = "mean and biases" if f["use_bias"] else "no biases"
        lines = [
            label_row("model", self.path),
            label_row("solver", f["solver"]),
            label_row("factors", f"{f['factors']} ({f['dtype']}, {biases})"),
            label_row("users", f"{f['users']:,}"),
            label_row("items", f"{f['items']:,}"),
            label_row("ratings", f"{f['ratings']:,} (density {f['density']:.4%})"),
            label_row("rating scale", f"{number(lo)} .. {number(hi)}, mean {f['global_mean']:.4g}"),
            label_row("training", f"{f['epochs']} epochs ({stop}){seconds}, seed {f['seed']}"),
            label_row("kept epoch", str(f["best_epoch"])),
            "",
        ]
        labels = {"objective": "objective", "train_rmse": "train RMSE",
                  "validation_rmse": "validation RMSE"}  # fmt: skip
        rows = [["", "final", f"best (epoch {f['best_epoch']})"]]
        rows += [
            [labels[name], f"{value:.4f}", f"{f['best'][name]:.4f}"]
            for name, value in f["final"].items()
        ]
        lines += [aligned(rows), ""]
        params = [
            f"{name}={_param_text(name, value)}"
            for name, value in f["hyperparameters"].items()
            if name not in ("solver", "progress")
        ]
        lines.append(
            textwrap.fill(
                " ".join(params),
                width=88,
                initial_indent="hyperparameters ",
                subsequent_indent=" " * 16,
            )
        )
        return "\n".join(lines)
