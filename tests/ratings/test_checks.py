"""Repeated (user, item) pairs are found the same way whatever the order of the ratings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfrec.ratings import checks


def reference(users, items) -> bool:
    pairs = list(zip(users.tolist(), items.tolist(), strict=True))
    return len(set(pairs)) != len(pairs)


@st.composite
def ratings(draw):
    """(users, items, n_users, n_items): every user and item rated, rows in some order."""
    n_users, n_items = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    pairs = draw(
        st.lists(st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)), max_size=40)
    )
    pairs += [(u, u % n_items) for u in range(n_users)] + [(k % n_users, k) for k in range(n_items)]
    order = draw(st.sampled_from(["user", "item", "any"]))
    if order != "any":
        pairs.sort(key=lambda p: p[0] if order == "user" else p[1])  # stable: items as drawn
    else:
        pairs = draw(st.permutations(pairs))
    users = np.array([u for u, _ in pairs], dtype=np.int32)
    items = np.array([i for _, i in pairs], dtype=np.int32)
    return users, items, n_users, n_items


@settings(max_examples=300, deadline=None)
@given(case=ratings(), run_slice=st.sampled_from([1, 3, 1 << 20]))
def test_has_duplicates_in_any_order(case, run_slice):
    users, items, n_users, n_items = case
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checks, "RUN_SLICE", run_slice)
        assert checks.has_duplicates(users, items, n_users, n_items) == reference(users, items)


@pytest.mark.parametrize("run_slice", [1, 2, 1 << 20])
def test_single_runs(monkeypatch, run_slice):
    monkeypatch.setattr(checks, "RUN_SLICE", run_slice)
    values = np.array([2, 2, 0, 1, 1, 1], dtype=np.int32)
    assert checks.single_runs(values, 3).tolist() == [0, 2, 3, 6]
    assert checks.single_runs(np.array([0, 1, 0], dtype=np.int32), 3) is None  # 0 twice
    assert checks.single_runs(np.array([0, 1, 0, 1], dtype=np.int32), 2) is None
    assert checks.single_runs(np.array([], dtype=np.int32), 0).tolist() == [0]


def test_ratings_grouped_by_user_are_checked_without_the_compiled_kernels():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from mfrec.ratings.checks import has_duplicates; "
        "u = np.repeat(np.arange(1000, dtype=np.int32), 20); "
        "i = np.tile(np.arange(20, dtype=np.int32), 1000); "
        "assert not has_duplicates(u, i, 1000, 20); i[5] = 6; "
        "assert has_duplicates(u, i, 1000, 20); "
        "assert has_duplicates(i, u, 20, 1000); "
        "assert 'numba' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
