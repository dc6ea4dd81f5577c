"""Using a model at 10M scale (issue 15, target 6): `mfrec predict` and `mfrec recommend
--all-users` against the plainest numpy/pandas script doing the same, as whole processes.

Usage: python benchmarks/bench_use.py [--rounds 5] [--work /work/bench] [--model PATH]
                                      [--pairs PATH] [--ratings PATH] [--api-repeats 3]
                                      [--before DIR] [--no-cli] [--no-api]

Inputs (made once and kept in --work when missing):

- the model: ``mfrec train RATINGS -o m10m.npz --factors 64 --epochs 2`` on the 10M file
  (100k users x 20k items; ``mfrec data synth --users 100000 --items 20000 --ratings
  10000000 --seed 1`` makes one);
- the pairs: 1M (user, item) lines drawn from the ratings file (seed 0), 1% of the users and
  1% of the items replaced by IDs the model never saw.

Whole commands, each a fresh process timed from the outside (wall seconds, and the child's
peak RSS from ``wait4``), from the model file to the output file; in every round each command
runs once, in a rotating order, after one warm-up round that is not counted:

- predict: ``mfrec predict MODEL PAIRS -o OUT``;
- predict baseline: pandas reads the pairs (string IDs), ``Index.get_indexer`` maps them to
  the model's ID arrays (read with ``numpy.load``), r̂ = mu + b_u + b_i + rowwise dot of P[u]
  and Q[i] (the mean plus the known bias for an unknown ID), clipped, written by
  ``DataFrame.to_csv(float_format="%.6g")`` (the same columns and number format as mfrec's);
- recommend: ``mfrec recommend MODEL --all-users -k 10 --format csv -o OUT``;
- recommend baseline: blocks of 2,048 users, scores ``P_block @ Q.T + b_i``, the training
  items set to -inf, ``np.argpartition`` and a sort of the top 10, ``mu + b_u`` added, written
  block by block with ``DataFrame.to_csv``;
- with --before DIR: both mfrec commands again from the mfrec package in DIR (for instance
  the commit before a change: ``git archive HEAD mfrec | tar -x -C DIR``), and whether they
  wrote the same bytes.

The Python API, each case in a fresh process, median of --api-repeats calls after a warm-up
call (numba's cache load and first-touch costs excluded): ``model.predict`` on the 1M raw-ID
pairs (pandas' string columns, read beforehand) and ``model.recommend(None, k=10)``, against
the baselines' inner parts (the ID mapping and arithmetic; the blocked argpartition).

Ratios are mfrec / baseline: of the medians, and (in brackets) the median of the per-round
ratios. mfrec's outputs are checked to be the same bytes in every round.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
K = 10
BASELINE_BLOCK = 2048


# -- the baselines (run as `python bench_use.py --child NAME ...`) ----------------------------


def model_arrays(path: str) -> dict:
    """The arrays of an mfrec model file, read as any npz."""
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files if not name.startswith("history")}


def baseline_predict_arrays(m: dict, users, items) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and the `known` labels for raw-ID pairs, the plainest numpy/pandas way."""
    import pandas as pd

    u = pd.Index(m["user_ids"]).get_indexer(users)
    i = pd.Index(m["item_ids"]).get_indexer(items)
    ku, ki = u >= 0, i >= 0
    both = ku & ki
    pred = np.full(len(u), float(m["mu"]))
    pred[ku] += m["bu"][u[ku]]
    pred[ki] += m["bi"][i[ki]]
    pred[both] += np.einsum("nk,nk->n", m["P"][u[both]], m["Q"][i[both]])
    np.clip(pred, m["scale"][0], m["scale"][1], out=pred)
    known = np.array(["none", "item", "user", "both"])[ku * 2 + ki]
    return pred, known


def baseline_predict(model: str, pairs: str, out: str) -> None:
    import pandas as pd

    m = model_arrays(model)
    frame = pd.read_csv(pairs, dtype=str, keep_default_na=False)
    users, items = frame.iloc[:, 0], frame.iloc[:, 1]
    pred, known = baseline_predict_arrays(m, users, items)
    pd.DataFrame({"user": users, "item": items, "prediction": pred, "known": known}).to_csv(
        out, index=False, float_format="%.6g", lineterminator="\n"
    )


def baseline_top_k(m: dict, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Top K item indices and predicted ratings of users start..stop-1, seen items left out."""
    indptr, seen = m["seen_indptr"], m["seen_indices"]
    S = m["P"][start:stop] @ m["Q"].T
    S += m["bi"]
    rows = np.repeat(np.arange(stop - start), np.diff(indptr[start : stop + 1]))
    S[rows, seen[indptr[start] : indptr[stop]]] = -np.inf
    top = np.argpartition(S, -K, axis=1)[:, -K:]
    order = np.argsort(-np.take_along_axis(S, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    scores = np.take_along_axis(S, top, axis=1).astype(np.float64)
    scores += (float(m["mu"]) + m["bu"][start:stop].astype(np.float64))[:, None]
    return top, scores


def baseline_recommend(model: str, out: str) -> None:
    import pandas as pd

    m = model_arrays(model)
    user_ids, item_ids = m["user_ids"], m["item_ids"]
    n = len(user_ids)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        for start in range(0, n, BASELINE_BLOCK):
            stop = min(start + BASELINE_BLOCK, n)
            top, scores = baseline_top_k(m, start, stop)
            pd.DataFrame(
                {
                    "user": np.repeat(user_ids[start:stop], K),
                    "rank": np.tile(np.arange(1, K + 1), stop - start),
                    "item": item_ids[top.ravel()],
                    "score": np.round(scores.ravel(), 4),
                }
            ).to_csv(fh, index=False, header=start == 0, lineterminator="\n")


def api_case(name: str, model: str, pairs: str, repeats: int) -> dict:
    """Seconds of one Python API call (median after a warm-up), in this fresh process."""
    import pandas as pd

    from mfrec.model.estimator import MatrixFactorization

    if "predict" in name:  # the same raw-ID columns for both: pandas' string columns
        frame = pd.read_csv(pairs, dtype=str, keep_default_na=False)
        users, items = frame.iloc[:, 0], frame.iloc[:, 1]
    if name == "api-predict":
        fitted = MatrixFactorization.load(model)
        work = lambda: fitted.predict(users, items, return_known=True)  # noqa: E731
    elif name == "api-predict-baseline":
        m = model_arrays(model)
        work = lambda: baseline_predict_arrays(m, users, items)  # noqa: E731
    elif name == "api-recommend":
        fitted = MatrixFactorization.load(model)
        work = lambda: fitted.recommend(None, K)  # noqa: E731
    else:
        m = model_arrays(model)

        def work():
            n = len(m["user_ids"])
            tops = [
                baseline_top_k(m, s, min(s + BASELINE_BLOCK, n))
                for s in range(0, n, BASELINE_BLOCK)
            ]
            top = np.concatenate([t for t, _ in tops])
            return m["item_ids"].astype(object)[top], np.concatenate([s for _, s in tops])

    setup_rss = rss_mib()
    work()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return {"seconds": times, "setup_rss": setup_rss, "peak_rss": peak_rss_mib()}


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- inputs ---------------------------------------------------------------------------------


def make_model(ratings: Path, model: Path) -> None:
    print(f"training {model} from {ratings} (2 epochs, 64 factors)", file=sys.stderr)
    subprocess.run(
        [*mfrec_cmd(), "train", str(ratings), "-o", str(model), "--factors", "64", "--epochs",
         "2", "-q"],
        check=True,
    )  # fmt: skip


def make_pairs(ratings: Path, pairs: Path, n: int = 1_000_000, seed: int = 0) -> None:
    """`n` (user, item) lines drawn from the ratings file; 1% unknown users, 1% unknown items."""
    import pandas as pd

    print(f"drawing {n:,} pairs from {ratings} into {pairs}", file=sys.stderr)
    rng = np.random.default_rng(seed)
    frame = pd.read_csv(ratings, dtype=str, usecols=[0, 1], keep_default_na=False)
    frame = frame.iloc[rng.choice(len(frame), n, replace=False)]
    users, items = frame.iloc[:, 0].to_numpy(object), frame.iloc[:, 1].to_numpy(object)
    for ids in (users, items):
        unknown = np.flatnonzero(rng.random(n) < 0.01)
        ids[unknown] = ["new-" + s for s in ids[unknown]]
    pd.DataFrame({"user": users, "item": items}).to_csv(pairs, index=False, lineterminator="\n")


def mfrec_cmd() -> list[str]:
    return [sys.executable, "-m", "mfrec"]


# -- running --------------------------------------------------------------------------------


def run_process(argv: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a child process; raises if it fails.

    Linux counts the memory a child was forked with in its peak RSS: this process keeps
    itself small (no pandas, no data) so that the figure is the child's own.
    """
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            message = err.read().decode(errors="replace")
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{message}")
    return wall, usage.ru_maxrss / 1024


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def lines_not_in(a: str, b: str) -> tuple[int, int]:
    """How many lines of file `a` file `b` does not hold (anywhere), and `a`'s line count."""
    with open(b, encoding="utf-8") as fb:
        theirs = set(fb)
    missing = lines = 0
    with open(a, encoding="utf-8") as fa:
        for line in fa:
            missing += line not in theirs
            lines += 1
    return missing, lines


def cli_cases(
    model: Path, pairs: Path, work: Path, before: Path | None
) -> dict[str, tuple[list[str], dict | None]]:
    """argv and environment (None: this one) of each command."""
    me = child_cmd()
    predict = ["predict", str(model), str(pairs), "-o"]
    recommend = ["recommend", str(model), "--all-users", "-k", str(K), "--format", "csv", "-o"]
    cases = {
        "predict": ([*mfrec_cmd(), *predict, str(work / "use_predict.csv")], None),
        "predict-baseline": ([*me, "predict-baseline", str(model), str(pairs),
                              str(work / "use_predict-baseline.csv")], None),
        "recommend": ([*mfrec_cmd(), *recommend, str(work / "use_recommend.csv")], None),
        "recommend-baseline": ([*me, "recommend-baseline", str(model),
                                str(work / "use_recommend-baseline.csv")], None),
    }  # fmt: skip
    if before is not None:
        env = {**os.environ, "PYTHONPATH": str(before)}
        cases["predict-before"] = (
            [*mfrec_cmd(), *predict, str(work / "use_predict-before.csv")],
            env,
        )
        cases["recommend-before"] = (
            [*mfrec_cmd(), *recommend, str(work / "use_recommend-before.csv")],
            env,
        )
    return cases


def run_cli(model: Path, pairs: Path, work: Path, rounds: int, before: Path | None) -> dict:
    cases = cli_cases(model, pairs, work, before)
    names = list(cases)
    results: dict[str, dict] = {name: {"seconds": [], "rss": []} for name in names}
    outputs = [name for name in names if not name.endswith("baseline")]
    digests: dict[str, set[str]] = {name: set() for name in outputs}
    for r in range(rounds + 1):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            wall, rss = run_process(*cases[name])
            label = "warm-up" if r == 0 else f"round {r}"
            print(f"  {label:8} {name:20} {wall:7.2f} s {rss:7.0f} MiB", file=sys.stderr)
            if r:
                results[name]["seconds"].append(wall)
                results[name]["rss"].append(rss)
            if name in digests:
                digests[name].add(digest(work / f"use_{name}.csv"))
    for name in ("predict", "recommend"):
        results[name]["identical_outputs"] = len(digests[name]) == 1
        if before is not None:
            results[name]["same_as_before"] = digests[name] == digests[f"{name}-before"]
        compare = [*child_cmd(), "compare", str(work / f"use_{name}.csv"),
                   str(work / f"use_{name}-baseline.csv")]  # fmt: skip
        out = subprocess.run(compare, check=True, capture_output=True, text=True).stdout
        results[name]["lines_not_in_baseline"] = json.loads(out)
    return results


def run_api(model: Path, pairs: Path, repeats: int) -> dict[str, dict]:
    results = {}
    for name in ("api-predict", "api-predict-baseline", "api-recommend", "api-recommend-baseline"):
        out = subprocess.run(
            [*child_cmd(), name, str(model), str(pairs), str(repeats)],
            check=True,
            capture_output=True,
            text=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        seconds = results[name]["seconds"]
        print(f"  {name:24} {[round(s, 2) for s in seconds]}", file=sys.stderr)
    return results


def versions() -> str:
    import numba
    import pandas as pd

    try:
        import pyarrow

        arrow = pyarrow.__version__
    except ImportError:
        arrow = "absent"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(
        ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; Python {platform.python_version()}, "
        f"numpy {np.__version__}, pandas {pd.__version__}, pyarrow {arrow}, "
        f"numba {numba.__version__}; mfrec at {commit or '?'} (+ working tree)"
    )


def report(cli: dict, api: dict) -> None:
    def med(values):
        return statistics.median(values)

    if cli:
        print(f"\n{'command':22}{'median s':>10}{'min s':>8}{'max s':>8}{'peak RSS MiB':>14}")
        for name, r in cli.items():
            s = r["seconds"]
            print(f"{name:22}{med(s):>10.2f}{min(s):>8.2f}{max(s):>8.2f}{med(r['rss']):>14.0f}")
        for name in ("predict", "recommend"):
            ours, base = cli[name], cli[f"{name}-baseline"]
            per_round = [a / b for a, b in zip(ours["seconds"], base["seconds"], strict=True)]
            diff, lines = ours["lines_not_in_baseline"]
            print(
                f"{name}: {med(ours['seconds']) / med(base['seconds']):.2f}x the baseline's time "
                f"({med(per_round):.2f}x per round), {med(ours['rss']) / med(base['rss']):.2f}x "
                f"its peak RSS; same output every round: {ours['identical_outputs']}; "
                f"{diff:,} of its {lines:,} lines are not in the baseline's output"
            )
            if f"{name}-before" in cli:
                old = cli[f"{name}-before"]
                per_round = [a / b for a, b in zip(ours["seconds"], old["seconds"], strict=True)]
                print(
                    f"{name}: {med(ours['seconds']) / med(old['seconds']):.2f}x the time of "
                    f"--before ({med(per_round):.2f}x per round); the same bytes as --before: "
                    f"{ours['same_as_before']}"
                )
    if api:
        print(f"\n{'Python API call':26}{'median s':>10}{'setup RSS':>11}{'peak RSS MiB':>14}")
        for name, r in api.items():
            print(
                f"{name:26}{med(r['seconds']):>10.3f}{r['setup_rss']:>11.0f}{r['peak_rss']:>14.0f}"
            )
        for name in ("api-predict", "api-recommend"):
            ratio = med(api[name]["seconds"]) / med(api[f"{name}-baseline"]["seconds"])
            print(f"{name}: {ratio:.2f}x the baseline's time")


def child_cmd() -> list[str]:
    return [sys.executable, str(HERE), "--child"]


def child(argv: list[str]) -> None:
    name, *rest = argv
    if name == "versions":
        print(versions())
    elif name == "make-pairs":
        make_pairs(Path(rest[0]), Path(rest[1]))
    elif name == "compare":
        print(json.dumps(lines_not_in(*rest)))
    elif name == "predict-baseline":
        baseline_predict(*rest)
    elif name == "recommend-baseline":
        baseline_recommend(*rest)
    else:
        model, pairs, repeats = rest
        print(json.dumps(api_case(name, model, pairs, int(repeats))))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/work/bench"))
    parser.add_argument("--ratings", type=Path, default=None, help="default WORK/r10m.csv")
    parser.add_argument("--model", type=Path, default=None, help="default WORK/m10m.npz")
    parser.add_argument("--pairs", type=Path, default=None, help="default WORK/pairs1m.csv")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--api-repeats", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true")
    parser.add_argument("--no-api", action="store_true")
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="a folder holding another mfrec package (e.g. `git archive HEAD mfrec | tar -x "
        "-C DIR`): its two commands run too, on PYTHONPATH=DIR",
    )
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    ratings = (args.ratings or work / "r10m.csv").resolve()
    model = (args.model or work / "m10m.npz").resolve()
    pairs = (args.pairs or work / "pairs1m.csv").resolve()
    before = args.before.resolve() if args.before else None
    # Children start in WORK: a checkout in the current folder would shadow both packages.
    os.chdir(work)
    if not model.exists():
        make_model(ratings, model)
    if not pairs.exists():
        subprocess.run([*child_cmd(), "make-pairs", str(ratings), str(pairs)], check=True)
    info = subprocess.run([*child_cmd(), "versions"], check=True, capture_output=True, text=True)
    print(f"# {info.stdout.strip()}")
    print(f"# model {model}, pairs {pairs}; {args.rounds} rounds, API median of {args.api_repeats}")
    cli = {} if args.no_cli else run_cli(model, pairs, work, args.rounds, before)
    api = {} if args.no_api else run_api(model, pairs, args.api_repeats)
    report(cli, api)


if __name__ == "__main__":
    main()
