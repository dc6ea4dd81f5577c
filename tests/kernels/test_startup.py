"""Start-up: numba's BLAS probe deferred, and the note shown when the kernels compile."""

import io
import os
import subprocess
import sys

import pytest
from numba import njit

from mfrec.kernels.startup import COMPILE_NOTE, DeferredBlasCheck, announce_compilation


def test_the_note_comes_once_when_a_function_compiles():
    @njit  # defined here: never in a cache, so calling it compiles it
    def plus_one(x):
        return x + 1

    out = io.StringIO()
    with announce_compilation("compiling", out):
        plus_one(1)
        plus_one(2.0)  # a second compilation, no second note
    assert out.getvalue() == "compiling\n"
    out = io.StringIO()
    with announce_compilation("compiling", out):
        plus_one(3)  # compiled already
    assert out.getvalue() == ""


def test_no_note_is_silent(capsys):
    @njit
    def twice(x):
        return 2 * x

    with announce_compilation(None):
        twice(1)
    assert capsys.readouterr().err == ""


def test_the_deferred_check_runs_once_when_asked():
    calls = []
    have_blas = DeferredBlasCheck(lambda: calls.append(1) or True)
    assert calls == []
    assert have_blas and have_blas
    assert calls == [1]


# A fresh process: a kernel runs without scipy.linalg; a function that asks numba's BLAS check
# (np.convolve) still gets it.
BLAS_PROBE = """\
import sys
import numpy as np
from numba import njit
from mfrec.kernels.group import row_counts
from mfrec.kernels.startup import load_numba
load_numba()
assert row_counts(np.array([0, 2, 2], np.int32), 3).tolist() == [1, 0, 2]
print("scipy.linalg" in sys.modules)
@njit
def convolve(a, b):
    return np.convolve(a, b)
print(convolve(np.ones(3), np.ones(2)).tolist(), "scipy.linalg" in sys.modules)
import numba.np.arraymath
print(bool(numba.np.arraymath._HAVE_BLAS))
"""


@pytest.mark.slow
def test_numba_checks_for_a_blas_only_when_a_function_needs_one():
    out = subprocess.run(
        [sys.executable, "-c", BLAS_PROBE], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines() == ["False", "[1.0, 2.0, 2.0, 1.0] True", "True"]


def test_a_fit_does_not_import_scipy_linalg(tmp_path):
    code = (
        "import sys, numpy as np; from mfrec.model.estimator import MatrixFactorization; "
        "from mfrec.ratings.ratingdata import RatingData; "
        "rng = np.random.default_rng(0); n = 3000; "
        "data = RatingData.from_ids(rng.integers(0, 60, n), rng.integers(0, 40, n), "
        "rng.integers(1, 6, n).astype(float)); "
        "MatrixFactorization(factors=4, epochs=2, progress=False).fit(data); "
        "print('scipy.linalg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_the_first_run_says_it_compiles_and_the_next_does_not(tmp_path):
    # A fresh numba cache: the first run compiles a small fit's kernels (~5 s here).
    ratings = tmp_path / "r.csv"
    rows = (f"{u},{i},{1 + (u + 2 * i) % 5}\n" for u in range(20) for i in range(15))
    ratings.write_text("user,item,rating\n" + "".join(rows))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "mfrec", "train", str(ratings), "-o", str(tmp_path / "m.npz")]
    cmd += ["--epochs", "2", "--factors", "4"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    assert first.stderr.count(COMPILE_NOTE) == 1
    assert COMPILE_NOTE not in second.stderr
