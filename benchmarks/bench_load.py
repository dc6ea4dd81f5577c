"""Loading speed and peak memory: mfrec.load_ratings against pyarrow's CSV reader and pandas.

Usage: python benchmarks/bench_load.py [--file PATH | --ratings 10000000] [--repeats 5]
                                       [--loaders mfrec,pyarrow,pandas-str,pandas,mfrec-pandas]

Writes a synthetic CSV (user,item,rating,timestamp with string-like IDs) unless --file is
given (`mfrec data synth --users 100000 --items 20000 --ratings 10000000 --seed 1` makes the
issue 15 file), then loads it in a fresh subprocess per run, the loaders taking turns round
after round so that a busy machine slows them alike. Each child times its imports and its
load (numpy is imported before the clock starts in every child) and reports its whole peak
RSS. The peers:

- pyarrow: ``pyarrow.csv.read_csv`` with the first two columns as strings, then
  ``pyarrow.compute.dictionary_encode`` of both: the least any loader of string IDs does
  (issue 15's yardstick: mfrec must take at most 1.5x its time);
- pandas-str: ``pandas.read_csv`` with string IDs (no integer indices, no checks);
- pandas: ``pandas.read_csv`` reading IDs as integers (loses leading zeros; no checks);
- mfrec-pandas: mfrec's loader with pyarrow's parser turned off (``load.USE_ARROW = False``):
  pandas' C parser in chunks, as big files were read before issue 15 (run when asked for).

Ratios are of the medians, and (in brackets) the median of the per-round ratios.
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
import numpy as np
path, how = sys.argv[1], sys.argv[2]
with open(path, "rb") as fh:
    names = fh.readline().decode().strip().split(",")  # the first two hold the IDs
t = time.perf_counter()
if how.startswith("mfrec"):
    import mfrec.ratings.load
    mfrec.ratings.load.USE_ARROW = how == "mfrec"
    data = mfrec.ratings.load.load_ratings(path)
    columns = (data.users, data.items, data.ratings, data.timestamps)
    arrays = sum(a.nbytes for a in columns if a is not None)
    n = len(data)
elif how == "pyarrow":
    import pyarrow as pa, pyarrow.csv as pv, pyarrow.compute as pc
    table = pv.read_csv(
        path,
        convert_options=pv.ConvertOptions(column_types={c: pa.string() for c in names[:2]}),
    )
    users, items = (pc.dictionary_encode(table.column(c)) for c in names[:2])
    arrays = table.nbytes + users.nbytes + items.nbytes
    n = table.num_rows
else:
    import pandas as pd
    frame = pd.read_csv(path, dtype=dict.fromkeys(names[:2], str) if how == "pandas-str" else None)
    arrays = int(frame.memory_usage(deep=True).sum())
    n = len(frame)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "arrays_mb": arrays / 2**20, "n": n}))
"""

NAMES = {
    "mfrec": "mfrec.load_ratings",
    "mfrec-pandas": "mfrec, pandas' parser (USE_ARROW off)",
    "pyarrow": "pyarrow read_csv + dictionary_encode",
    "pandas-str": "pandas, string IDs",
    "pandas": "pandas, int IDs",
}


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


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    with open("/proc/meminfo") if os.path.exists("/proc/meminfo") else open(os.devnull) as fh:
        total = next((int(ln.split()[1]) for ln in fh if ln.startswith("MemTotal")), 0)
    return f"{model}, {os.cpu_count()} cores, {total / 2**20:.0f} GiB"


def versions() -> str:
    code = (
        "import pyarrow as a, pandas as p, numpy as n; "
        "print(a.__version__, p.__version__, n.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pa_v, pd_v, np_v = out.stdout.split()
    return f"python {platform.python_version()}, pyarrow {pa_v}, pandas {pd_v}, numpy {np_v}"


def main() -> None:
    """Run the benchmark and print a table of medians and the ratios to mfrec."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--file", type=Path)
    ap.add_argument("--loaders", default="mfrec,pyarrow,pandas-str,pandas")  # or mfrec-pandas
    args = ap.parse_args()
    loaders = args.loaders.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or Path(tmp) / "ratings.csv"
        if args.file is None:
            write_synthetic(path, args.ratings)
        size = os.path.getsize(path) / 2**20
        print(f"file: {path} ({size:.0f} MiB); machine: {machine()}; {versions()}")
        runs: dict[str, list[dict]] = {how: [] for how in loaders}
        for _ in range(args.repeats):
            for how in loaders:
                runs[how].append(measure(path, how))
    rows = {
        how: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for how, rs in runs.items()
    }
    print(f"{'loader':<38}{'seconds':>9}{'Mratings/s':>12}{'peak RSS MiB':>14}{'arrays MiB':>12}")
    for how, r in rows.items():
        print(
            f"{NAMES[how]:<38}{r['seconds']:>9.2f}{r['n'] / r['seconds'] / 1e6:>12.2f}"
            f"{r['peak_mb']:>14.0f}{r['arrays_mb']:>12.0f}"
        )
    if "mfrec" not in rows:
        return
    for peer in loaders:
        if peer == "mfrec":
            continue
        for key, what in (("seconds", "time"), ("peak_mb", "peak RSS")):
            ratio = rows["mfrec"][key] / rows[peer][key]
            per_round = statistics.median(
                a[key] / b[key] for a, b in zip(runs["mfrec"], runs[peer], strict=True)
            )
            print(
                f"{what} mfrec/{peer}: {ratio:.2f} ({per_round:.2f} by round; "
                f"medians of {args.repeats} runs)"
            )
    print("mfrec seconds, run by run:", " ".join(f"{r['seconds']:.2f}" for r in runs["mfrec"]))


if __name__ == "__main__":
    main()
