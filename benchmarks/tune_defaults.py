"""Score solver settings on the MovieLens 100k splits u1..u5 (how the defaults were chosen).

Fits MatrixFactorization on each uK.base, scores RMSE on uK.test (predictions clipped to the
1..5 scale; a test user or item unseen in training falls back to mu plus the known bias) and
counts the epochs in which J rose. Unset options take the solver's and mfrec's defaults.

    .venv/bin/python benchmarks/tune_defaults.py --solver sgd
    .venv/bin/python benchmarks/tune_defaults.py --solver bgd --lr 0.02 --epochs 300
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.load import load_ratings
from mfrec.training.state import (
    DEFAULT_DECAY,
    DEFAULT_FACTORS,
    DEFAULT_INIT_STD,
    DEFAULT_REG,
    DEFAULT_REG_BIAS,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-100k"


def run(args: argparse.Namespace) -> None:
    """Train and score on every split; print one line per split and the mean."""
    scores = []
    for k in args.splits:
        model = MatrixFactorization(
            solver=args.solver,
            factors=args.factors,
            epochs=args.epochs,
            lr=args.lr,
            reg=args.reg,
            reg_bias=args.reg_bias,
            optimizer=args.optimizer,
            decay=args.decay,
            batch_size=args.batch_size,
            line_search=args.line_search,
            init_std=args.init_std,
            dtype="float64" if args.float64 else "float32",
            seed=args.seed,
        ).fit(load_ratings(DATA / f"u{k}.base", preset="ml-100k"))
        test = load_ratings(DATA / f"u{k}.test", preset="ml-100k").to_frame()
        pred = model.predict(test["user"].to_numpy(), test["item"].to_numpy())
        scores.append(float(np.sqrt(np.mean((pred - test["rating"].to_numpy()) ** 2))))
        J = model.history_["objective"].to_numpy()
        print(
            f"u{k}: test RMSE {scores[-1]:.4f}  J {J[0]:.4f} -> {J[-1]:.4f}"
            f"  ({int(np.sum(np.diff(J) > 0))} epochs with J rising,"
            f" {model.history_['seconds'].iloc[-1]:.1f} s)"
        )
    print(f"{args.solver} {vars(args)}: mean test RMSE {np.mean(scores):.4f}")


def main() -> None:
    """Parse the options and run."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--solver", default="sgd")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--reg", type=float, default=DEFAULT_REG)
    ap.add_argument("--reg-bias", type=float, default=DEFAULT_REG_BIAS)
    ap.add_argument("--optimizer", default=None)
    ap.add_argument("--decay", type=float, default=DEFAULT_DECAY)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--line-search", action="store_true")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--factors", type=int, default=DEFAULT_FACTORS)
    ap.add_argument("--init-std", type=float, default=DEFAULT_INIT_STD)
    ap.add_argument("--float64", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splits", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    run(ap.parse_args())


if __name__ == "__main__":
    main()
