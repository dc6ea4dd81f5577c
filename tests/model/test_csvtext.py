"""`write_csv` against pandas' ``DataFrame.to_csv`` on the same columns: the same bytes, for IDs
that need quoting, unicode, missing and extreme numbers, chunk by chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfrec.model.csvtext import csv_fields, float_fields, write_csv

IDS = ["007", "7", "0", "a,b", 'say "hi"', '"', "new\nline", "cr\rreturn", "crlf\r\nx", "naïve",
       "東京", "🎬 film", " padded ", "", "nan", "NA", "None", "-", "1e5", "x\x00y", "tab\there",
       "semi;colon", "'single'"]  # fmt: skip


def pandas_csv(columns, **options) -> str:
    return pd.DataFrame(columns).to_csv(index=False, lineterminator="\n", **options)


def ours(columns, **options) -> str:
    parts: list[str] = []
    write_csv(parts.append, columns, **options)
    return "".join(parts)


def table(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.array(IDS, dtype=object)
    score = rng.normal(3, 2, n)
    score[::7] = np.round(score[::7], rng.integers(0, 5))  # short decimals, whole numbers
    score[3::11] = np.nan
    score[5::13] = 0.0
    score[6::17] = -0.0
    return {
        "user": ids[rng.integers(0, len(ids), n)],
        "rank": rng.integers(-5, 1000, n),
        "item": np.array(IDS)[rng.integers(0, len(IDS), n)],  # a numpy unicode column
        "prediction": score,
        "known": np.array(["both", "user", "item", "none"])[rng.integers(0, 4, n)],
    }


@pytest.mark.parametrize("float_format", [None, "%.6g", "%.4f"])
@pytest.mark.parametrize("header", [True, False])
def test_the_bytes_pandas_writes(float_format, header, monkeypatch):
    columns = table(500)
    expected = pandas_csv(columns, float_format=float_format, header=header)
    monkeypatch.setattr(pd.DataFrame, "to_csv", None)  # the fast path, not pandas
    assert ours(columns, float_format=float_format, header=header) == expected
    assert ours(columns, float_format=float_format, header=header, chunk_rows=7) == expected


def test_no_rows_gives_the_header_alone():
    columns = {name: values[:0] for name, values in table(3).items()}
    assert ours(columns) == "user,rank,item,prediction,known\n" == pandas_csv(columns)
    assert ours(columns, header=False) == ""


@pytest.mark.parametrize(
    "special",
    [1e-9, -3e-7, 2e6, np.inf, -np.inf, 5e-324],
    ids=["tiny", "tiny-negative", "huge", "inf", "-inf", "subnormal"],
)
def test_floats_pandas_writes_in_its_display_format_go_through_pandas(special):
    # pandas writes such a column (chunk by chunk: 25,000 rows of 4 columns) with
    # "{:.6e}" instead of the float format; only pandas itself gets that exactly right.
    n = 30_000
    columns = {"user": np.array(["u"] * n, dtype=object), "prediction": np.linspace(1, 5, n)}
    columns["prediction"][27_000] = special
    expected = pandas_csv(columns, float_format="%.6g")
    assert ours(columns, float_format="%.6g") == expected
    assert ours(columns) == pandas_csv(columns)


def test_columns_outside_the_fast_path_are_written_by_pandas():
    mixed = {
        "a": np.array(["x", None, 3, 2.5, np.nan], dtype=object),
        "b": np.array([True, False, True, True, False]),
    }
    assert ours(mixed) == pandas_csv(mixed)
    one = {"only": np.array(["", "a", ""], dtype=object)}  # a lone empty field is quoted
    assert ours(one) == pandas_csv(one) == 'only\n""\na\n""\n'
    single = {"a": np.array(["x", "y"], dtype=object), "b": np.array([0.1, 1 / 3], np.float32)}
    assert ours(single) == pandas_csv(single) == "a,b\nx,0.1\ny,0.33333334\n"
    assert ours(single, float_format="%.6g") == pandas_csv(single, float_format="%.6g")


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="different lengths"):
        ours({"a": np.array(["x", "y"], dtype=object), "b": np.ones(1)})


def test_fields_quoted_as_the_csv_module_quotes_them():
    assert csv_fields(["a", "a,b", 'q"q', "l\nl", ""]) == ["a", '"a,b"', '"q""q"', '"l\nl"', ""]
    values = ["plain", "007"]
    assert csv_fields(values) is values  # nothing to quote: no copy


@pytest.mark.parametrize(
    "ints",
    [
        np.array([-128, 127, 0, 5], dtype=np.int8),
        np.array([0, 255, 7, 7], dtype=np.uint8),
        np.array([2**64 - 1, 2**64 - 5, 3, 2**63], dtype=np.uint64),
        np.array([-(2**63), -(2**63) + 7, 2**63 - 1, 0]),
        np.array([1, 2, 3, 10]),  # ranks
    ],
)
def test_integers_as_pandas_writes_them(ints):
    columns = {"id": np.array(["a", "b", "c", "d"], dtype=object), "n": ints}
    assert ours(columns) == pandas_csv(columns)


def test_float_fields():
    values = np.array([1.0, 0.1 + 0.2, 1e-5, 1e16, 123456.5, np.nan, -0.0])
    assert float_fields(values) == ["1.0", "0.30000000000000004", "1e-05", "1e+16", "123456.5",
                                    "", "-0.0"]  # fmt: skip
    assert float_fields(values, "%.6g") == ["1", "0.3", "1e-05", "1e+16", "123456", "", "-0"]
    assert float_fields(values) == [s if s != "nan" else "" for s in values.astype(str).tolist()]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(),
            st.text(alphabet=st.sampled_from(list(',"\n\r ab7é東\x00;'))),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        max_size=20,
    ),
    st.sampled_from([None, "%.6g"]),
)
def test_any_strings_and_floats(rows, float_format):
    columns = {
        "user": np.array([r[0] for r in rows], dtype=object),
        "item": np.array([r[1] for r in rows], dtype=object),
        "score": np.array([r[2] for r in rows], dtype=np.float64),
    }
    expected = pandas_csv(columns, float_format=float_format)
    assert ours(columns, float_format=float_format, chunk_rows=3) == expected
