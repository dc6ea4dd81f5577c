"""Local training against training on a Dask LocalCluster, on the same ratings file.

Usage: python benchmarks/bench_dask.py DATA [--solver sgd] [--epochs 3] [--workers 2]
                                            [--factors 100] [--blocks N] [--threads N]
                                            [--engines local,dask] [--json OUT]

DATA is a ratings file (e.g. from ``mfrec data synth``). Each engine fits the same model (same
seed and options) for the same number of epochs:

- local: `load_ratings` then `MatrixFactorization.fit` in this process, on --threads threads
  (default: all cores);
- dask: `fit_dask` on a LocalCluster of --workers single-threaded worker processes.

Reported per engine: seconds to load (local) or ingest (dask: read, number the IDs on the
cluster, shuffle into blocks), seconds per epoch of training (median over the epochs) and of
scoring, bytes the workers sent per epoch (Dask's ``transfer_outgoing_bytes_total``; training
and scoring apart), the per-block kernel cost (seconds per million ratings, from inside the
block tasks), how busy the workers were (kernel seconds / (workers x epoch seconds)), and the
training RMSE after the last epoch. A first tiny fit compiles (or loads) the numba kernels
outside the timings. --json writes the figures for docs/scaling.md's projection.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.load import load_ratings
from mfrec.ratings.ratingdata import RatingData


def warm_up(solver: str) -> None:
    """Fit a tiny set so that numba compiles (or loads its cache) outside the timings."""
    rng = np.random.default_rng(0)
    tiny = RatingData.from_ids(
        rng.integers(0, 20, 200), rng.integers(0, 10, 200), rng.integers(1, 6, 200)
    )
    MatrixFactorization(solver, epochs=2, seed=0).fit(tiny)


def per_epoch(history, column: str) -> float:
    """Median over the epochs of the per-epoch increase of a cumulative history column."""
    return statistics.median(np.diff(history[column].to_numpy()))


def bench_local(data: Path, params: dict, threads: int | None) -> dict:
    warm_up(params["solver"])
    start = time.perf_counter()
    ratings = load_ratings(data)
    load_seconds = time.perf_counter() - start
    model = MatrixFactorization(**params, threads=threads).fit(ratings)
    h = model.history_
    return {
        "engine": "local" if threads is None else f"local-{threads}t",
        "ratings": len(ratings),
        "load_seconds": load_seconds,
        "epoch_seconds": per_epoch(h, "seconds"),
        "eval_seconds": per_epoch(h, "eval_seconds"),
        "train_rmse": float(h["train_rmse"].iloc[-1]),
        "objective": float(h["objective"].iloc[-1]),
    }


def bench_dask(data: Path, params: dict, workers: int, blocks: int | None) -> dict:
    from mfrec.distributed.engine import connect
    from mfrec.distributed.fit import fit_dask

    with connect(n_workers=workers) as client, tempfile.TemporaryDirectory() as tmp:
        # The workers load the kernels (and pandas, dask.dataframe) on a tiny run first.
        rng = np.random.default_rng(0)
        tiny = Path(tmp) / "tiny.csv"
        pd.DataFrame(
            {"user": rng.integers(0, 50, 500), "item": rng.integers(0, 20, 500), "rating": 3}
        ).to_csv(tiny, index=False)
        fit_dask(MatrixFactorization(**{**params, "epochs": 1}), str(tiny), client=client)
        model = MatrixFactorization(**params)
        report = fit_dask(model, str(data), client=client, blocks=blocks)
    ep, blk = report.epochs, report.blocks
    out = {
        "engine": "dask",
        "workers": report.workers,
        "grid": list(report.grid),
        "ratings": report.n_ratings,
        "load_seconds": report.ingest_seconds,
        "epoch_seconds": float(ep["seconds"].median()),
        "eval_seconds": float(ep["eval_seconds"].median()),
        "bytes_per_epoch": float(ep["bytes"].median()),
        "eval_bytes_per_epoch": float(ep["eval_bytes"].median()),
        "train_rmse": float(model.history_["train_rmse"].iloc[-1]),
        "objective": float(model.history_["objective"].iloc[-1]),
        "q_bytes": int(model.item_factors_.nbytes),
        "p_bytes": int(model.user_factors_.nbytes),
    }
    if len(blk):
        kernel = blk.groupby("epoch")["seconds"].sum()
        busy = kernel.to_numpy() / (report.workers * ep["seconds"].to_numpy())
        per_million = 1e6 * blk["seconds"].sum() / blk["ratings"].sum()
        out.update(
            blocks_per_epoch=int(len(blk) / len(ep)),
            kernel_seconds_per_million=float(per_million),
            block_seconds_median=float(blk["seconds"].median()),
            block_seconds_max=float(blk["seconds"].max()),
            busy=float(np.median(busy)),
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--solver", default="sgd", choices=("sgd", "minibatch", "bgd"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--factors", type=int, default=100)
    ap.add_argument("--blocks", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--engines", default="local,dask")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    # The distributed engine's stage timings and per-epoch transfer volumes, on stderr.
    logging.basicConfig(format="%(asctime)s %(message)s")
    logging.getLogger("mfrec.distributed").setLevel(logging.INFO)
    params = dict(solver=args.solver, factors=args.factors, epochs=args.epochs, seed=0)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {args.data.name}, {args.solver}, "
        f"k={args.factors}, {args.epochs} epochs"
    )
    rows = []
    for engine in args.engines.split(","):
        if engine == "local":
            rows.append(bench_local(args.data, params, args.threads))
        else:
            rows.append(bench_dask(args.data, params, args.workers, args.blocks))
        print(json.dumps(rows[-1]), flush=True)
    print(
        f"{'engine':8} {'ratings':>11} {'load s':>8} {'epoch s':>8} {'score s':>8} "
        f"{'MB/epoch':>9} {'busy':>5} {'RMSE':>7}"
    )
    for r in rows:
        mb = r.get("bytes_per_epoch", 0) / 1e6
        busy = f"{r['busy']:.2f}" if "busy" in r else "-"
        print(
            f"{r['engine']:8} {r['ratings']:>11,} {r['load_seconds']:>8.1f} "
            f"{r['epoch_seconds']:>8.2f} {r['eval_seconds']:>8.2f} {mb:>9.1f} {busy:>5} "
            f"{r['train_rmse']:>7.4f}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
