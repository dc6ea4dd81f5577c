"""Where each top-level command lives: (module, attribute). Each module imports the library
lazily inside its command functions, so `mfrec --help` stays instant."""

from __future__ import annotations

COMMANDS: list[tuple[str, str]] = [
    ("mfrec.cli.info_cmd", "info"),
    ("mfrec.cli.split_cmd", "split"),
    ("mfrec.cli.data_cmd", "data"),
    ("mfrec.cli.train_cmd", "train"),
    ("mfrec.cli.predict_cmd", "predict"),
    ("mfrec.cli.recommend_cmd", "recommend"),
    ("mfrec.cli.recommend_cmd", "similar"),
    ("mfrec.cli.evaluate_cmd", "evaluate"),
    ("mfrec.cli.compare_cmd", "compare"),
    ("mfrec.cli.cv_cmd", "cv"),
    ("mfrec.cli.tune_cmd", "tune"),
]
