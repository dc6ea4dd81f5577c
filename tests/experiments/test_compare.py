"""mfrec.experiments.compare: equal-cost runs, consistent files, the learning-rate search, bad
input."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pandas as pd
import pytest

from mfrec.errors import ParameterError
from mfrec.experiments.compare import (
    CURVE_COLUMNS,
    SEARCH_COLUMNS,
    TARGET_TOLERANCE,
    Budget,
    Comparison,
    Run,
    compare,
    grid_lr,
    search_lr,
    start_lr,
)
from mfrec.experiments.compare.plot import DPI, HEIGHT, WIDTH, run_colors
from mfrec.ratings.ratingdata import RatingData
from mfrec.ratings.synth import synthesize

# Small enough for a comparison (search included) to take a fraction of a second.
SMALL = {"factors": 4, "budget_epochs": 8}
# Rates that suit `data` below, to skip the search where a test is not about it.
RATES = {"sgd": 0.02, "minibatch": 1.0, "bgd": 20.0}


@pytest.fixture(scope="module")
def data() -> RatingData:
    frame = synthesize(80, 50, 2000, seed=3).ratings
    return RatingData.from_ids(frame["user"], frame["item"], frame["rating"])


@pytest.fixture(scope="module")
def result(data) -> Comparison:
    return compare(data, **SMALL)


@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    return folder, result.write(folder)


def test_writes_the_four_files(written):
    folder, paths = written
    assert sorted(p.name for p in folder.iterdir()) == [
        "convergence.png",
        "curves.csv",
        "report.md",
        "summary.json",
    ]
    assert {k: p.name for k, p in paths.items()} == {
        "curves": "curves.csv",
        "summary": "summary.json",
        "plot": "convergence.png",
        "report": "report.md",
    }


def test_curves_csv_holds_every_epoch_of_every_run(result, written):
    curves = pd.read_csv(written[1]["curves"])
    assert list(curves.columns) == CURVE_COLUMNS
    pd.testing.assert_frame_equal(curves, result.curves, check_dtype=False)
    assert list(curves["run"].unique()) == ["sgd", "minibatch-64", "minibatch-1024", "bgd"]
    for _, run in curves.groupby("run"):
        assert list(run["epoch"]) == list(range(SMALL["budget_epochs"] + 1))
        assert run["seconds"].is_monotonic_increasing
        assert run["updates"].is_monotonic_increasing


def test_summary_json_matches_the_curves(result, written):
    summary = json.loads(written[1]["summary"].read_text())
    curves = pd.read_csv(written[1]["curves"])
    best = curves["validation_rmse"].min()
    assert summary["best_validation_rmse"] == pytest.approx(best, rel=1e-12)
    assert summary["target_validation_rmse"] == pytest.approx(best * (1 + TARGET_TOLERANCE))
    assert [r["run"] for r in summary["runs"]] == [r.name for r in result.runs]
    for run in summary["runs"]:
        h = curves[curves["run"] == run["run"]].reset_index(drop=True)
        at_best = h["validation_rmse"].idxmin()
        assert run["best_validation_rmse"] == pytest.approx(h["validation_rmse"][at_best])
        assert run["best_epoch"] == h["epoch"][at_best]
        assert run["best_seconds"] == pytest.approx(h["seconds"][at_best])
        hit = h[h["validation_rmse"] <= summary["target_validation_rmse"]]
        if hit.empty:
            assert run["epochs_to_target"] is None and run["reached"] == 0
        else:
            assert run["epochs_to_target"] == hit["epoch"].iloc[0]
            assert run["seconds_to_target"] == pytest.approx(hit["seconds"].iloc[0])
        spent = h["seconds"].iloc[-1] - h["seconds"].iloc[0]
        assert run["updates_per_second"] == pytest.approx(h["updates"].iloc[-1] / spent)
        assert run["diverged"] == 0
    # At least the run that set the best RMSE reached the target.
    assert max(r["reached"] for r in summary["runs"]) == 1
    assert summary["setup"]["budget"] == {"epochs": SMALL["budget_epochs"], "seconds": None}


def _markdown_rows(report: str) -> dict[str, dict[str, str]]:
    """The report's first table (the results), keyed by solver and batch size."""
    lines = report.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("| "))
    table = []
    for line in lines[start:]:
        if not line.startswith("| "):
            break
        table.append([c.strip() for c in line.strip("|").split("|")])
    header, rows = table[0], table[2:]
    return {r[0] + " " + r[1]: dict(zip(header, r, strict=True)) for r in rows}


def test_report_table_matches_the_curves(result, written):
    report = written[1]["report"].read_text()
    curves = pd.read_csv(written[1]["curves"])
    target = curves["validation_rmse"].min() * (1 + TARGET_TOLERANCE)
    rows = _markdown_rows(report)
    n_train = result.setup.n_train
    keys = {
        "sgd": "sgd 1",
        "minibatch-64": "minibatch 64",
        "minibatch-1024": "minibatch 1,024",
        "bgd": f"bgd {n_train:,} (all)",
    }
    assert set(rows) == set(keys.values())
    for run, key in keys.items():
        h = curves[curves["run"] == run].reset_index(drop=True)
        cells = rows[key]
        at_best = h["validation_rmse"].idxmin()
        assert cells["best val RMSE"] == f"{h['validation_rmse'][at_best]:.4f}"
        assert cells["epoch at best"] == str(h["epoch"][at_best])
        hit = h.index[h["validation_rmse"] <= target]
        expected = str(h["epoch"][hit[0]]) if len(hit) else "not reached"
        assert cells["epochs to 1%"] == expected
        assert cells["diverged"] == "no"
        assert cells["lr"].endswith("\\*")  # chosen by the search (escaped for Markdown)
    assert "![Objective and validation RMSE against epochs and seconds](convergence.png)" in report
    assert result.table(markdown=True) in report


def test_terminal_table_has_the_same_cells_as_the_report(result):
    text = result.table().splitlines()
    assert text[0].split()[:3] == ["solver", "batch", "size"]
    for line, row in zip(text[2:], result.summary.itertuples(), strict=True):
        assert line.split()[0] == row.solver
        assert f"{row.best_validation_rmse:.4f}" in line


def test_plot_is_a_png_of_the_documented_size(written):
    raw = written[1]["plot"].read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    assert (width, height) == (int(WIDTH * DPI), int(HEIGHT * DPI))
    assert raw[-8:-4] == b"IEND"


def test_figure_has_four_labelled_panels_and_a_legend_entry_per_run(result):
    fig = result.figure()
    objective_epochs, objective_seconds, rmse_epochs, rmse_seconds = fig.axes
    assert objective_epochs.get_yscale() == objective_seconds.get_yscale() == "log"
    assert rmse_epochs.get_ylabel() == "validation RMSE"
    assert rmse_epochs.get_xlabel() == "epochs (passes over the training ratings)"
    assert rmse_seconds.get_xlabel().startswith("seconds of solver time")
    # Every run is drawn in every panel, in its own colour.
    colors = run_colors(result.runs)
    assert len(set(colors.values())) == len(result.runs)
    for ax in fig.axes:
        assert set(colors.values()) <= {line.get_color() for line in ax.get_lines()}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:4] == [f"{r.label}, lr {r.lr:g}" for r in result.runs]
    assert labels[-1] == f"within 1% of the best ({result.target_rmse:.4f})"


def test_notebooks_render_the_table_and_findings(result):
    text = result._repr_markdown_()
    assert text.startswith("| solver | batch size | lr |")
    assert text.endswith(f"- {result.findings[-1]}")


def test_findings_name_the_fastest_runs(result):
    reached = result.summary[result.summary["reached"] > 0]
    first = reached.sort_values("epochs_to_target").iloc[0]
    label = next(r.label for r in result.runs if r.name == first["run"])
    assert result.findings[0].startswith(f"Per epoch, {label} was fastest")
    assert result.findings[1].startswith("Per second of solver time, ")
    assert any(s.startswith("The lowest validation RMSE was ") for s in result.findings)
    assert result.findings[-1].startswith(f"One epoch over the {result.setup.n_train:,} training")


def test_every_run_starts_from_the_same_point(data):
    r = compare(data, lr=RATES, repeats=2, **SMALL)
    start = r.curves[r.curves["epoch"] == 0]
    for _, rows in start.groupby("repeat"):
        for column in ("objective", "train_rmse", "validation_rmse"):
            assert rows[column].nunique() == 1
    # Different seeds per repeat: different starting factors.
    assert start.groupby("repeat")["objective"].first().nunique() == 2
    assert r.setup.seeds == [0, 1]
    assert list(r.results["seed"].unique()) == [0, 1]


def test_same_seed_gives_the_same_curves_except_seconds(data, result):
    again = compare(data, **SMALL)
    same = [c for c in CURVE_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(again.curves[same], result.curves[same])
    assert [r.lr for r in again.runs] == [r.lr for r in result.runs]
    other = compare(data, seed=1, lr=RATES, **SMALL)
    assert not np.allclose(other.curves["objective"], again.curves["objective"])


def test_repeats_report_mean_and_spread(data):
    r = compare(data, lr=RATES, repeats=3, **SMALL)
    for row in r.summary.itertuples():
        per = r.results[r.results["run"] == row.run]["best_validation_rmse"]
        assert row.best_validation_rmse == pytest.approx(per.mean())
        assert row.best_validation_rmse_sd == pytest.approx(per.std(ddof=1))
    assert " ± " in r.table()
    assert r.curves.groupby("run")["repeat"].nunique().eq(3).all()


@pytest.mark.slow
def test_budget_seconds_is_respected(data):
    budget = 0.05
    r = compare(data, budget_seconds=budget, lr=RATES, factors=4)
    for (run, _), h in r.curves.groupby(["run", "repeat"]):
        seconds = h["seconds"].to_numpy()
        # It stopped at the first epoch that reached the budget, and not long after it.
        assert seconds[-1] >= budget, run
        assert seconds[-2] < budget, run
        assert seconds[-1] < budget + 0.25, run
    assert (r.summary["diverged"] == 0).all()
    # Fast solvers fit more epochs into the same time: the budget is not in epochs.
    assert r.curves.groupby("run")["epoch"].max().nunique() > 1
    assert r.setup.budget == Budget(seconds=budget)


def test_a_diverging_run_is_reported_not_raised(data, tmp_path):
    r = compare(data, lr={**RATES, "bgd": 1e6}, **SMALL)
    row = r.summary.set_index("run").loc["bgd"]
    assert row["diverged"] == 1
    epoch = int(r.results.set_index("run").loc["bgd", "diverged_epoch"])
    h = r.curves[r.curves["run"] == "bgd"]
    assert h["epoch"].max() == epoch - 1  # the curve keeps the epochs before the blow-up
    assert np.isfinite(h["objective"]).all()
    assert f"yes, epoch {epoch}" in r.table()
    assert any(s.startswith("Diverged: bgd, at epoch") for s in r.findings)
    legend = [t.get_text() for t in r.figure().legends[0].get_texts()]
    assert "bgd, lr 1e+06 — diverged (×)" in legend
    # The other runs are untouched, and the files are still written.
    assert (r.summary.set_index("run").drop("bgd")["diverged"] == 0).all()
    paths = r.write(tmp_path)
    assert json.loads(paths["summary"].read_text())["runs"][-1]["diverged"] == 1


def test_given_rates_skip_the_search(data):
    r = compare(data, lr={"sgd": 0.03, "minibatch-64": 2.0}, **SMALL)
    runs = {run.name: run for run in r.runs}
    assert (runs["sgd"].lr, runs["sgd"].lr_source) == (0.03, "given")
    assert (runs["minibatch-64"].lr, runs["minibatch-64"].lr_source) == (2.0, "given")
    assert runs["minibatch-1024"].lr_source == "search"
    assert set(r.lr_search["run"]) == {"minibatch-1024", "bgd"}
    # A run name overrides its solver's rate.
    r = compare(data, lr={"minibatch": 1.0, "minibatch-64": 2.0, "sgd": 0.02, "bgd": 50}, **SMALL)
    assert [run.lr for run in r.runs] == [0.02, 2.0, 1.0, 50]
    assert r.lr_search.empty


def test_search_table_marks_the_chosen_rate(result):
    trials = result.lr_search
    assert list(trials.columns) == SEARCH_COLUMNS
    for run in result.runs:
        mine = trials[trials["run"] == run.name]
        chosen = mine[mine["chosen"]]
        assert len(chosen) == 1
        assert chosen["lr"].iloc[0] == run.lr
        assert chosen["stage"].iloc[0] == "full"
        counted = mine[(mine["stage"] == "full") & (mine["status"] != "diverged")]
        assert chosen["validation_rmse"].iloc[0] == counted["validation_rmse"].min()
        assert set(mine["stage"]) == {"short", "full"}
    short = trials[trials["stage"] == "short"]
    assert (short["epochs"] <= 2).all()  # a quarter of 8 epochs, at least 2


class FakeTrainer:
    """Trials whose best validation RMSE is a parabola in log10(lr) around `best`; rates above
    `unstable` let J rise, rates above `diverge` blow up."""

    def __init__(self, best: float, unstable: float, diverge: float):
        self.best, self.unstable, self.diverge = best, unstable, diverge
        self.tried: list[tuple[float, int | None]] = []

    def trial(self, run: Run, budget: Budget) -> dict:
        self.tried.append((run.lr, budget.epochs))
        status = "ok"
        if run.lr > self.diverge:
            status = "diverged"
        elif run.lr > self.unstable:
            status = "unstable"
        rmse = 1.0 + (math.log10(run.lr) - math.log10(self.best)) ** 2
        return {"run": run.name, "lr": run.lr, "epochs": budget.epochs, "seconds": 0.0,
                "validation_rmse": rmse, "status": status}  # fmt: skip


def test_search_climbs_by_tens_then_by_grid_points():
    trainer = FakeTrainer(best=0.5, unstable=100.0, diverge=1000.0)
    run = Run("sgd", "sgd", 1, "constant")  # starts at SGD's default, 0.02
    chosen, trials = search_lr(trainer, run, Budget(epochs=20))
    assert chosen == 0.5
    assert trainer.tried == [
        (0.02, 5), (0.2, 5), (2.0, 5),  # short: ×10 while better; 2 is worse than 0.2
        (0.2, 20), (0.5, 20), (1.0, 20),  # full: one grid point up while better
    ]  # fmt: skip
    assert [t["chosen"] for t in trials].count(True) == 1


def test_search_steps_down_from_an_unstable_start():
    # The scaling rule puts minibatch-1000 at 20, where short trials let J rise.
    trainer = FakeTrainer(best=0.5, unstable=10.0, diverge=1e9)
    run = Run("minibatch-1000", "minibatch", 1000, "constant")
    chosen, trials = search_lr(trainer, run, Budget(epochs=8))
    assert chosen == 0.5
    assert [lr for lr, _ in trainer.tried[:3]] == [20.0, 2.0, 0.2]
    statuses = {(t["stage"], t["lr"]): t["status"] for t in trials}
    assert statuses["short", 20.0] == "unstable"
    assert statuses["full", 0.5] == "ok"


def test_search_chooses_the_smallest_rate_when_nothing_holds():
    trainer = FakeTrainer(best=1.0, unstable=0.0, diverge=0.0)
    chosen, trials = search_lr(trainer, Run("sgd", "sgd", 1, "constant"), Budget(epochs=8))
    assert chosen == min(t["lr"] for t in trials if t["stage"] == "full")
    assert all(t["status"] == "diverged" for t in trials)


def test_learning_rate_grid_and_starting_points():
    assert [grid_lr(i) for i in range(-4, 5)] == [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20]
    assert start_lr(Run("sgd", "sgd", 1, "constant")) == 0.02
    # Linear scaling rule for plain steps; the solver's own default for its own optimizer;
    # the mini-batch default for adaptive optimizers that are not the solver's own.
    assert start_lr(Run("minibatch-64", "minibatch", 64, "constant")) == pytest.approx(1.28)
    assert start_lr(Run("bgd", "bgd", 80_000, "constant")) == pytest.approx(1600)
    assert start_lr(Run("minibatch-64", "minibatch", 64, "adam")) == 0.003
    assert start_lr(Run("bgd", "bgd", 80_000, "adam")) == 0.02
    assert start_lr(Run("sgd", "sgd", 1, "adagrad")) == 0.003


def test_als_runs_without_a_learning_rate(data):
    r = compare(data, ["sgd", "als"], lr={"sgd": 0.02}, **SMALL)
    als = r.summary.set_index("run").loc["als"]
    assert als["lr_source"] == "none" and pd.isna(als["batch_size"])
    assert r.curves[r.curves["run"] == "als"]["epoch"].max() == SMALL["budget_epochs"]
    assert r.table().splitlines()[-1].split()[:3] == ["als", "–", "–"]


def test_validation_ratings_can_be_given(data):
    train, held = (
        data.subset(np.arange(len(data)) % 5 != 0),
        data.subset(np.arange(len(data)) % 5 == 0),
    )
    held = RatingData.from_ids(
        [*held.user_map.to_ids(held.users), "stranger"],
        [*held.item_map.to_ids(held.items), held.item_map.to_ids(held.items[:1])[0]],
        [*held.ratings, 3.0],
    )
    r = compare(train, validation=held, lr=RATES, **SMALL)
    assert r.setup.n_train == len(train)
    assert r.setup.n_validation < len(held)  # the unknown user is left out
    assert "left out" in r.setup.validation


def test_optimizer_applies_to_every_gradient_run(data):
    r = compare(data, optimizer="adam", lr={"sgd": 0.01, "minibatch": 0.01, "bgd": 0.05}, **SMALL)
    assert {run.optimizer for run in r.runs} == {"adam"}
    assert "with the adam optimizer;" in r.report()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"solvers": ["sgd", "newton"]},
         "solvers='newton': unknown solver; choose from sgd, bgd, minibatch, als"),
        ({"solvers": []}, "solvers='': name at least one solver"),
        ({"solvers": ["sgd", "sgd"]}, "solvers='sgd': named twice"),
        ({"budget_epochs": 0}, "budget_epochs=0: must be >= 1"),
        ({"budget_seconds": 0.0}, "budget_seconds=0.0: must be > 0"),
        ({"budget_seconds": math.nan}, "budget_seconds=nan: must be > 0"),
        ({"budget_epochs": 5, "budget_seconds": 1.0},
         "budget_seconds=1.0: give a budget in epochs or in seconds, not both"),
        ({"lr": {"adam": 0.1}},
         "lr='adam': no run of that name; the runs are sgd, minibatch-64, minibatch-1024, bgd"),
        ({"lr": {"sgd": -1.0}}, "lr='sgd=-1.0': a learning rate must be a number > 0"),
        ({"solvers": ["als"], "lr": {"als": 0.1}}, "lr='als': als has no learning rate"),
        ({"solvers": ["sgd"], "batch_sizes": [64]},
         "batch_sizes=[64]: only minibatch takes batch sizes; add it to solvers"),
        ({"batch_sizes": [64, 0]}, "batch_sizes=0: must be >= 1"),
        ({"batch_sizes": []}, "batch_sizes='': give at least one batch size for minibatch"),
        ({"repeats": 0}, "repeats=0: must be >= 1"),
        ({"factors": 2.5}, "factors=2.5: must be an integer >= 1"),
        ({"reg": -0.1}, "reg=-0.1: must be >= 0"),
        ({"reg": "0.1"}, "reg='0.1': must be a number >= 0"),
        ({"optimizer": "lbfgs"},
         "optimizer='lbfgs': must be one of constant, decay, adagrad, momentum, adam"),
        ({"dtype": "float16"}, "dtype='float16': must be one of float32, float64"),
        ({"test_size": 1.5}, "test_size=1.5: must be in (0, 1)"),
        ({"seed": -1}, "seed=-1: must be an int >= 0, a Generator or None"),
    ],
)  # fmt: skip
def test_bad_parameters_are_named(data, kwargs, message):
    with pytest.raises(ParameterError) as info:
        compare(data, **kwargs)
    assert str(info.value) == message


def test_test_size_and_validation_are_exclusive(data):
    with pytest.raises(ParameterError) as info:
        compare(data, test_size=0.2, validation=data)
    assert str(info.value) == "test_size=0.2: give a test fraction or a validation set, not both"
