"""Kernels built ahead of time (mfrec.kernels.native) and the lazy numba decorator (jit)."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mfrec.kernels import jit, native
from mfrec.kernels.blocked import schedule, sgd_strata
from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.ratingdata import RatingData


def _ratings(seed: int = 0, n_users: int = 300, n_items: int = 200, n: int = 6000) -> RatingData:
    rng = np.random.default_rng(seed)
    users = rng.integers(n_users, size=n)
    items = rng.integers(n_items, size=n)
    ratings = np.clip(np.round(3 + rng.normal(0, 1, n)), 1, 5)
    return RatingData.from_ids(users, items, ratings).subset(
        np.unique(users * n_items + items, return_index=True)[1]
    )


def _fit(data: RatingData) -> MatrixFactorization:
    return MatrixFactorization(factors=20, epochs=5, seed=3).fit(data)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A native folder holding the modules of one small sgd fit, and that fit."""
    where = tmp_path_factory.mktemp("native")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MFREC_NATIVE_DIR", str(where))
        with native.use(True):
            model = _fit(_ratings())
    return where, model


def test_native_fit_is_the_jit_fit_bit_for_bit(built):
    where, on_native = built
    on_jit = _fit(_ratings())
    assert len(list((where / native.build_id()[:20]).glob("sgd_strata-*"))) == 1
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(on_native, name), getattr(on_jit, name))
    np.testing.assert_array_equal(on_native.history_["objective"], on_jit.history_["objective"])


@pytest.mark.parametrize(
    "options",
    [
        {"solver": "bgd", "line_search": True},
        {"solver": "minibatch", "batch_size": 4096, "optimizer": "adam"},
        {"solver": "als"},
        {"solver": "sgd", "optimizer": "adagrad", "validation": 0.2},
    ],
    ids=["bgd", "minibatch", "als", "sgd-adagrad"],
)
def test_every_solver_gives_the_jit_fit_on_built_kernels(built, monkeypatch, options):
    where, _ = built
    monkeypatch.setenv("MFREC_NATIVE_DIR", str(where))
    data = _ratings()

    def fit():
        return MatrixFactorization(factors=8, epochs=3, seed=5, **options).fit(data)

    with native.use(True):
        on_native = fit()
    on_jit = fit()
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(on_native, name), getattr(on_jit, name))
    for column in on_jit.history_.columns.drop(["seconds", "eval_seconds"]):
        np.testing.assert_array_equal(on_native.history_[column], on_jit.history_[column])


def test_warm_process_runs_the_built_kernels_without_numba(built, tmp_path):
    where, on_native = built
    out = tmp_path / "factors.npy"
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from test_native import _fit, _ratings
        from mfrec.kernels import native
        with native.use(True):
            model = _fit(_ratings())
        assert "numba" not in sys.modules, "numba imported"
        np.save({str(out)!r}, model.user_factors_)
        """
    )
    env = {"MFREC_NATIVE_DIR": str(where), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env)
    np.testing.assert_array_equal(np.load(out), on_native.user_factors_)


def test_kernel_modules_import_without_numba():
    code = (
        "import sys, mfrec.model.estimator, mfrec.training.trainer, mfrec.training.solvers, mfrec.training.objective, mfrec.training.blocks;"
        "import mfrec.kernels.blocked, mfrec.kernels.loss, mfrec.kernels.group;"
        "assert 'numba' not in sys.modules, 'numba imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_signature_key_tells_apart_what_numba_types_apart():
    a = np.zeros((4, 3), np.float32)
    keys = {
        native.signature_key((a,)),
        native.signature_key((np.asfortranarray(a),)),
        native.signature_key((a[:, :2],)),
        native.signature_key((a.astype(np.float64),)),
        native.signature_key((a[0],)),
    }
    frozen = a.copy()
    frozen.flags.writeable = False
    keys.add(native.signature_key((frozen,)))
    assert len(keys) == 6
    assert native.signature_key((1, 2.0, True, np.uint64(5), np.float32(1))) == "i8,f8,?,<u8,<f4"
    assert native.signature_key((2**64 - 1,)) == "u8"
    assert native.signature_key(("text",)) is None


def test_lookup_is_off_unless_in_use():
    assert not native.active()
    assert native.lookup(schedule, (4, np.uint64(1))) is None


def test_worthwhile_only_for_small_fits_before_numba(monkeypatch, tmp_path):
    monkeypatch.setenv("MFREC_NATIVE_DIR", str(tmp_path))
    monkeypatch.delenv("MFREC_NATIVE", raising=False)
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
    assert native.worthwhile(100_000, 20, 100, None)
    # 10M ratings: two threads save ~2 s of 4, numba's start-up costs 0.4 s.
    assert not native.worthwhile(10_000_000, 20, 100, None)
    assert native.worthwhile(10_000_000, 20, 100, 1)
    monkeypatch.setenv("MFREC_NATIVE", "0")
    assert not native.worthwhile(100_000, 20, 100, 1)


def test_worthwhile_is_false_once_numba_is_imported(monkeypatch):
    import numba  # noqa: F401

    monkeypatch.delenv("MFREC_NATIVE", raising=False)
    assert not native.worthwhile(1000, 1, 1, 1)


def test_a_failed_build_falls_back_to_the_jit_and_is_remembered(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("MFREC_NATIVE_DIR", str(tmp_path))
    monkeypatch.delenv("MFREC_NATIVE", raising=False)

    def no_compiler(*args):
        raise OSError("no C compiler")

    monkeypatch.setattr(native, "_build", no_compiler)
    monkeypatch.setattr(native, "_loaded", {})
    caplog.set_level(logging.WARNING, logger="mfrec.kernels.native")
    with native.use(True):
        strata = schedule(4, np.uint64(7))
    np.testing.assert_array_equal(strata, schedule(4, np.uint64(7)))
    assert "ahead-of-time kernels unavailable here, using numba's JIT: no C compiler" in caplog.text
    assert (native.build_dir() / "unavailable.txt").read_text() == ("OSError: no C compiler\n")
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    assert not native.worthwhile(1000, 1, 1, 1)


def test_a_folder_that_cannot_be_made_falls_back_to_the_jit(monkeypatch, tmp_path, caplog):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("MFREC_NATIVE_DIR", str(blocker / "native"))
    monkeypatch.setattr(native, "_loaded", {})
    caplog.set_level(logging.WARNING, logger="mfrec.kernels.native")
    with native.use(True):
        strata = schedule(6, np.uint64(2))
    np.testing.assert_array_equal(strata, schedule(6, np.uint64(2)))
    assert "ahead-of-time kernels unavailable here, using numba's JIT" in caplog.text


def test_a_damaged_module_is_removed_and_the_jit_runs(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("MFREC_NATIVE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", {})
    args = (5, np.uint64(9))
    path = native.module_path(schedule, native.signature_key(args))
    path.parent.mkdir()
    path.write_bytes(b"not a shared object")
    caplog.set_level(logging.WARNING, logger="mfrec.kernels.native")
    with native.use(True):
        strata = schedule(*args)
    np.testing.assert_array_equal(strata, schedule(*args))
    assert f"cannot load {path.name}" in caplog.text and not path.exists()


def test_a_new_build_removes_old_builds_only(monkeypatch, tmp_path):
    monkeypatch.setenv("MFREC_NATIVE_DIR", str(tmp_path))
    stale, recent = tmp_path / "stale", tmp_path / "recent"
    for folder in (stale, recent):
        folder.mkdir()
        (folder / "kernel.so").write_bytes(b"")
    month_ago = time.time() - (native.KEEP_DAYS + 1) * 86400
    os.utime(stale, (month_ago, month_ago))
    native.build_dir().mkdir()
    native._prune(native.build_dir())
    assert not stale.exists() and (recent / "kernel.so").exists()
    assert native.build_dir().exists()


def test_numba_code_of_any_origin_can_call_a_kernel_first():
    # A fresh process whose first compilation is not a mfrec kernel's: the entry point has
    # registered `Kernel` with numba's typing before it.
    code = (
        "import numba, numpy as np; from mfrec.kernels.blocked import stream_key; "
        "f = numba.njit(lambda s: stream_key(s, 3)); "
        "assert f(np.uint64(1)) == stream_key.py_func(np.uint64(1), 3)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_kernel_pickles_by_reference_and_forwards_to_numba():
    assert pickle.loads(pickle.dumps(sgd_strata)) is sgd_strata
    assert isinstance(sgd_strata, jit.Kernel)
    schedule(4, np.uint64(1))
    assert schedule.signatures  # numba's dispatcher answers
    assert sgd_strata.__name__ == "sgd_strata" and "serial order" in sgd_strata.__doc__
