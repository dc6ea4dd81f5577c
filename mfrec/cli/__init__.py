"""The mfrec command line: parse, call the library, print. Library imports stay lazy."""

from __future__ import annotations

from mfrec.cli.app import cli


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="mfrec")


__all__ = ["cli", "main"]
