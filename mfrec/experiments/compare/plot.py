"""The convergence figure of a comparison, drawn with matplotlib's object API on Agg.

No pyplot: figures are built as `matplotlib.figure.Figure` objects and rendered by the Agg
canvas, so nothing touches global matplotlib state (a notebook's backend stays as it is) and
no display is needed. matplotlib is imported only when a figure is drawn.

Layout: a 2 x 2 grid, the objective J on top and validation RMSE below, against epochs on the
left and against seconds of solver time on the right. Colour follows the batch size along
the spectrum from SGD (one rating per step) to full-batch GD (all of them); ALS, which takes
no gradient steps, is a grey dashed reference. With repeats, the line is the mean over
repeats and the band spans their minimum to maximum.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mfrec.experiments.compare.config import TARGET_TOLERANCE
from mfrec.utils.atomicfile import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mfrec.experiments.compare.config import Run
    from mfrec.experiments.compare.result import Comparison

#: Figure size in inches and resolution: the PNG is WIDTH*DPI x HEIGHT*DPI pixels.
WIDTH, HEIGHT, DPI = 12.0, 8.0, 100
#: A time axis is logarithmic when its runs end more than this factor apart.
LOG_TIME_SPAN = 20.0
SGD_COLOR = "#0072B2"
BGD_COLOR = "#D55E00"
ALS_COLOR = "#666666"
MINIBATCH_COLORS = ("#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def convergence_figure(comparison: Comparison) -> Figure:
    """Objective and validation RMSE of every run against epochs and against seconds."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    c = comparison
    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    axes = fig.subplots(2, 2, sharey="row")
    colors = run_colors(c.runs)
    curves = {run.name: _mean_curve(c.curves, run.name) for run in c.runs}
    diverged = dict(zip(c.summary["run"], c.summary["diverged"] > 0, strict=True))

    for run in c.runs:
        mean, low, high = curves[run.name]
        style = {
            "color": colors[run.name],
            "lw": 2.0,
            "ls": "--" if run.solver == "als" else "-",
            "label": _legend_label(run, diverged[run.name]),
        }
        for row, column in enumerate(("objective", "validation_rmse")):
            for col, x in enumerate(("epoch", "seconds")):
                ax = axes[row, col]
                ax.plot(mean[x], mean[column], **style)
                if low is not None:
                    ax.fill_between(
                        mean[x], low[column], high[column], color=style["color"], alpha=0.15, lw=0
                    )
                if diverged[run.name]:
                    # Clipped: a blow-up beyond the top of the axes shows as the line leaving.
                    end = (mean[x].iloc[-1], mean[column].iloc[-1])
                    ax.plot(*end, "x", ms=9, mew=2.5, color=style["color"], zorder=3)
                if column == "validation_rmse":
                    best = int(np.argmin(mean[column].to_numpy()))
                    at_best = (mean[x].iloc[best], mean[column].iloc[best])
                    ax.plot(*at_best, "o", ms=6, mec="white", mew=1.0, color=style["color"],
                            zorder=3)  # fmt: skip
                style = {**style, "label": None}  # one legend entry per run

    healthy = [curves[name] for name, bad in diverged.items() if not bad]
    _dress(axes, c, healthy or list(curves.values()), list(curves.values()))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles += [
        Line2D([], [], ls="", marker="o", ms=6, color="black", mec="white"),
        Line2D([], [], ls=":", lw=1.0, color="black"),
    ]
    within = f"within {TARGET_TOLERANCE:.0%} of the best ({c.target_rmse:.4f})"
    labels += ["lowest validation RMSE of a run", within]
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(len(labels), 3),
        frameon=False,
        fontsize=10,
    )
    fig.suptitle(_title(c), fontsize=12)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Render `fig` to a PNG at `path` through the Agg canvas, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)


def run_colors(runs: tuple[Run, ...]) -> dict[str, str]:
    """A colour per run: blue for SGD, vermilion for full-batch GD, the mini-batch sizes in
    between in order of size, grey for ALS (Okabe-Ito colours, which stay distinguishable
    with the common colour-vision deficiencies)."""
    middle = itertools.cycle(MINIBATCH_COLORS)
    fixed = {"sgd": SGD_COLOR, "bgd": BGD_COLOR, "als": ALS_COLOR}
    by_size = sorted(runs, key=lambda r: math.inf if r.batch_size is None else r.batch_size)
    return {r.name: fixed[r.solver] if r.solver in fixed else next(middle) for r in by_size}


def _mean_curve(
    curves: pd.DataFrame, name: str
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Mean over repeats, epoch by epoch, and the min and max (None with one repeat).

    Only the epochs every repeat reached are averaged (a seconds budget or a divergence ends
    repeats at different epochs); the seconds axis uses the mean seconds of each epoch.
    """
    runs = curves[curves["run"] == name]
    by_epoch = runs.groupby("epoch")
    common = by_epoch["repeat"].count() == runs["repeat"].nunique()
    columns = ["epoch", "seconds", "objective", "validation_rmse"]
    mean = by_epoch[columns[1:]].mean()[common].reset_index()
    if runs["repeat"].nunique() == 1:
        return mean[columns], None, None
    low = by_epoch[columns[1:]].min()[common].reset_index()
    high = by_epoch[columns[1:]].max()[common].reset_index()
    return mean[columns], low[columns], high[columns]


def _dress(axes: np.ndarray, c: Comparison, healthy: list, every: list) -> None:
    """Scales, limits, labels, grid and the 1% target line.

    Limits follow the runs that did not diverge (`healthy`; all of them if none did): a
    blow-up leaves through the top instead of stretching the axes. The y axes start just
    above the highest value a run had after its first epoch, so the room goes to where the
    runs differ rather than to the common starting point.
    """
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    means = [m for m, _, _ in healthy]
    after_one = [m.iloc[min(1, len(m) - 1)] for m in means]
    j_low = min(m["objective"].min() for m in means)
    j_high = max(row["objective"] for row in after_one)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylim(j_low / 1.02, j_high * 1.04)
    for ax in axes[0]:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label(j_low, j_high)))
    r_high = max(row["validation_rmse"] for row in after_one)
    margin = 0.04 * max(r_high - c.best_rmse, 1e-3)
    axes[1, 0].set_ylim(c.best_rmse - margin, r_high + margin)

    ends = [m["seconds"].iloc[-1] for m in means]
    log_time = max(ends) / max(min(ends), 1e-9) > LOG_TIME_SPAN
    # Every curve starts at its setup time (row 0); on a log axis the left edge must hold them.
    starts = [m["seconds"].iloc[0] for m, _, _ in every]
    for ax in axes[:, 1]:
        if log_time:
            ax.set_xscale("log")
            ax.set_xlim(max(min(starts), 1e-6) / 1.2, max(ends) * 1.25)
        else:
            ax.set_xlim(0, max(ends) * 1.03)
    for ax in axes[:, 0]:
        # A little room on the right for the marker of a best at the last epoch.
        ax.set_xlim(0, max(m["epoch"].iloc[-1] for m in means) * 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    for ax in axes[1]:
        ax.axhline(c.target_rmse, color="black", lw=1.0, ls=":")

    axes[0, 0].set_ylabel("objective J on the training ratings (log scale)")
    axes[1, 0].set_ylabel("validation RMSE")
    axes[1, 0].set_xlabel("epochs (passes over the training ratings)")
    axes[1, 1].set_xlabel("seconds of solver time" + (" (log scale)" if log_time else ""))
    axes[0, 0].set_title("per epoch", fontsize=11)
    axes[0, 1].set_title("per second", fontsize=11)
    for ax in axes.flat:
        ax.grid(True, which="major", alpha=0.3)
        ax.tick_params(labelsize=9)
    for ax in axes[0]:
        ax.xaxis.set_minor_formatter(NullFormatter())


def _minor_label(low: float, high: float):
    """Label minor log ticks only when the axis spans less than a decade (else too busy)."""

    def label(value: float, _pos: int) -> str:
        return f"{value:g}" if high / low < 10 else ""

    return label


def _legend_label(run: Run, diverged: bool) -> str:
    lr = "" if run.lr is None else f", lr {run.lr:g}"
    return f"{run.label}{lr}" + (" — diverged (×)" if diverged else "")


def _title(c: Comparison) -> str:
    s = c.setup
    source = os.path.basename(s.source) if s.source else "ratings"
    repeats = f", mean of {s.repeats} repeats (band: min–max)" if s.repeats > 1 else ""
    steps = "plain gradient steps" if s.optimizer == "constant" else f"{s.optimizer} steps"
    return (
        f"{source}: {s.n_train:,} training and {s.n_validation:,} validation ratings\n"
        f"k = {s.factors}, λ = {s.reg:g}, {steps}, budget {s.budget.describe()} per run{repeats}"
    )
