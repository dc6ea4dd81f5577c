"""The mfrec command line: parse, call the library, print. Library imports stay lazy."""

from __future__ import annotations

import gc

from mfrec.cli.app import cli


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="mfrec")
    finally:
        # The process ends here: the collector need not walk numba's objects once more
        # while Python shuts down (0.1-0.2 s after training).
        gc.freeze()


__all__ = ["cli", "main"]
