"""Seconds per epoch of minibatch (several batch sizes, 1 and 2 threads) next to sgd.

Usage:
    python benchmarks/bench_minibatch.py [--data DIR] [--runs 3]

MovieLens 100k u1.base, k=100, float32, 20-epoch fits; each figure is the median over
`--runs` fits of the median epoch time within a fit (history ``seconds``, setup row dropped).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.load import load_ratings

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-100k"
LR = {"constant": 0.5, "adam": 0.003, "decay": 0.08}


def epoch_ms(data, solver: str, batch: int | None, threads: int, opt: str, runs: int) -> float:
    """Median over `runs` fits of the median epoch time, in ms."""
    kw = {"batch_size": batch} if batch else {}
    medians = []
    for seed in range(runs):
        model = MatrixFactorization(
            solver,
            factors=100,
            epochs=20,
            threads=threads,
            optimizer=opt,
            lr=LR[opt],
            seed=seed,
            **kw,
        ).fit(data)
        medians.append(float(np.median(np.diff(model.history_["seconds"].to_numpy()))))
    return 1000 * statistics.median(medians)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="MovieLens 100k folder")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data = load_ratings(args.data / "u1.base", preset="ml-100k").compact()
    epoch_ms(data, "minibatch", 2048, 2, "adam", 1)  # compile or load the kernels first
    cases = [("sgd", None, t, "decay") for t in (1, 2)]
    cases += [
        ("minibatch", b, t, opt)
        for opt in ("constant", "adam")
        for b in (64, 1024, 8192)
        for t in (1, 2)
    ]
    print("| solver | batch | threads | optimizer | epoch ms |")
    print("|---|---:|---:|---|---:|")
    for solver, batch, threads, opt in cases:
        ms = epoch_ms(data, solver, batch, threads, opt, args.runs)
        print(f"| {solver} | {batch or '-'} | {threads} | {opt} | {ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
