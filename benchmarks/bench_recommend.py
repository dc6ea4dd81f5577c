"""All-users top-10 recommendations: seconds and peak memory, against naive peers.

Usage: python benchmarks/bench_recommend.py [--repeats 3] [--users 100000] [--items 20000]
                                            [--factors 64] [--data PATH] [--no-surprise]
                                            [--no-peers]

Cases, each in a fresh Python process so that its peak RSS is its own:

  ml-100k     a model trained with the defaults (seed 0) on u1.base (943 users x 1,650
              items); every user's top 10, training items excluded:
              - mfrec: `model.recommend(None, 10)` (blocked matrix product + top-k kernel)
              - dense: the full score matrix at once, then argsort of every row (naive peer)
              - surprise: Surprise SVD (defaults) predicting the anti-testset pair by pair,
                then its FAQ's get_top_n (the way Surprise users do it; one run)
  synthetic   a model built directly from random factors (no training): --users x --items,
              --factors dimensions, float32, biases, ~100 training items per user:
              - mfrec: `model.recommend(None, 10)` with the default 256 MiB budget
              - mfrec-64MiB: the same with `memory_budget=64 MiB`
              - argpartition: the same blocks scored by numpy, top 10 by argpartition (peer;
                one run: the full dense matrix would need 8 GB here)

Seconds are the median of --repeats runs after one warm-up run (numba compile or cache load
excluded); "rss setup" is the resident memory once the model is built, "peak rss" the
process's peak (ru_maxrss), so their difference is what recommending costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-100k"
K = 10


def rss_mb() -> float:
    """Current resident set size in MiB."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ml100k_model(data: Path):
    from mfrec.model.estimator import MatrixFactorization
    from mfrec.ratings.load import load_ratings

    return MatrixFactorization(seed=0).fit(load_ratings(data / "u1.base", preset="ml-100k"))


def synthetic_model(n_users: int, n_items: int, factors: int):
    from mfrec.model.estimator import MatrixFactorization

    rng = np.random.default_rng(0)
    counts = rng.integers(20, 180, n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    # Random items per user, drawn at once; an item drawn twice is simply excluded twice.
    seen = (rng.random(int(indptr[-1])) * n_items).astype(np.int32)
    return MatrixFactorization.from_factors(
        rng.normal(0, 0.1, (n_users, factors)).astype(np.float32),
        rng.normal(0, 0.1, (n_items, factors)).astype(np.float32),
        np.arange(n_users).astype(str),
        np.arange(n_items).astype(str),
        scale=(1.0, 5.0),
        user_bias=rng.normal(0, 0.3, n_users).astype(np.float32),
        item_bias=rng.normal(0, 0.3, n_items).astype(np.float32),
        global_mean=3.5,
        seen=(indptr, seen),
    )


def dense_peer(model) -> np.ndarray:
    """Every score at once, seen items masked, every row fully sorted."""
    S = model.user_factors_ @ model.item_factors_.T
    S += model.item_bias_
    S += (model.global_mean_ + model.user_bias_)[:, None]
    rows = np.repeat(np.arange(len(S)), np.diff(model.seen_indptr_))
    S[rows, model.seen_indices_] = -np.inf
    return np.argsort(-S, axis=1, kind="stable")[:, :K]


def argpartition_peer(model, block: int = 2048) -> np.ndarray:
    """Blocks of users scored by numpy; top K by argpartition, then sorted."""
    P, Q, bi = model.user_factors_, model.item_factors_, model.item_bias_
    indptr, seen = model.seen_indptr_, model.seen_indices_
    out = np.empty((len(P), K), dtype=np.int64)
    for start in range(0, len(P), block):
        stop = min(start + block, len(P))
        S = P[start:stop] @ Q.T
        S += bi
        rows = np.repeat(np.arange(stop - start), np.diff(indptr[start : stop + 1]))
        S[rows, seen[indptr[start] : indptr[stop]]] = -np.inf
        top = np.argpartition(S, -K, axis=1)[:, -K:]
        order = np.argsort(-np.take_along_axis(S, top, axis=1), axis=1, kind="stable")
        out[start:stop] = np.take_along_axis(top, order, axis=1)
    return out


def surprise_peer(data: Path) -> float:
    """Seconds of Surprise's documented top-N recipe on u1.base: predict the anti-testset
    with a fitted SVD, keep each user's best K (the fit is not timed)."""
    from collections import defaultdict

    from surprise import SVD, Dataset, Reader

    reader = Reader(line_format="user item rating timestamp", sep="\t")
    trainset = Dataset.load_from_file(str(data / "u1.base"), reader).build_full_trainset()
    algo = SVD(random_state=0)
    algo.fit(trainset)
    start = time.perf_counter()
    predictions = algo.test(trainset.build_anti_testset())
    top_n = defaultdict(list)
    for uid, iid, _, est, _ in predictions:
        top_n[uid].append((iid, est))
    for uid, ratings in top_n.items():
        ratings.sort(key=lambda x: x[1], reverse=True)
        top_n[uid] = ratings[:K]
    return time.perf_counter() - start


def run_case(case: str, args: argparse.Namespace) -> dict:
    """Build the model, warm up, time the runs; report seconds and memory."""
    if case == "ml-100k/surprise":
        seconds = surprise_peer(args.data)
        return {
            "case": case,
            "seconds": seconds,
            "runs": 1,
            "rss_setup": None,
            "peak_rss": peak_mb(),
        }
    data_name, method = case.split("/")
    if data_name == "ml-100k":
        model = ml100k_model(args.data)
    else:
        model = synthetic_model(args.users, args.items, args.factors)
    setup = rss_mb()
    budget = 64 * 2**20 if method == "mfrec-64MiB" else None
    methods = {
        "mfrec": lambda: model.recommend(None, K, memory_budget=budget),
        "mfrec-64MiB": lambda: model.recommend(None, K, memory_budget=budget),
        "dense": lambda: dense_peer(model),
        "argpartition": lambda: argpartition_peer(model),
    }
    work = methods[method]
    repeats = 1 if method == "argpartition" else args.repeats
    if method.startswith("mfrec"):
        model.recommend(None, K, memory_budget=budget)  # warm-up: numba cache, BLAS threads
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return {
        "case": case,
        "seconds": statistics.median(times),
        "runs": repeats,
        "rss_setup": setup,
        "peak_rss": peak_mb(),
        "users": len(model.user_map_),
        "items": len(model.item_map_),
        "factors": int(model.user_factors_.shape[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--no-surprise", action="store_true")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args)))
        return

    cases = []
    if args.data.exists():
        cases.append("ml-100k/mfrec")
        if not args.no_peers:
            cases.append("ml-100k/dense")
            if not args.no_surprise:
                cases.append("ml-100k/surprise")
    else:
        print(f"{args.data} not found: skipping the ml-100k cases", file=sys.stderr)
    cases += ["synthetic/mfrec", "synthetic/mfrec-64MiB"]
    if not args.no_peers:
        cases.append("synthetic/argpartition")

    machine = platform.processor() or platform.machine()
    print(
        f"# {platform.node()}: {machine}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )
    print(
        f"# synthetic: {args.users:,} users x {args.items:,} items, {args.factors} factors; "
        f"top {K}; median of {args.repeats} runs"
    )
    print(f"{'case':<26}{'seconds':>9}{'runs':>6}{'rss setup MiB':>15}{'peak rss MiB':>14}")
    settings = {"repeats": args.repeats, "users": args.users, "items": args.items,
                "factors": args.factors, "data": args.data}  # fmt: skip
    forward = [f"--{name}={value}" for name, value in settings.items()]
    for case in cases:
        out = subprocess.run(
            [sys.executable, __file__, "--case", case, *forward],
            check=True,
            capture_output=True,
            text=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        setup = "-" if r["rss_setup"] is None else f"{r['rss_setup']:.0f}"
        print(f"{case:<26}{r['seconds']:>9.3f}{r['runs']:>6}{setup:>15}{r['peak_rss']:>14.0f}")


if __name__ == "__main__":
    main()
