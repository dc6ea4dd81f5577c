"""Speed side by side: mfrec's SGD against Surprise's SVD and LIBMF's mf-train.

Usage:
    python benchmarks/bench_speed.py [--cases ml100k,synth10m,threads,bgd,process]
        [--libmf PATH/TO/mf-train] [--no-surprise] [--repeats 5] [--data DIR] [--work DIR]
    python benchmarks/bench_speed.py --cases huge      # 100M ratings: memory and scale

LIBMF is not part of mfrec: build it yourself from its public source and pass the path of its
``mf-train`` (``mf-predict`` is expected next to it). Surprise runs when scikit-surprise
imports. Every tool gets the same files, the same k, the same number of epochs; mfrec and
Surprise run with their own defaults otherwise, LIBMF with ``mf-train -s THREADS -k K -t EPOCHS``
(its defaults: L2 0.1, learning rate 0.1). The tools run one after the other, round after
round; each figure is the median over the rounds, and each ratio the median of the per-round
ratios, so a busy machine slows both sides of a ratio alike. In the side-by-side cases every
tool runs ``--best-of`` times per round (default 3) and its fastest run counts: the least
disturbed run estimates a tool's own cost, and all tools get the same treatment.

Measures:
    ratings/s   training throughput: ratings x epochs / training seconds. For mfrec the
                solver's time (history ``seconds``, setup excluded; evaluation after each epoch
                is excluded too). For LIBMF the marginal cost of an epoch, (wall of -t M+1 minus
                wall of -t 1) / M, so that reading the text file is not counted (its first
                iteration only updates a few factors); M = E, except on MovieLens where 20
                epochs take ~0.15 s and M = 100 keeps timer noise out of the difference.
                For Surprise ``fit`` time.
    fit s       wall time of one whole fit: mfrec's ``fit`` (with its evaluation after each
                epoch), LIBMF's process (-t E), Surprise's ``fit``.
    test RMSE   predictions clipped to the rating scale; unknown users or items get each
                tool's fallback.

Cases:
    ml100k      MovieLens 100k u1.base -> u1.test, k=100, 20 epochs, 1 thread.
    accuracy    the same on u1..u5, mean test RMSE of mfrec and LIBMF (accuracy only).
    synth10m    10M synthetic ratings (100k users, 20k items, long tails; `mfrec data synth`,
                90/10 random split), k=64, 10 epochs, 1 thread: mfrec and LIBMF.
    threads     synth10m and ml100k with 1 and 2 threads (mfrec: the same model either way).
    bgd         seconds of one bgd epoch / one sgd epoch, same data and k (ml100k, synth10m).
    process     `mfrec train` on u1.base (20 epochs, k=100) as a whole process, warm numba
                cache and cold (an empty NUMBA_CACHE_DIR: every kernel the fit calls is
                compiled), against a Python script that loads the file and fits Surprise's SVD.
    huge        100M synthetic ratings (1M users, 50k items) written by `mfrec data synth`,
                trained by `mfrec -v train` (k=64, 2 epochs): peak RSS, load and epoch time,
                and the RSS of each phase between two log lines (sampled every 50 ms).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.load import load_ratings
from mfrec.ratings.ratingdata import RatingData

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-100k"
ALL_CASES = ("ml100k", "accuracy", "synth10m", "threads", "bgd", "process")


@dataclass
class Split:
    """A training set and its test ratings, as mfrec data and as LIBMF text files."""

    name: str
    train: RatingData
    test_users: np.ndarray
    test_items: np.ndarray
    test_ratings: np.ndarray
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return len(self.train)


@dataclass
class Result:
    """One tool's runs on one case."""

    case: str
    tool: str
    threads: int
    per_second: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    rmse: float = float("nan")

    def median(self, what: str) -> float:
        values = getattr(self, what)
        return statistics.median(values) if values else float("nan")


def rmse(pred: np.ndarray, truth: np.ndarray, scale: tuple[float, float]) -> float:
    """RMSE of predictions clipped to the rating scale."""
    e = np.clip(pred, *scale) - truth
    return float(np.sqrt(np.mean(e * e)))


# --- data ----------------------------------------------------------------------------------


def movielens_split(data: Path, k: int) -> Split:
    train = load_ratings(data / f"u{k}.base", preset="ml-100k").compact()
    test = load_ratings(data / f"u{k}.test", preset="ml-100k")
    frame = test.to_frame()
    return Split(
        f"ml-100k u{k}",
        train,
        frame["user"].to_numpy(),
        frame["item"].to_numpy(),
        test.ratings.astype(np.float64),
    )


def synthetic_split(work: Path, users: int, items: int, ratings: int, name: str) -> Split:
    path = work / f"{name}.csv"
    if not path.exists():
        print(f"writing {path} with mfrec data synth ...", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mfrec",
                "data",
                "synth",
                "--users",
                str(users),
                "--items",
                str(items),
                "--ratings",
                str(ratings),
                "--seed",
                "1",
                "-o",
                str(path),
                "-q",
            ],
            check=True,
        )
    data = load_ratings(path, columns="user,item,rating")
    test_rows = np.random.default_rng(0).random(len(data)) < 0.1
    test = data.subset(test_rows)
    return Split(
        name,
        data.subset(~test_rows).compact(),
        test.user_map.to_ids(test.users),
        test.item_map.to_ids(test.items),
        test.ratings.astype(np.float64),
    )


def libmf_files(split: Split, work: Path) -> None:
    """Write the split as LIBMF text (user index, item index, rating), indices of the training
    maps; a test user or item unseen in training gets an index past the end (LIBMF then
    predicts its global mean)."""
    t = split.train
    stem = work / split.name.replace(" ", "_")
    train_file, test_file = Path(f"{stem}.libmf-train"), Path(f"{stem}.libmf-test")
    if not train_file.exists():
        _write_triples(train_file, t.users, t.items, t.ratings)
    if not test_file.exists():
        u = t.user_map.indices(split.test_users)
        i = t.item_map.indices(split.test_items)
        u[u < 0] = t.n_users
        i[i < 0] = t.n_items
        _write_triples(test_file, u, i, split.test_ratings)
    split.files = {"train": train_file, "test": test_file}


def _write_triples(path: Path, users, items, ratings) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        for start in range(0, len(users), 1 << 20):
            sl = slice(start, start + (1 << 20))
            np.savetxt(fh, np.column_stack([users[sl], items[sl], ratings[sl]]), fmt="%d %d %g")
    tmp.replace(path)


# --- the tools -----------------------------------------------------------------------------


def warm_up(split: Split, k: int) -> None:
    """One short fit of each solver and thread setting on `split`, untimed, so that numba
    loads (or compiles) the kernels for these very array types outside the timings; the cold
    start is measured by the ``process`` case."""
    for threads in (1, None):
        for solver in ("sgd", "bgd"):
            MatrixFactorization(solver, factors=k, epochs=1, seed=0, threads=threads).fit(
                split.train
            )


def run_mfrec(split: Split, k: int, epochs: int, threads: int, seed: int, solver: str = "sgd"):
    """(ratings/s, fit seconds, test RMSE, seconds per epoch) of one mfrec fit."""
    model = MatrixFactorization(solver, factors=k, epochs=epochs, seed=seed, threads=threads)
    start = time.perf_counter()
    model.fit(split.train)
    fit_seconds = time.perf_counter() - start
    seconds = model.history_["seconds"].to_numpy()
    per_epoch = (seconds[-1] - seconds[0]) / epochs
    pred = model.predict(split.test_users, split.test_items)
    error = rmse(pred, split.test_ratings, split.train.scale)
    return split.n_train / per_epoch, fit_seconds, error, per_epoch


def run_surprise(split: Split, k: int, epochs: int, seed: int):
    """(ratings/s, fit seconds, test RMSE) of Surprise's SVD with its defaults otherwise."""
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    frame = split.train.to_frame()[["user", "item", "rating"]]
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=split.train.scale))
    trainset = trainset.build_full_trainset()
    algo = SVD(n_factors=k, n_epochs=epochs, random_state=seed)
    start = time.perf_counter()
    algo.fit(trainset)
    fit_seconds = time.perf_counter() - start
    test = pd.DataFrame({"u": split.test_users, "i": split.test_items, "r": split.test_ratings})
    pred = np.array([p.est for p in algo.test(test.itertuples(index=False, name=None))])
    return (
        split.n_train * epochs / fit_seconds,
        fit_seconds,
        rmse(pred, split.test_ratings, split.train.scale),
    )


class Libmf:
    """LIBMF's command-line tools, used as a separate process."""

    def __init__(self, train_path: Path, work: Path):
        self.train_path = train_path
        self.predict_path = train_path.with_name("mf-predict")
        self.work = work

    def train(self, split: Split, k: int, epochs: int, threads: int) -> float:
        """Wall seconds of ``mf-train -s threads -k k -t epochs``."""
        cmd = [str(self.train_path), "-s", str(threads), "-k", str(k), "-t", str(epochs)]
        start = time.perf_counter()
        subprocess.run(
            [*cmd, "--quiet", str(split.files["train"]), str(self.model_file(split))],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - start

    def model_file(self, split: Split) -> Path:
        return self.work / (split.name.replace(" ", "_") + ".libmf-model")

    def epoch_seconds(
        self, split: Split, k: int, marginal: int, threads: int, best_of: int = 1
    ) -> float:
        """The marginal cost of an epoch: (wall of -t marginal+1 - wall of -t 1) / marginal.

        With `best_of` > 1 each run is repeated and its fastest wall time kept (the difference
        of two single walls of ~0.2 s is mostly noise on a busy machine)."""
        first = min(self.train(split, k, 1, threads) for _ in range(best_of))
        longer = min(self.train(split, k, marginal + 1, threads) for _ in range(best_of))
        return max(longer - first, 1e-9) / marginal

    def run(
        self,
        split: Split,
        k: int,
        epochs: int,
        threads: int,
        best_of: int = 1,
        marginal: int | None = None,
    ):
        """(ratings/s from `epoch_seconds` over `marginal` epochs (default `epochs`), fit
        seconds of -t epochs, test RMSE); every run the fastest of `best_of`."""
        per_epoch = self.epoch_seconds(split, k, marginal or epochs, threads, best_of)
        fit_seconds = min(self.train(split, k, epochs, threads) for _ in range(best_of))
        out = self.work / "libmf-predictions.txt"
        subprocess.run(
            [
                str(self.predict_path),
                str(split.files["test"]),
                str(self.model_file(split)),
                str(out),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        pred = np.loadtxt(out)
        return (
            split.n_train / per_epoch,
            fit_seconds,
            rmse(pred, split.test_ratings, split.train.scale),
        )


# --- cases ---------------------------------------------------------------------------------


def compare(
    case: str,
    split: Split,
    k: int,
    epochs: int,
    threads: int,
    repeats: int,
    libmf: Libmf | None,
    surprise: bool,
    best_of: int = 1,
    marginal: int | None = None,
) -> list[Result]:
    """mfrec and the available peers on one split, `repeats` interleaved rounds; in each
    round every tool runs `best_of` times and its fastest run counts (for all tools alike)."""
    results = {"mfrec sgd": Result(case, "mfrec sgd", threads)}
    if libmf is not None:
        results["LIBMF"] = Result(case, "LIBMF", threads)
    if surprise:
        results["Surprise SVD"] = Result(case, "Surprise SVD", 1)
    for rnd in range(repeats):
        for name, res in results.items():
            if name == "mfrec sgd":
                tries = [run_mfrec(split, k, epochs, threads, seed=rnd) for _ in range(best_of)]
                per_s, fit_s, err, _ = max(tries, key=lambda t: t[0])
            elif name == "LIBMF":
                per_s, fit_s, err = libmf.run(split, k, epochs, threads, best_of, marginal)
            else:
                tries = [run_surprise(split, k, epochs, seed=rnd) for _ in range(best_of)]
                per_s, fit_s, err = max(tries, key=lambda t: t[0])
            res.per_second.append(per_s)
            res.fit_seconds.append(fit_s)
            if rnd == 0:
                res.rmse = err
            print(
                f"  {case} round {rnd}: {name} {per_s / 1e6:.2f}M ratings/s, fit {fit_s:.2f} s, "
                f"RMSE {err:.4f}",
                file=sys.stderr,
            )
    return list(results.values())


def accuracy(data: Path, libmf: Libmf | None, work: Path) -> list[str]:
    """Mean test RMSE over u1..u5 (k=100, 20 epochs), mfrec default sgd and LIBMF."""
    mf, lm = [], []
    for s in range(1, 6):
        split = movielens_split(data, s)
        mf.append(run_mfrec(split, 100, 20, 1, seed=0)[2])
        if libmf is not None:
            libmf_files(split, work)
            lm.append(libmf.run(split, 100, 20, 1)[2])
    lines = [
        f"accuracy u1..u5 (k=100, 20 epochs): mfrec sgd {' '.join(f'{x:.4f}' for x in mf)} "
        f"mean {np.mean(mf):.4f}"
    ]
    if lm:
        lines.append(
            f"                                   LIBMF     {' '.join(f'{x:.4f}' for x in lm)}"
            f" mean {np.mean(lm):.4f}"
        )
    return lines


def thread_scaling(split: Split, k: int, epochs: int, repeats: int, libmf: Libmf | None):
    """mfrec sgd with 1 and 2 threads (and LIBMF -s 1 / -s 2), interleaved."""
    runs: dict[str, list[float]] = defaultdict(list)
    same_model = None
    for rnd in range(repeats):
        models = []
        for threads in (1, 2):
            model = MatrixFactorization(factors=k, epochs=epochs, seed=rnd, threads=threads)
            model.fit(split.train)
            s = model.history_["seconds"].to_numpy()
            runs[f"mfrec {threads}"].append((s[-1] - s[0]) / epochs)
            models.append(model.user_factors_)
            if libmf is not None:
                runs[f"LIBMF {threads}"].append(libmf.epoch_seconds(split, k, epochs, threads))
        same_model = np.array_equal(models[0], models[1]) if same_model is None else same_model
    lines = []
    for tool in ("mfrec", "LIBMF"):
        if f"{tool} 1" not in runs:
            continue
        one, two = np.array(runs[f"{tool} 1"]), np.array(runs[f"{tool} 2"])
        lines.append(
            f"{split.name} k={k}: {tool} epoch {np.median(one):.4f} s with 1 thread, "
            f"{np.median(two):.4f} s with 2: speed-up {np.median(one / two):.2f}x"
        )
    lines.append(f"  mfrec factors identical with 1 and 2 threads: {same_model}")
    return lines


def bgd_cost(split: Split, k: int, repeats: int) -> list[str]:
    """Seconds of one bgd epoch against one sgd epoch, same data, k and threads."""
    lines = []
    for threads in (1, None):
        ratios, sgd_s, bgd_s = [], [], []
        for rnd in range(repeats):
            s = run_mfrec(split, k, 5, threads, seed=rnd)[3]
            b = run_mfrec(split, k, 5, threads, seed=rnd, solver="bgd")[3]
            sgd_s.append(s)
            bgd_s.append(b)
            ratios.append(b / s)
        lines.append(
            f"{split.name} k={k} threads={threads or 'all'}: bgd epoch "
            f"{statistics.median(bgd_s):.4f} s, sgd epoch {statistics.median(sgd_s):.4f} s: "
            f"bgd/sgd {statistics.median(ratios):.2f}"
        )
    return lines


SURPRISE_SCRIPT = """\
import sys
from surprise import SVD, Dataset, Reader
data = Dataset.load_from_file(sys.argv[1], reader=Reader("ml-100k"))
SVD(n_factors=100, n_epochs=20, random_state=0).fit(data.build_full_trainset())
"""


def whole_process(data: Path, work: Path, repeats: int, surprise: bool) -> list[str]:
    """`mfrec train` as a process (warm and cold numba cache) against a Surprise script."""
    base = str(data / "u1.base")
    mfrec_cmd = [
        sys.executable,
        "-m",
        "mfrec",
        "train",
        base,
        "-o",
        str(work / "m.npz"),
        "--epochs",
        "20",
        "--factors",
        "100",
        "-q",
    ]
    script = work / "surprise_svd.py"
    script.write_text(SURPRISE_SCRIPT)
    # Python's bytecode cache on, as for an installed package: a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile mfrec's modules from source every time.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(mfrec_cmd, check=True, stdout=subprocess.DEVNULL, env=env)  # warm up
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        times["mfrec"].append(_wall(mfrec_cmd, env))
        if surprise:
            times["surprise"].append(_wall([sys.executable, str(script), base], env))
        times["python"].append(_wall([sys.executable, "-c", "pass"], env))
    cold = []
    for _ in range(max(1, repeats // 2)):
        with tempfile.TemporaryDirectory(dir=work) as cache:
            cold.append(_wall(mfrec_cmd, {**env, "NUMBA_CACHE_DIR": cache}))
    lines = [
        f"mfrec train u1.base (20 epochs, k=100): warm cache "
        f"{statistics.median(times['mfrec']):.2f} s, "
        f"cold cache (kernels compiled) {statistics.median(cold):.2f} s; bare Python start "
        f"{statistics.median(times['python']):.2f} s"
    ]
    if surprise:
        import surprise as surprise_module

        ratios = np.array(times["mfrec"]) / np.array(times["surprise"])
        lines.append(
            f"  Surprise {surprise_module.__version__} script "
            f"{statistics.median(times['surprise']):.2f} s; mfrec / Surprise wall time "
            f"{np.median(ratios):.2f} (rounds {ratios.min():.2f}-{ratios.max():.2f})"
        )
    return lines


def _wall(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def huge(work: Path, path: Path | None, epochs: int) -> list[str]:
    """Train on 100M synthetic ratings in a child process; peak RSS, load and epoch seconds."""
    path = path or work / "synth100m.csv"
    if not path.exists():
        print(f"writing {path} with mfrec data synth (100M ratings) ...", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mfrec",
                "data",
                "synth",
                "--users",
                "1000000",
                "--items",
                "50000",
                "--ratings",
                "100000000",
                "--seed",
                "1",
                "-o",
                str(path),
                "-q",
            ],
            check=True,
        )
    history = work / "huge-history.csv"
    cmd = [
        sys.executable,
        "-m",
        "mfrec",
        "-v",
        "train",
        str(path),
        "-o",
        str(work / "huge.npz"),
        "--columns",
        "user,item,rating",
        "--factors",
        "64",
        "--epochs",
        str(epochs),
        "--history",
        str(history),
        "-q",
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    logged: list[tuple[float, str]] = []
    reader = threading.Thread(target=_timestamped, args=(proc.stderr, logged, start))
    reader.start()
    samples = _sample_rss(proc.pid, start)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    reader.join()
    if status != 0:
        sys.stderr.write("".join(text for _, text in logged))
        raise RuntimeError(f"mfrec train failed: {cmd}")
    import pandas as pd

    h = pd.read_csv(history)
    epoch_seconds = np.diff(h["seconds"].to_numpy())
    eval_seconds = np.diff(h["eval_seconds"].to_numpy())
    peak_gib = usage.ru_maxrss * 1024 / 2**30
    loaded_at = next(
        (t for t, text in logged if "mfrec.ratings.load: loaded" in text), float("nan")
    )
    return [
        f"100M ratings ({path.name}, {path.stat().st_size / 2**30:.1f} GiB CSV), k=64, "
        f"{epochs} epochs: peak RSS {peak_gib:.2f} GiB, start to data loaded {loaded_at:.0f} s, "
        f"setup {h['seconds'].iloc[0]:.1f} s, epoch {np.median(epoch_seconds):.1f} s (+ "
        f"{np.median(eval_seconds):.1f} s evaluation), whole process {wall:.0f} s",
        "  RSS per phase (each phase ends with the log line named; peak sampled every 50 ms):",
        *_phases(samples, logged, wall),
    ]


def _timestamped(stream, out: list[tuple[float, str]], start: float) -> None:
    """Append (seconds since start, line) for each line of `stream` until it closes."""
    for line in stream:
        out.append((time.perf_counter() - start, line))


def _sample_rss(pid: int, start: float, every: float = 0.05) -> list[tuple[float, int]]:
    """(seconds since start, RSS bytes) of a child every `every` seconds until it exits
    (without reaping it, so that wait4 still reports its peak)."""
    samples = []
    status = Path(f"/proc/{pid}/status")
    while True:
        try:
            text = status.read_text()
        except OSError:
            break
        rss = next((ln.split()[1] for ln in text.splitlines() if ln.startswith("VmRSS:")), None)
        if rss is None:  # a zombie: the child has exited
            break
        samples.append((time.perf_counter() - start, int(rss) * 1024))
        time.sleep(every)
    return samples


def _phases(samples: list[tuple[float, int]], logged: list[tuple[float, str]], wall: float):
    """One line per log line: when it came, the RSS then and the peak since the line before."""
    lines, since = [], 0.0
    for at, text in [*logged, (wall, "(exit)")]:
        now = next((rss for t, rss in reversed(samples) if t <= at), 0)
        # A phase shorter than the sampling interval: its peak is the RSS at its end.
        peak = max((rss for t, rss in samples if since <= t <= at), default=now)
        # Log lines start with the date and time: keep the logger's name and the message.
        message = text.strip().split(" ", 2)[-1] if text[:1].isdigit() else text.strip()
        lines.append(
            f"    {at:6.1f} s  RSS {now / 2**30:5.2f} GiB, peak {peak / 2**30:5.2f} GiB  "
            f"{message[:90]}"
        )
        since = at
    return lines


# --- report --------------------------------------------------------------------------------


def table(results: list[Result]) -> list[str]:
    lines = [
        "| case | tool | threads | M ratings/s | fit s | test RMSE | mfrec ratings/s ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    by_case = defaultdict(list)
    for r in results:
        by_case[r.case].append(r)
    for case, rows in by_case.items():
        ours = next(r for r in rows if r.tool.startswith("mfrec"))
        for r in rows:
            ratio = (
                ""
                if r is ours
                else f"{np.median(np.array(ours.per_second) / np.array(r.per_second)):.2f}x"
            )
            lines.append(
                f"| {case} | {r.tool} | {r.threads} | {r.median('per_second') / 1e6:.2f} | "
                f"{r.median('fit_seconds'):.2f} | {r.rmse:.4f} | {ratio} |"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(ALL_CASES), help=f"of {ALL_CASES} and huge")
    parser.add_argument("--libmf", type=Path, default=None, help="path of LIBMF's mf-train")
    parser.add_argument("--no-surprise", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--best-of", type=int, default=3, help="runs per tool and round; the fastest counts"
    )
    parser.add_argument("--data", type=Path, default=DATA, help="MovieLens 100k folder")
    parser.add_argument("--work", type=Path, default=None, help="folder for generated files")
    parser.add_argument("--huge-file", type=Path, default=None, help="an existing 100M CSV")
    parser.add_argument("--huge-epochs", type=int, default=2)
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="mfrec-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    surprise = not args.no_surprise
    if surprise:
        try:
            import surprise as _  # noqa: F401
        except ImportError:
            print("scikit-surprise not importable: no Surprise figures", file=sys.stderr)
            surprise = False
    libmf = Libmf(args.libmf, work) if args.libmf else None

    results: list[Result] = []
    notes: list[str] = []
    ml = movielens_split(args.data, 1) if {"ml100k", "threads", "bgd"} & set(cases) else None
    if ml is not None:
        warm_up(ml, 100)
    if ml is not None and libmf is not None:
        libmf_files(ml, work)
    big = None
    if {"synth10m", "threads", "bgd"} & set(cases):
        big = synthetic_split(work, 100_000, 20_000, 10_000_000, "synth10m")
        warm_up(big, 64)
        if libmf is not None:
            libmf_files(big, work)
    if "ml100k" in cases:
        results += compare(
            "ml-100k u1, k=100, 20 ep",
            ml,
            100,
            20,
            1,
            args.repeats,
            libmf,
            surprise,
            args.best_of,
            marginal=100,
        )
    if "accuracy" in cases:
        notes += accuracy(args.data, libmf, work)
    if "synth10m" in cases:
        results += compare(
            "synth 10M, k=64, 10 ep", big, 64, 10, 1, max(1, args.repeats // 2), libmf, False
        )
    if "threads" in cases:
        notes += thread_scaling(big, 64, 5, max(1, args.repeats // 2), libmf)
        notes += thread_scaling(ml, 100, 20, args.repeats, libmf)
    if "bgd" in cases:
        notes += bgd_cost(ml, 100, args.repeats)
        notes += bgd_cost(big, 64, max(1, args.repeats // 2))
    if "process" in cases:
        notes += whole_process(args.data, work, args.repeats, surprise)
    if "huge" in cases:
        notes += huge(work, args.huge_file, args.huge_epochs)

    import numba

    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, numba {numba.__version__}; medians of {args.repeats} rounds"
    )
    if results:
        print("\n".join(table(results)))
    for line in notes:
        print(line)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
