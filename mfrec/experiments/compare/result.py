"""What `compare` returns, `Comparison`: the curves, the measures and the words, and the files
they are written to (curves.csv, summary.json, convergence.png, report.md)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mfrec.experiments.compare.config import SUMMARY_VERSION, TARGET_TOLERANCE, Run, Setup
from mfrec.experiments.compare.plot import convergence_figure, save_figure
from mfrec.experiments.compare.report import report_markdown, summary_table
from mfrec.utils.atomicfile import atomic_open

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(eq=False)
class Comparison:
    """What `compare` returns: the curves, the measures and the words, for notebooks and files.

    Attributes
    ----------
    runs
        The configurations, in order, with the learning rates used.
    curves
        One row per run, repeat and epoch (`CURVE_COLUMNS`); epoch 0 is the shared start.
        ``seconds`` is cumulative solver time, ``updates`` cumulative parameter updates.
    results
        One row per run and repeat: the `MEASURES` of that curve, plus ``seed`` and
        ``diverged_epoch`` (NaN unless it diverged).
    summary
        One row per run: its configuration, each measure's mean over repeats and, with
        ``_sd``, its standard deviation; ``reached`` counts the repeats that got within
        `TARGET_TOLERANCE` of `best_rmse`, ``diverged`` those that diverged.
    lr_search
        The learning-rate trials (`SEARCH_COLUMNS`): run, stage (``short`` or ``full``), lr,
        epochs, seconds, the lowest validation_rmse, status (``ok``; ``unstable``: J rose in
        some epoch; ``diverged``) and whether it was chosen.
    setup
        What every run shared.
    best_rmse, target_rmse
        The lowest validation RMSE of any run and repeat, and that times
        1 + `TARGET_TOLERANCE`: the line a run must cross to count as converged.
    findings
        Sentences drawn from the figures: fastest per epoch and per second, lowest RMSE, ...
    """

    runs: tuple[Run, ...]
    curves: pd.DataFrame
    results: pd.DataFrame
    summary: pd.DataFrame
    lr_search: pd.DataFrame
    setup: Setup
    best_rmse: float
    target_rmse: float
    findings: list[str] = field(default_factory=list)

    def table(self, markdown: bool = False) -> str:
        """The summary table as aligned text (for a terminal) or as Markdown."""
        return summary_table(self, markdown)

    def report(self, figure: str | None = "convergence.png") -> str:
        """The Markdown report (report.md); `figure` is the plot's path relative to it."""
        return report_markdown(self, figure)

    def to_dict(self) -> dict[str, Any]:
        """The summary as a JSON-able dict (summary.json); missing values are None."""
        return {
            "version": SUMMARY_VERSION,
            "setup": self.setup.to_dict(),
            "target_tolerance": TARGET_TOLERANCE,
            "best_validation_rmse": self.best_rmse,
            "target_validation_rmse": self.target_rmse,
            "runs": _records(self.summary),
            "repeats": _records(self.results),
            "lr_search": _records(self.lr_search),
            "findings": self.findings,
        }

    def figure(self) -> Figure:
        """The convergence figure (a matplotlib Figure, drawn without pyplot)."""
        return convergence_figure(self)

    def write(self, folder: str | os.PathLike[str]) -> dict[str, Path]:
        """Write curves.csv, summary.json, convergence.png and report.md into `folder`.

        Each file is written atomically; the report comes last, so it never points at a
        missing plot. Returns the paths by kind (``curves``, ``summary``, ``plot``,
        ``report``).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "curves": folder / "curves.csv",
            "summary": folder / "summary.json",
            "plot": folder / "convergence.png",
            "report": folder / "report.md",
        }
        with atomic_open(paths["curves"], newline="") as fh:
            self.curves.to_csv(fh, index=False)
        with atomic_open(paths["summary"]) as fh:
            json.dump(self.to_dict(), fh, indent=2, allow_nan=False)
            fh.write("\n")
        save_figure(self.figure(), paths["plot"])
        with atomic_open(paths["report"]) as fh:
            fh.write(self.report(paths["plot"].name))
        return paths

    def _repr_markdown_(self) -> str:
        return self.table(markdown=True) + "\n\n" + "\n".join(f"- {s}" for s in self.findings)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values; NaN becomes None (JSON has no NaN)."""
    out = []
    for row in frame.to_dict("records"):
        clean = {}
        for key, value in row.items():
            if value is pd.NA:
                value = None
            elif isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            clean[key] = value
        out.append(clean)
    return out
