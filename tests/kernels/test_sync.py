"""Atomic writes: all or nothing, and an existing file survives a failure."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from mfrec.utils.atomicfile import atomic_open, atomic_path


def test_success_replaces_the_target(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_open(target) as fh:
        fh.write("new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_written_files_have_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "m.npz", suffix=".npz") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == 0o644


def test_parent_folders_are_created(tmp_path):
    with atomic_open(tmp_path / "a" / "b" / "c.txt") as fh:
        fh.write("x")
    assert (tmp_path / "a" / "b" / "c.txt").read_text() == "x"


def test_suffix_ends_the_temporary_name(tmp_path):
    # numpy.savez appends ".npz" to a name that does not end in it.
    target = tmp_path / "m.npz"
    with atomic_path(target, suffix=".npz") as tmp:
        assert tmp.name.endswith(".npz")
        np.savez(tmp, a=np.arange(3))
    assert os.listdir(tmp_path) == ["m.npz"]
    assert np.load(target)["a"].tolist() == [0, 1, 2]
