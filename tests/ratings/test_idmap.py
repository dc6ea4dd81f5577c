"""ID maps and the loader keep raw IDs exactly: property-based round trips."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfrec.ratings.idmap import IdMap
from mfrec.ratings.load import load_ratings

# IDs as the loader sees them: no line breaks, no surrounding whitespace (that is stripped).
ids = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
        min_size=1,
        max_size=8,
    )
    .map(str.strip)
    .filter(bool)
)


@given(st.lists(ids, min_size=1, max_size=30, unique=True))
def test_idmap_round_trip(raw):
    m = IdMap(raw)
    assert len(m) == len(raw)
    assert list(m.to_ids(m.indices(raw))) == raw
    assert [m.index(x) for x in raw] == list(range(len(raw)))
    assert list(m.to_array()) == raw


def test_unknown_ids_map_to_minus_one():
    m = IdMap(["007", "7"])
    assert m.indices(["7", "07", "007", "x"]).tolist() == [1, -1, 0, -1]
    assert m.index("0007") == -1
    assert "007" in m and "07" not in m


def test_factorize_numbers_in_order_of_first_appearance():
    codes, m = IdMap.factorize(["b", "a", "b", "c"])
    assert codes.tolist() == [0, 1, 0, 2] and codes.dtype == np.int32
    assert list(m.ids) == ["b", "a", "c"]


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="IdMap: duplicate ID 'x'"):
        IdMap(["x", "y", "x"])


def test_take_renumbers():
    m = IdMap(["a", "b", "c"]).take([2, 0])
    assert list(m.ids) == ["c", "a"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(ids, ids, st.integers(1, 5)), min_size=1, max_size=25, unique_by=lambda r: r[:2]
    )
)
def test_loader_keeps_any_id_exactly(tmp_path_factory, rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["user", "item", "rating"])
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("ids") / "r.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    frame = load_ratings(path, sep=",", header=True).to_frame()
    got = list(zip(frame.user, frame.item, frame.rating.astype(int), strict=True))
    assert got == [(u, i, r) for u, i, r in rows]


@given(st.lists(st.sampled_from(["7", "007", "a", "b", "é", ""]), max_size=30))
def test_factorize_numbers_strings_as_pandas_does(values):
    pd = pytest.importorskip("pandas")
    codes, m = IdMap.factorize(values)
    expected_codes, expected_ids = pd.factorize(np.asarray(values, dtype=object), sort=False)
    assert codes.dtype == np.int32 and codes.tolist() == expected_codes.tolist()
    assert list(m.ids) == list(expected_ids)


def test_factorize_of_other_values_keeps_pandas_rules():
    codes, m = IdMap.factorize([3, None, 3, 1.5])
    assert codes.tolist() == [0, -1, 0, 1] and list(m.ids) == ["3", "1.5"]
    with pytest.raises(ValueError, match="IdMap: duplicate ID '3'"):
        IdMap.factorize([3, "3"])


def test_maps_are_built_and_read_without_pandas():
    code = (
        "import sys; import numpy as np; from mfrec.ratings.idmap import IdMap; "
        "codes, m = IdMap.factorize(np.array(['b', 'a', 'b'])); "
        "t = m.take([1]); "
        "assert codes.tolist() == [0, 1, 0] and list(t.ids) == ['a'] and m == IdMap(['b', 'a']); "
        "assert list(m.to_ids([1, 0])) == ['a', 'b'] and m.to_array().tolist() == ['b', 'a']; "
        "repr(m); "
        "assert 'pandas' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_ids_are_read_only():
    m = IdMap(["a", "b"])
    with pytest.raises(ValueError):
        m.ids[0] = "c"
    assert IdMap(["a", "b"]) == m and IdMap(["b", "a"]) != m and IdMap(["a"]) != m


@given(
    st.lists(ids, min_size=1, max_size=30, unique=True),
    st.lists(st.one_of(ids, st.integers(), st.floats(allow_nan=True), st.none()), max_size=30),
)
def test_dict_lookups_answer_as_pandas_does(raw, probes):
    import mfrec.ratings.idmap as idmap

    m = IdMap(raw)
    probes = raw[::2] + probes
    by_dict = m.indices(probes).tolist()
    singles = [m.index(x) for x in probes]
    contained = [x in m for x in probes]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(idmap, "DICT_LOOKUP_MAX", -1)
        fresh = IdMap(raw)
        assert by_dict == fresh.indices(probes).tolist()
        assert by_dict == fresh._index.get_indexer(np.array(probes, dtype=object)).tolist()
    assert singles == by_dict
    assert contained == [k >= 0 for k in by_dict]


def test_string_lookups_need_no_pandas():
    code = (
        "import sys; from mfrec.ratings.idmap import IdMap; m = IdMap(['007', '7']); "
        "assert m.indices(['7', 'x']).tolist() == [1, -1] and m.index('007') == 0; "
        "assert '7' in m and 'x' not in m; "
        "assert 'pandas' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
