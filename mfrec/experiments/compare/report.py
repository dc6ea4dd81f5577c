"""The words of a comparison: the findings read off its measures, the summary table (text for a
terminal, Markdown for the report) and the Markdown report."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mfrec.experiments.compare.config import LR_NONE, LR_SEARCH, TARGET_TOLERANCE, Setup
from mfrec.utils.formatting import markdown_table, text_table

if TYPE_CHECKING:
    from mfrec.experiments.compare.result import Comparison


def findings(c: Comparison) -> list[str]:
    """A few sentences read off the measures: who converged fastest per epoch and per second
    (and why they differ), who reached the lowest RMSE (and whether that beats the spread),
    who was still improving or past its best, who diverged, and what an epoch costs."""
    s = c.summary.set_index("run")
    labels = {r.name: r.label for r in c.runs}
    per_epoch = _ranked(s, "epochs_to_target")
    per_second = _ranked(s, "seconds_to_target")
    out = [
        _fastest(s, per_epoch, labels, "epochs_to_target", "Per epoch", c.setup),
        _fastest(s, per_second, labels, "seconds_to_target", "Per second of solver time", c.setup),
    ]
    if per_epoch and per_second and per_epoch[0] != per_second[0]:
        a, b = per_epoch[0], per_second[0]
        ratio = s.loc[a, "seconds_per_epoch"] / s.loc[b, "seconds_per_epoch"]
        out.append(
            f"The winners differ because an epoch of {labels[a]} takes {ratio:.3g} times as long "
            f"as one of {labels[b]}: {labels[b]} needs more passes, but cheaper ones."
        )
    out.append(_lowest(s, labels, c.setup.repeats))
    out += _trends(c, labels)
    out.append(_diverged(s, labels, c.results))
    out.append(_costs(s, labels, c.setup))
    return [sentence for sentence in out if sentence]


def _ranked(s: pd.DataFrame, measure: str) -> list[str]:
    """Runs that got within the target in some repeat: most often first, then fastest."""
    reached = s[s["reached"] > 0].sort_values(["reached", measure], ascending=[False, True])
    return list(reached.index)


def _fastest(s, ranked: list[str], labels, measure: str, how: str, setup: Setup) -> str:
    if not ranked:
        return ""
    fmt = _fmt_epochs if measure == "epochs_to_target" else _fmt_s
    first = ranked[0]
    text = (
        f"{how}, {labels[first]} was fastest: within {TARGET_TOLERANCE:.0%} of the best "
        f"validation RMSE after {fmt(s.loc[first, measure])}"
    )
    others = [f"{fmt(s.loc[n, measure])} for {labels[n]}" for n in ranked[1:]]
    if others:
        text += ", against " + _join(others)
    missing = [labels[n] for n in s.index if n not in ranked]
    if missing:
        text += f"; {_join(missing)} did not get there within {setup.budget.describe()}"
    return text + "."


def _lowest(s, labels, repeats: int) -> str:
    ranked = s.sort_values("best_validation_rmse")
    first = ranked.index[0]
    row = ranked.iloc[0]
    text = (
        f"The lowest validation RMSE was {labels[first]}'s {_fmt_rmse(row, repeats)} "
        f"(epoch {_fmt_number(row['best_epoch'])}, {_fmt_s(row['best_seconds'])})"
    )
    if len(ranked) > 1 and repeats > 1:
        second = ranked.iloc[1]
        gap = second["best_validation_rmse"] - row["best_validation_rmse"]
        spread = np.nansum([row["best_validation_rmse_sd"], second["best_validation_rmse_sd"]])
        verdict = (
            "more than the spread across repeats" if gap > spread else
            "within the spread across repeats, so the two cannot be told apart"
        )  # fmt: skip
        text += f"; {labels[ranked.index[1]]} trails by {gap:.4f}, {verdict}"
    return text + "."


def _trends(c: Comparison, labels: Mapping[str, str]) -> list[str]:
    """Runs still improving when the budget ran out, and runs past their best (repeat 1)."""
    improving, past_best = [], []
    first = c.results[c.results["repeat"] == 1].set_index("run")
    for run in c.runs:
        row = first.loc[run.name]
        if not math.isnan(row["diverged_epoch"]) or row["epochs"] < 2:
            continue
        h = c.curves[(c.curves["run"] == run.name) & (c.curves["repeat"] == 1)]
        rmse = h["validation_rmse"].to_numpy()
        rise = row["final_validation_rmse"] / row["best_validation_rmse"] - 1.0
        # Over the last tenth of the epochs (at least one): still falling noticeably?
        back = max(1, (len(rmse) - 1) // 10)
        fall = 1.0 - rmse[-1] / rmse[-1 - back]
        if rise > 0.005:
            past_best.append(
                f"{labels[run.name]} (best at epoch {int(row['best_epoch'])}, then up {rise:.1%})"
            )
        elif fall > 0.001:
            span = f"its last {back} epochs" if back > 1 else "its last epoch"
            improving.append(f"{labels[run.name]} (down {fall:.1%} over {span})")
    out = []
    if improving:
        out.append(
            f"Still improving when the budget ran out: {_join(improving)}; "
            "a larger budget would lower the RMSE further."
        )
    if past_best:
        out.append(
            f"Past the best: {_join(past_best)}. Validation RMSE rose again (overfitting, or "
            "steps too large to settle); `mfrec train --patience` keeps the best epoch."
        )
    return out


def _diverged(s, labels, results: pd.DataFrame) -> str:
    parts = []
    for name, row in s[s["diverged"] > 0].iterrows():
        epochs = results.loc[results["run"] == name, "diverged_epoch"].dropna()
        often = f" in {row['diverged']} of {row['repeats']} repeats" if row["repeats"] > 1 else ""
        parts.append(
            f"{labels[name]}{often}, at epoch {int(epochs.min())} with lr {row['lr']:g} "
            f"(try --lr {name}={row['lr'] / 10:g})"
        )
    return f"Diverged: {_join(parts)}." if parts else ""


def _costs(s, labels, setup: Setup) -> str:
    parts = [
        f"{labels[n]} {_fmt_count(r['updates_per_epoch'])} "
        f"update{'s' if r['updates_per_epoch'] != 1 else ''} in {_fmt_ms(r['seconds_per_epoch'])}"
        for n, r in s.iterrows()
        if not math.isnan(r["updates_per_epoch"])
    ]
    if not parts:
        return ""
    return f"One epoch over the {setup.n_train:,} training ratings: {_join(parts)}."


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# -- tables and the report -------------------------------------------------------------------


def summary_table(c: Comparison, markdown: bool = False) -> str:
    """The summary table as aligned text (for a terminal) or as Markdown."""
    headers, rows, align = _table_cells(c)
    if markdown:
        return markdown_table(headers, rows, align)
    return text_table(headers, rows, align)


def _fmt_mean(
    row: Mapping[str, Any], measure: str, fmt, repeats: int, spread: str = "{:.2g}"
) -> str:
    """The mean, and with repeats ± the standard deviation (`spread` formats it)."""
    text = fmt(row[measure])
    sd = row.get(measure + "_sd", math.nan)
    if repeats > 1 and not math.isnan(sd):
        text += " ± " + spread.format(sd)
    return text


def _fmt_rmse(row: Mapping[str, Any], repeats: int) -> str:
    return _fmt_mean(row, "best_validation_rmse", "{:.4f}".format, repeats, "{:.4f}")


def _fmt_epochs(value: float) -> str:
    if math.isnan(value):
        return "–"
    if float(value).is_integer():
        return f"{int(value)} epoch" + ("s" if value != 1 else "")
    return f"{value:.1f} epochs"


def _fmt_s(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3g} s"


def _fmt_ms(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def _fmt_count(value: float) -> str:
    if math.isnan(value):
        return "–"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _fmt_number(value: float) -> str:
    """An epoch count or mean: 12, or 12.3 for a mean over repeats."""
    if math.isnan(value):
        return "–"
    return f"{int(value)}" if float(value).is_integer() else f"{value:.1f}"


def _fmt_seconds(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3g}"


def _table_cells(c: Comparison) -> tuple[list[str], list[list[str]], str]:
    """Headers, rows of cell strings and per-column alignment (l/r) of the summary table."""
    headers = [
        "solver",
        "batch size",
        "lr",
        "best val RMSE",
        "epoch at best",
        "s at best",
        "epochs to 1%",
        "s to 1%",
        "updates/s",
        "diverged",
    ]
    repeats = c.setup.repeats
    rows = []
    for row in c.summary.to_dict("records"):
        if row["solver"] == "als":
            batch = "–"
        elif row["solver"] == "bgd":
            batch = f"{int(row['batch_size']):,} (all)"
        else:
            batch = f"{int(row['batch_size']):,}"
        if row["lr_source"] == LR_NONE:
            lr = "–"
        else:
            lr = f"{row['lr']:g}" + ("*" if row["lr_source"] == LR_SEARCH else "")
        rows.append(
            [
                row["solver"],
                batch,
                lr,
                _fmt_rmse(row, repeats),
                _fmt_mean(row, "best_epoch", _fmt_number, repeats),
                _fmt_mean(row, "best_seconds", _fmt_seconds, repeats),
                _reached(row, "epochs_to_target", _fmt_number, repeats),
                _reached(row, "seconds_to_target", _fmt_seconds, repeats),
                _fmt_count(row["updates_per_second"]),
                _diverged_cell(row, c.results),
            ]
        )
    return headers, rows, "lrlrrrrrrl"


def _reached(row: Mapping[str, Any], measure: str, fmt, repeats: int) -> str:
    if row["reached"] == 0:
        return "not reached"
    text = _fmt_mean(row, measure, fmt, repeats)
    if row["reached"] < repeats:
        text += f" ({row['reached']}/{repeats})"
    return text


def _diverged_cell(row: Mapping[str, Any], results: pd.DataFrame) -> str:
    if row["diverged"] == 0:
        return "no"
    epochs = results.loc[results["run"] == row["run"], "diverged_epoch"].dropna()
    text = f"yes, epoch {int(epochs.min())}"
    if row["repeats"] > 1:
        text += f" ({row['diverged']}/{row['repeats']})"
    return text


def report_markdown(c: Comparison, figure: str | None) -> str:
    """The Markdown report (report.md); `figure` is the plot's path relative to it."""
    s = c.setup
    where = f"`{s.source}`" if s.source else "the ratings"
    optimizer = (
        "plain gradient steps (x ← x − lr·g)"
        if s.optimizer == "constant"
        else f"the {s.optimizer} optimizer"
    )
    lines = [
        "# Solver comparison",
        "",
        f"Data: {where}, {s.n_ratings:,} ratings, {s.n_users:,} users and {s.n_items:,} items "
        f"in training; {s.n_train:,} training and {s.n_validation:,} validation ratings "
        f"({s.validation}).",
        "",
        f"Every run minimises the same objective J (k = {s.factors} factors, λ = {s.reg:g}, "
        f"λ_b = {s.reg_bias:g}, {s.dtype}) from the same starting P and Q, with {optimizer}; "
        "only the solver, its batch size and its learning rate differ. Budget: "
        f"{s.budget.describe()} per run. Repeats: {s.repeats} "
        f"(seed{'s' if s.repeats > 1 else ''} {_join(map(str, s.seeds))})"
        + ("; figures are mean ± standard deviation over the repeats." if s.repeats > 1 else "."),
        "",
        "## Results",
        "",
        summary_table(c, markdown=True),
        "",
        f'Best validation RMSE of any run: {c.best_rmse:.4f}; "1%" columns: epochs and '
        f"seconds until a run first got within {TARGET_TOLERANCE:.0%} of it "
        f"(RMSE ≤ {c.target_rmse:.4f}). Seconds are solver time (wall clock, evaluation "
        "excluded, kernels warmed up first). updates/s: parameter updates per second "
        "(one per rating for sgd, per batch for minibatch, per epoch for bgd, two "
        "half-steps per epoch for als).",
    ]
    if (c.summary["lr_source"] == LR_SEARCH).any():
        lines += ["", "\\* learning rate chosen by the search below."]
    lines += ["", "## What the curves say", ""]
    lines += [f"- {sentence}" for sentence in c.findings]
    if figure is not None:
        lines += ["", f"![Objective and validation RMSE against epochs and seconds]({figure})"]
    if not c.lr_search.empty:
        lines += ["", "## Learning-rate search", "", _search_text(c), "", _search_table(c)]
    lines += [
        "",
        "## Files",
        "",
        "- `curves.csv`: one row per run, repeat and epoch (epoch 0 is the shared start): "
        "seconds, updates, objective, train RMSE, validation RMSE.",
        "- `summary.json`: the setup, the table's measures per run and per repeat, the "
        "learning-rate trials and the sentences above.",
        "",
    ]
    return "\n".join(lines)


def _search_text(c: Comparison) -> str:
    return (
        "Each gradient run without a given rate climbed the grid 1, 2, 5 × 10^k with seed "
        f"{c.setup.seed}, scoring a trial by the lowest validation RMSE it reached. Stage "
        "`short`: from the solver's default (for plain steps, the linear scaling rule "
        f"0.02 × batch size), steps of ×10 with trials of {c.setup.search_budget.describe()}, "
        "to find the order of magnitude; a trial in which J rose between two epochs "
        "(unstable) does not count, as such a rate tends to blow up later. Stage `full`: "
        "steps of one grid point with trials of the whole budget "
        f"({c.setup.budget.describe()}), since the best rate for a short run is larger than "
        "for a long one. Diverged trials never count."
    )


def _search_table(c: Comparison) -> str:
    rows = [
        [
            t["run"],
            t["stage"],
            f"{t['lr']:g}",
            _fmt_number(t["epochs"]),
            f"{t['validation_rmse']:.4f}" if math.isfinite(t["validation_rmse"]) else "–",
            t["status"] + (" (chosen)" if t["chosen"] else ""),
        ]
        for t in c.lr_search.to_dict("records")
    ]
    headers = ["run", "stage", "lr", "epochs", "best val RMSE", "status"]
    return markdown_table(headers, rows, "llrrrl")
