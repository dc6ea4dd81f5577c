"""Training on MovieLens 100k: each solver with its defaults against Surprise's SVD.

Usage: python benchmarks/bench_train.py [--solvers sgd,bgd,minibatch,als] [--splits 1,2,3,4,5]
                                        [--repeats 3] [--cheap 10] [--data PATH] [--no-surprise]

For each split uK, fits on uK.base and scores uK.test (predictions clipped to 1..5; a test user
or item unseen in training gets the mean plus the known bias). RMSE and MAE come from the seed-0
model; fit seconds are the median of --repeats fits when one fit takes under --cheap seconds
(a single fit otherwise). Each solver first fits a tiny set so that compiling (or loading the
numba cache) is not timed. Surprise SVD runs with its defaults when scikit-surprise imports.
The table reports the mean over the splits.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.load import load_ratings
from mfrec.ratings.ratingdata import RatingData
from mfrec.training.solvers import SOLVERS

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-100k"


@dataclass
class Scores:
    """Per-split figures of one method."""

    rmse: list[float] = field(default_factory=list)
    mae: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)


def timed_median(fit, repeats: int, cheap: float) -> tuple[object, float]:
    """Run `fit()`; repeat it while cheap and return the first result and the median time."""
    start = time.perf_counter()
    result = fit()
    times = [time.perf_counter() - start]
    if times[0] < cheap:
        for _ in range(repeats - 1):
            start = time.perf_counter()
            fit()
            times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def errors(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(RMSE, MAE)."""
    e = pred - truth
    return float(np.sqrt(np.mean(e * e))), float(np.mean(np.abs(e)))


def warm_up(solver: str) -> None:
    """Fit a tiny set so that numba compiles (or loads its cache) outside the timings."""
    rng = np.random.default_rng(0)
    tiny = RatingData.from_ids(
        rng.integers(0, 20, 200), rng.integers(0, 10, 200), rng.integers(1, 6, 200)
    )
    MatrixFactorization(solver, epochs=2, seed=0).fit(tiny)


def bench_mfrec(solver: str, splits: list[int], data: Path, repeats: int, cheap: float) -> Scores:
    warm_up(solver)
    scores = Scores()
    for k in splits:
        train = load_ratings(data / f"u{k}.base", preset="ml-100k")
        test = load_ratings(data / f"u{k}.test", preset="ml-100k").to_frame()
        model, seconds = timed_median(
            lambda train=train: MatrixFactorization(solver, seed=0).fit(train), repeats, cheap
        )
        pred = model.predict(test["user"].to_numpy(), test["item"].to_numpy())
        rmse, mae = errors(pred, test["rating"].to_numpy(dtype=np.float64))
        scores.rmse.append(rmse)
        scores.mae.append(mae)
        scores.seconds.append(seconds)
        scores.epochs.append(model.n_epochs_)
        print(
            f"  {solver} u{k}: RMSE {rmse:.4f}, MAE {mae:.4f}, fit {seconds:.2f} s", file=sys.stderr
        )
    return scores


def bench_surprise(splits: list[int], data: Path, repeats: int, cheap: float) -> Scores:
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    names = ["user", "item", "rating", "timestamp"]
    scores = Scores()
    for k in splits:
        base = pd.read_csv(
            data / f"u{k}.base", sep="\t", names=names, dtype={"user": str, "item": str}
        )
        test = pd.read_csv(
            data / f"u{k}.test", sep="\t", names=names, dtype={"user": str, "item": str}
        )
        trainset = Dataset.load_from_df(
            base[["user", "item", "rating"]], Reader(rating_scale=(1, 5))
        ).build_full_trainset()

        def fit(trainset=trainset):
            return SVD(random_state=0).fit(trainset)

        algo, seconds = timed_median(fit, repeats, cheap)
        triples = list(zip(test["user"], test["item"], test["rating"].astype(float), strict=True))
        pred = np.array([p.est for p in algo.test(triples)])
        rmse, mae = errors(pred, test["rating"].to_numpy(dtype=np.float64))
        scores.rmse.append(rmse)
        scores.mae.append(mae)
        scores.seconds.append(seconds)
        scores.epochs.append(algo.n_epochs)
        print(
            f"  surprise-svd u{k}: RMSE {rmse:.4f}, MAE {mae:.4f}, fit {seconds:.2f} s",
            file=sys.stderr,
        )
    return scores


def table(results: dict[str, Scores]) -> str:
    rows = [
        "| method | epochs | test RMSE (mean ± sd) | test MAE | fit s (mean) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in results.items():
        sd = statistics.stdev(s.rmse) if len(s.rmse) > 1 else 0.0
        rows.append(
            f"| {name} | {statistics.mean(s.epochs):g} | {statistics.mean(s.rmse):.4f} ± {sd:.4f} "
            f"| {statistics.mean(s.mae):.4f} | {statistics.mean(s.seconds):.2f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solvers", default=",".join(SOLVERS))
    parser.add_argument("--splits", default="1,2,3,4,5")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cheap", type=float, default=10.0, help="repeat fits faster than this")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--no-surprise", action="store_true")
    args = parser.parse_args(argv)
    if not (args.data / "u1.base").exists():
        sys.exit(f"{args.data}: MovieLens 100k not found (give --data)")
    splits = [int(k) for k in args.splits.split(",")]

    results: dict[str, Scores] = {}
    for solver in args.solvers.split(","):
        results[f"mfrec {solver}"] = bench_mfrec(
            solver, splits, args.data, args.repeats, args.cheap
        )
    if not args.no_surprise:
        try:
            import surprise  # noqa: F401
        except ImportError:
            print("scikit-surprise not importable: skipping Surprise SVD", file=sys.stderr)
        else:
            results["Surprise SVD()"] = bench_surprise(splits, args.data, args.repeats, args.cheap)

    import numba

    print(f"MovieLens 100k, splits {args.splits}, each method's defaults, seed 0")
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, numba {numba.__version__}"
    )
    print()
    print(table(results))


if __name__ == "__main__":
    main()
