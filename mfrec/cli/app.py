"""The `mfrec` command group and the one place library errors become exit codes."""

from __future__ import annotations

import logging

import click

from mfrec.errors import MfrecError


class CliError(click.ClickException):
    """A one-line ``Error: ...`` with the exit code of the library error behind it."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class MfrecGroup(click.Group):
    """Click group that turns library exceptions into one-line errors unless --debug is on."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.meta.get("mfrec.debug"):
                raise
            raise _as_cli_error(exc) from exc


def _as_cli_error(exc: Exception) -> CliError:
    if isinstance(exc, MfrecError):
        return CliError(str(exc), exc.exit_code)
    if isinstance(exc, OSError):
        name = f"{exc.filename}: " if exc.filename else ""
        return CliError(f"{name}{exc.strerror or exc}", 1)
    if isinstance(exc, MemoryError):
        return CliError("out of memory", 1)
    return CliError(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)", 1)


@click.group(cls=MfrecGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", count=True, help="Log timings to stderr (-vv for more).")
@click.version_option(package_name="mfrec")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """mfrec: matrix-factorization recommender.

    Train on a ratings file, predict, recommend, evaluate, and compare full-batch,
    stochastic and mini-batch gradient descent on your own data.
    """
    ctx.meta["mfrec.debug"] = debug
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(name)s: %(message)s",
        )


def _register() -> None:
    # Command modules import the library lazily inside their functions, so this stays cheap.
    import importlib

    from mfrec.cli.commands import COMMANDS

    for module, attr in COMMANDS:
        cli.add_command(getattr(importlib.import_module(module), attr))


_register()
