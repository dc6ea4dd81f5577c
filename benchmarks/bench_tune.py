"""Tuned sgd on MovieLens 100k u1-u5, tuning inside each fold's base part only.

Usage: python benchmarks/bench_tune.py [--trials 60] [--jobs 2] [--validation 0.1 | --folds K]
                                       [--patience 5] [--param NAME=SPEC ...] [--seed 0]
                                       [--splits 1,2,3,4,5] [--data PATH]

For each split uK: `mfrec.experiments.tune.tune` runs a random search on uK.base alone
(trials early-stop on a held-out part of uK.base), the winner is refitted on all of uK.base
for the epochs it kept, and only then is uK.test read and scored (RMSE over every test
rating, predictions clipped to 1..5, unknown items getting the mean plus the user's bias: the
figure benchmarks/bench_train.py reports). The tuning time is the wall time of the searches and the
refits together. Prints the winning parameters per split and the mean test RMSE.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from mfrec.experiments.tune import tune
from mfrec.model.evaluate import evaluate
from mfrec.ratings.load import load_ratings

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-100k"

#: What the search tries: the step size and the three penalties decide most of sgd's RMSE;
#: a small starting spread lets early stopping find a later, better epoch; the number of
#: factors matters less once the penalties fit it. epochs come from early stopping.
SPACE = (
    "factors=50,100,200",
    "lr=0.005:0.03:log",
    "reg=0.03:0.15:log",
    "reg_bias=0.005:0.2:log",
    "init_std=0.005:0.1:log",
)


def main() -> None:
    """Parse the options, tune and score every split, print the table and the totals."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=2)
    held = ap.add_mutually_exclusive_group()
    held.add_argument("--validation", type=float, default=None)
    held.add_argument("--folds", type=int, default=None)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--param", action="append", default=None, help="replaces the whole space")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splits", default="1,2,3,4,5")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    space = args.param or list(SPACE)
    splits = [int(s) for s in args.splits.split(",")]

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average at start {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    print(f"space: {' '.join(space)}", file=sys.stderr)
    rmses, maes, seconds = [], [], []
    for k in splits:
        base = load_ratings(args.data / f"u{k}.base", preset="ml-100k")
        start = time.perf_counter()
        result = tune(
            base,
            space,
            search="random",
            trials=args.trials,
            folds=args.folds,
            validation=args.validation,
            patience=args.patience,
            jobs=args.jobs,
            seed=args.seed,
            solver="sgd",
        )
        model = result.best_estimator().fit(base)
        seconds.append(time.perf_counter() - start)
        # The test part is read only now, after the winner is fixed.
        test = load_ratings(args.data / f"u{k}.test", preset="ml-100k")
        scores = evaluate(model, test).to_dict()
        rmses.append(scores["rmse_all"])
        maes.append(scores["mae_all"])
        params = ", ".join(f"{name}={value}" for name, value in result.best_params.items())
        print(
            f"u{k}: test RMSE {rmses[-1]:.4f}, MAE {maes[-1]:.4f}; held-out "
            f"{result.metric} {result.best_score:.4f}; {seconds[-1]:.0f} s; {params}"
        )
    spread = np.std(rmses, ddof=1) if len(rmses) > 1 else 0.0
    print(
        f"mean test RMSE {np.mean(rmses):.4f} ± {spread:.4f}, MAE {np.mean(maes):.4f}; "
        f"tuning time {sum(seconds):.0f} s "
        f"({args.trials} trials x {len(splits)} splits, {args.jobs} jobs); "
        f"load average at end {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
