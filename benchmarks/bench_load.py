"""Loading speed and peak memory: mfrec.load_ratings against plain pandas.read_csv.

Usage: python benchmarks/bench_load.py [--ratings 10000000] [--repeats 3] [--file PATH]

Writes a synthetic CSV (user,item,rating,timestamp with string-like IDs) unless --file is
given, then loads it in fresh subprocesses so that peak RSS is per load. Peak memory is
reported above the process's baseline after imports, next to the size of the final arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
import mfrec.ratings.load
def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
base = rss_mb()
path, how = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if how == "mfrec":
    data = mfrec.ratings.load.load_ratings(path)
    arrays = sum(a.nbytes for a in (data.users, data.items, data.ratings, data.timestamps))
    n = len(data)
elif how == "pandas-str":
    frame = pd.read_csv(path, dtype={"user": str, "item": str})
    arrays = int(frame.memory_usage(deep=True).sum())
    n = len(frame)
else:
    frame = pd.read_csv(path)
    arrays = int(frame.memory_usage(deep=True).sum())
    n = len(frame)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak - base, "arrays_mb": arrays / 2**20, "n": n}))
"""


def write_synthetic(path: Path, n: int, seed: int = 0) -> None:
    """A CSV of about n distinct (user, item) ratings, long-tailed items, zero-padded IDs."""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(n // 100, 10), max(n // 500, 10)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    draws = int(n * 1.05)
    keys = rng.integers(0, n_users, draws) * n_items + rng.choice(
        n_items, size=draws, p=popularity / popularity.sum()
    )
    keys = rng.permutation(np.unique(keys))[:n]
    users, items = keys // n_items, keys % n_items
    n = len(keys)
    ratings = rng.integers(1, 6, n)
    stamps = 880_000_000 + rng.integers(0, 10_000_000, n)
    with open(path, "w") as fh:
        fh.write("user,item,rating,timestamp\n")
        step = 1_000_000
        for s in range(0, n, step):
            e = min(s + step, n)
            cols = [
                np.char.zfill(users[s:e].astype(str), 6),
                np.char.zfill(items[s:e].astype(str), 5),
                ratings[s:e].astype(str),
                stamps[s:e].astype(str),
            ]
            fh.write("\n".join(",".join(row) for row in zip(*cols, strict=True)) + "\n")


def measure(path: Path, how: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), how], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    """Run the benchmark and print a table of medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--file", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or Path(tmp) / "ratings.csv"
        if args.file is None:
            write_synthetic(path, args.ratings)
        size = os.path.getsize(path) / 2**20
        print(
            f"file: {path} ({size:.0f} MiB); machine: {platform.processor() or platform.machine()}"
            f", {os.cpu_count()} cores, python {platform.python_version()}"
        )
        rows = {}
        for how in ("mfrec", "pandas-str", "pandas"):
            runs = [measure(path, how) for _ in range(args.repeats)]
            rows[how] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"{'loader':<22}{'seconds':>9}{'Mratings/s':>12}{'peak MiB':>10}{'arrays MiB':>12}"
            f"{'peak/arrays':>13}"
        )
        for how, r in rows.items():
            name = {
                "mfrec": "mfrec.load_ratings",
                "pandas-str": "pandas, string IDs",
                "pandas": "pandas, int IDs",
            }[how]
            print(
                f"{name:<22}{r['seconds']:>9.2f}{r['n'] / r['seconds'] / 1e6:>12.2f}"
                f"{r['peak_mb']:>10.0f}{r['arrays_mb']:>12.0f}"
                f"{r['peak_mb'] / r['arrays_mb']:>13.2f}"
            )
        for peer in ("pandas-str", "pandas"):
            ratio = rows["mfrec"]["seconds"] / rows[peer]["seconds"]
            print(f"time ratio mfrec/{peer}: {ratio:.2f} (medians of {args.repeats} runs)")


if __name__ == "__main__":
    main()
