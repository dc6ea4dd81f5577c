"""Score solver settings on the MovieLens 100k splits u1..u5 (how the defaults were chosen).

Trains on each uK.base, scores RMSE on uK.test (predictions clipped to the 1..5 scale; a test
user or item unseen in training contributes no factors, only the other bias and mu) and checks
that J fell at every epoch. Unset options take the solver's and mfrec's defaults.

    .venv/bin/python benchmarks/tune_defaults.py --solver sgd
    .venv/bin/python benchmarks/tune_defaults.py --solver bgd --lr 0.02 --epochs 300
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mfrec import objective
from mfrec.solvers import get_solver
from mfrec.solvers.base import (
    DEFAULT_FACTORS,
    DEFAULT_INIT_STD,
    DEFAULT_REG,
    DEFAULT_REG_BIAS,
    Factors,
    SolverParams,
    TrainSet,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-100k"
COLUMNS = ["user", "item", "rating", "timestamp"]


def load_split(k: int, dtype: type[np.floating]) -> tuple[TrainSet, pd.DataFrame]:
    """uK.base as a TrainSet, uK.test with its user and item indices (-1: unseen)."""
    base = pd.read_csv(DATA / f"u{k}.base", sep="\t", names=COLUMNS)
    test = pd.read_csv(DATA / f"u{k}.test", sep="\t", names=COLUMNS)
    users, user_ids = pd.factorize(base["user"])
    items, item_ids = pd.factorize(base["item"])
    train = TrainSet(
        users.astype(np.int32),
        items.astype(np.int32),
        base["rating"].to_numpy(dtype),
        len(user_ids),
        len(item_ids),
    )
    test = test.assign(
        u=pd.Index(user_ids).get_indexer(test["user"]),
        i=pd.Index(item_ids).get_indexer(test["item"]),
    )
    return train, test


def test_rmse(f: Factors, test: pd.DataFrame) -> float:
    """RMSE on the test ratings, predictions clipped to 1..5."""
    u = test["u"].to_numpy()
    i = test["i"].to_numpy()
    known_u, known_i = u >= 0, i >= 0
    pred = np.full(len(test), f.mu)
    both = known_u & known_i
    pred[both] = objective.predict(f, u[both], i[both])
    if f.use_bias:
        pred[known_u & ~known_i] += f.bu[u[known_u & ~known_i]]
        pred[~known_u & known_i] += f.bi[i[~known_u & known_i]]
    err = np.clip(pred, 1.0, 5.0) - test["rating"].to_numpy()
    return float(np.sqrt(np.mean(err**2)))


def run(args: argparse.Namespace) -> None:
    """Train and score on every split; print one line per split and the mean."""
    cls = get_solver(args.solver)
    params = SolverParams(
        lr=args.lr,
        reg=args.reg,
        reg_bias=args.reg_bias,
        optimizer=args.optimizer,
        decay=args.decay,
        batch_size=args.batch_size,
        line_search=args.line_search,
    )
    epochs = args.epochs or cls.default_epochs
    dtype = np.float64 if args.float64 else np.float32
    scores = []
    for k in args.splits:
        train, test = load_split(k, dtype)
        rng = np.random.default_rng(args.seed)
        f = Factors.initial(
            train.n_users,
            train.n_items,
            args.factors,
            mu=float(np.mean(train.ratings, dtype=np.float64)),
            use_bias=True,
            init_std=args.init_std,
            dtype=dtype,
            rng=rng,
        )
        solver = cls(f, train, params, rng)
        history = [objective.objective(f, train, params.reg, params.reg_bias)]
        start = time.perf_counter()
        for epoch in range(epochs):
            solver.run_epoch(epoch)
            history.append(objective.objective(f, train, params.reg, params.reg_bias))
        seconds = time.perf_counter() - start
        rises = int(np.sum(np.diff(history) > 0))
        scores.append(test_rmse(f, test))
        print(
            f"u{k}: test RMSE {scores[-1]:.4f}  J {history[0]:.4f} -> {history[-1]:.4f}"
            f"  ({rises} epochs with J rising, {seconds:.1f} s incl. J per epoch)"
        )
    print(
        f"{args.solver} optimizer={solver.optimizer} lr={solver.lr} reg={args.reg} "
        f"reg_bias={args.reg_bias} epochs={epochs} factors={args.factors}: "
        f"mean test RMSE {np.mean(scores):.4f}"
    )


def main() -> None:
    """Parse the options and run."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--solver", default="sgd")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--reg", type=float, default=DEFAULT_REG)
    ap.add_argument("--reg-bias", type=float, default=DEFAULT_REG_BIAS)
    ap.add_argument("--optimizer", default=None)
    ap.add_argument("--decay", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=SolverParams.batch_size)
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
