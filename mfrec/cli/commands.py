"""Where each top-level command lives: (module, attribute). Each module imports the library
lazily inside its command functions, so `mfrec --help` stays instant."""

from __future__ import annotations

COMMANDS: list[tuple[str, str]] = [
    ("mfrec.cli.info_cmd", "info"),
    ("mfrec.cli.split_cmd", "split"),
    ("mfrec.cli.data_cmd", "data"),
    ("mfrec.cli.train_cmd", "train"),
    ("mfrec.cli.compare_cmd", "compare"),
]
