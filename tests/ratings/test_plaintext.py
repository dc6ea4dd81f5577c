"""Small plain text files are read without pandas (mfrec.ratings.plaintext), with the very same
result.

Every comparison reads a file twice: as the loader does, and with pandas' C parser forced (the
size threshold set below any file, pyarrow's parser turned off), and asserts that every field
of the RatingData is equal, dtypes and ID order included; or that both raise the same error.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from builders import fields_of, write
from conftest import ML100K
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mfrec.errors import DataFormatError
from mfrec.ratings import load


def read(path: Path, **kwargs) -> tuple[dict | str, bool]:
    """(the data's fields or the error message, whether the plain reader declined the file)."""
    declined = []
    plain_read = load._TextReader._read_plain

    def spy(self, *args, **kw):
        declined.append(False)  # an error the plain reader raises is its answer
        data = plain_read(self, *args, **kw)
        declined[-1] = data is None
        return data

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(load._TextReader, "_read_plain", spy)
        try:
            result = fields_of(load.load_ratings(path, **kwargs))
        except DataFormatError as exc:
            result = f"DataFormatError: {exc}"
    return result, any(declined)


def read_both(path: Path, **kwargs) -> tuple[dict | str, dict | str, bool]:
    """(as loaded, as pandas' parser loads it, whether the first load did without pandas)."""
    plain, declined = read(path, **kwargs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(load, "PLAIN_MAX_BYTES", -1)
        mp.setattr(load, "USE_ARROW", False)
        by_pandas, _ = read(path, **kwargs)
    return plain, by_pandas, not declined


def assert_plain_and_same(path: Path, **kwargs) -> dict | str:
    plain, by_pandas, took_plain = read_both(path, **kwargs)
    assert plain == by_pandas
    assert took_plain
    return plain


# -- generated files ---------------------------------------------------------------------------

ID_CHARS = "0123456789abcXYZ_-.ëé"
ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=12)
ratings = st.from_regex(r"[+-]?([0-9]{1,3}(\.[0-9]{0,3})?|\.[0-9]{1,3})", fullmatch=True)
stamps = st.from_regex(r"-?[0-9]{1,10}(\.[0-9]{1,2})?", fullmatch=True)
SEPARATORS = [",", "\t", ";", "|", " ", "::", "->"]


@st.composite
def ratings_files(draw):
    """(file bytes, load_ratings keyword arguments, whether the plain reader takes it)."""
    sep = draw(st.sampled_from(SEPARATORS))
    with_stamps = draw(st.booleans())
    header = draw(st.booleans())
    users = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    items = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(users),
                st.sampled_from(items),
                ratings,
                stamps if with_stamps else st.just(None),
            ),
            min_size=1,
            max_size=30,
        )
    )
    joiner = {
        " ": st.sampled_from([" ", "\t", "  ", " \t "]),
        # pandas skips spaces after a one-character separator: "1, 10, 5".
        ",": st.sampled_from([",", ", "]),
        "\t": st.sampled_from(["\t", "\t "]),
    }.get(sep, st.just(sep))
    # Whitespace around an ID is not part of it (a whitespace-separated file has none).
    pad = st.just("") if sep == " " else st.sampled_from(["", "", " "])

    def line(fields: list[str]) -> str:
        text = fields[0]
        for f in fields[1:]:
            text += draw(joiner) + f
        return text

    names = ["user", "item", "rating"] + (["timestamp"] if with_stamps else [])
    lines = [line(names)] if header else []
    for u, i, r, t in rows:
        fields = [draw(pad) + u + draw(pad), draw(pad) + i + draw(pad), r]
        lines.append(line([*fields, t] if with_stamps else fields))
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from(["", "  "])))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(lines) + draw(st.sampled_from([eol, ""]))

    kwargs: dict = {"duplicates": draw(st.sampled_from(["last", "mean", "error"]))}
    # Tabs and runs of spaces make the separator ambiguous to sniff: say it.
    if sep in (" ", "->") or draw(st.booleans()):
        kwargs["sep"] = sep
    if draw(st.booleans()):
        kwargs["header"] = header
    if draw(st.booleans()):
        kwargs["columns"] = "1,2,3,4" if with_stamps else "1,2,3"
    values = [float(r) for _, _, r, _ in rows]
    broken_scale = False
    if draw(st.booleans()):
        lo = draw(st.sampled_from([min(values), min(values) - 1, min(values) + 0.5]))
        hi = draw(st.sampled_from([max(values), max(values) + 1, max(values) - 0.5]))
        assume(lo < hi)
        kwargs["scale"] = (lo, hi)
        broken_scale = lo > min(values) or hi < max(values)
    # pandas reads "-0" as -0.0 or 0.0 depending on its engine: the plain reader declines it.
    numbers = [x for _, _, r, t in rows for x in (r, t) if x is not None]
    negative_zero = any(x.startswith("-") and float(x) == 0 for x in numbers)
    return text.encode(), kwargs, not (broken_scale or negative_zero)


@pytest.mark.slow
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=ratings_files())
def test_plain_reader_gives_what_pandas_gives(tmp_path_factory, case):
    content, kwargs, plain_expected = case
    path = write(tmp_path_factory.mktemp("plain"), content)
    plain, by_pandas, took_plain = read_both(path, **kwargs)
    assert plain == by_pandas
    assert took_plain == plain_expected


# -- each feature on its own -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "kwargs"),
    [
        ("1,10,5\n2,10,3\n1,20,4\n", {}),
        ("user,item,rating\n1,10,5\n2,10,3\n1,20,4\n", {}),
        ("1\t10\t5\n2\t10\t3\n", {}),
        ("1;10;5\n2;10;3\n", {}),
        ("1|10|5\n2|10|3\n", {}),
        ("1 10 5\n2   10\t3\n 1 20 4 \n", {}),
        ("1::10::5::978300760\n1::661::3::978302109\n", {"preset": "ml-1m"}),
        ("a:1::x::5\nb::y:2::3\n", {"sep": "::"}),
        ("1->10->5\n2->10->3\n", {"sep": "->"}),
        ("1, 10, 5\n2, 10 , 3 \n", {}),
        ("007,1,5\n7,01,4\n07,1,3\n", {}),
        ("NA,null,3\n7.0,1e3,2\n", {}),
        ("a1,x-9,5\nB_2,y.3,4\n", {}),
        # IDs of several 8-byte words that differ only in the last one.
        (f"{'u' * 30}1,x,5\n{'u' * 30}2,x,4\n{'u' * 30}1,{'i' * 17},3\n", {}),
        ("a,x,-10.25\nb,x,100\nc,y,+3\nd,y,.5\ne,y,4.\nf,y,-0.5\n", {}),
        ("a,x,0.1\nb,x,0.3\n", {}),
        ("a,x,4.5\nb,x,3\n", {}),
        ("1,10,5\n2,10,3\n1,10,1\n1,20,4\n", {}),
        ("1,10,5\n2,10,3\n1,10,1\n1,20,4\n", {"duplicates": "mean"}),
        ("u,i,r,t\n1,10,5,30\n2,10,3,10\n1,10,1,20\n", {"duplicates": "mean"}),
        ("\n1,10,5\n\n  \n2,10,3\n\n1,20,4\n\n", {}),
        ("1\t10\t5\n  \n2\t10\t3\n", {}),
        ("user,item,rating\r\n1,10,5\r\n2,10,3\r\n", {}),
        ("1,10,5\n2,10,3", {}),
        ("\ufeffuser,item,rating\n1,10,5\n", {}),
        ("zoë,café,5\n zoë ,café,4\n", {}),
        ("zo\xeb,caf\xe9,5\n".encode("latin-1"), {}),
        ('"user","item","rating"\n1,10,5\n', {}),
        ("1\t10\t5\t881250949\n2\t10\t3\t881250950\n", {}),
        ("u,i,r,t\n1,2,5,100.7\n3,4,2,-100.5\n", {}),
        ("x,5,1,10\ny,3,2,10\nz,4,1,20\n", {"columns": "3,4,2"}),
        ("when,who,what,stars\n100,1,10,5\n200,2,10,3\n", {"columns": "who,what,stars,when"}),
        ("a,b,1\nc,d,2\n", {"header": True}),
        ("a,x,1\nb,x,3\n", {"scale": (0, 10)}),
        ("u1,i1,5,x\nu2,i2,4,y\n", {}),
    ],
)
def test_each_feature_is_read_without_pandas_and_alike(tmp_path, content, kwargs):
    assert_plain_and_same(write(tmp_path, content), **kwargs)


def test_ids_keep_order_of_first_appearance_and_lose_surrounding_spaces(tmp_path):
    path = write(tmp_path, "b, y,1\n a ,x,2\n007,y,3\n7,x,4\nb ,z,5\n")
    assert_plain_and_same(path)
    data = load.load_ratings(path)
    assert list(data.user_map.ids) == ["b", "a", "007", "7"]
    assert list(data.item_map.ids) == ["y", "x", "z"]
    assert data.users.tolist() == [0, 1, 2, 3, 0] and data.items.tolist() == [0, 1, 0, 1, 2]


def test_duplicates_error_names_the_same_lines(tmp_path):
    path = write(tmp_path, "user,item,rating\n\n1,10,5\n2,10,3\n1,10,1\n1,20,4\n")
    plain, by_pandas, took_plain = read_both(path, duplicates="error")
    assert (
        plain
        == by_pandas
        == (
            f"DataFormatError: {path}: user '1' rated item '10' twice (lines 3 and 5); "
            "choose --duplicates last or mean"
        )
    )
    assert took_plain


# -- what the plain reader leaves to pandas --------------------------------------------------


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("1,2,5\n3,4\n5,6,1\n", {}, "FILE, line 2: expected 3 columns, found 2"),
        ("1,2,5\n3,4,1,1\n5,6,1\n", {}, "FILE, line 2: expected 3 columns, found 4"),
        ("u,i,r\n1,2,5\n\n3,4,x\n", {}, "FILE, line 4: rating 'x' is not a number"),
        ("1,2,5\n3,4,NaN\n", {}, "FILE, line 2: rating 'NaN' is not a number (NaN)"),
        ("1,2,5\n3,4,inf\n", {}, "FILE, line 2: rating 'inf' is infinite"),
        ("1,2,5\n3,4,\n", {}, "FILE, line 2: rating is missing"),
        ("1,2,5\n3,4,1-2\n", {}, "FILE, line 2: rating '1-2' is not a number"),
        ("1,2,5\n,4,3\n", {}, "FILE, line 2: empty user ID"),
        ("1,2,5\n 3 , ,3\n", {}, "FILE, line 2: empty item ID"),
        (
            "u\ti\tr\tts\n1\t2\t5\t9\n3\t4\t2\tnoon-ish\n",
            {},
            "FILE, line 3: timestamp 'noon-ish' is neither a number nor a date",
        ),
        (
            "a,x,1\nb,x,3\nc,x,7\n",
            {"scale": (1, 5)},
            "FILE, line 3: rating 7 is outside the scale 1..5",
        ),
        ("user,item,rating\n", {}, "FILE: the file has a header line but no ratings"),
        ("1\t10\t5\n\t\n2\t10\t3\n", {"sep": "\t"}, None),
        ("1,2,5\n3,4,1\n".encode("utf-16"), {}, None),
    ],
)
def test_bad_files_give_the_same_error_with_the_plain_reader(tmp_path, content, kwargs, message):
    path = write(tmp_path, content)
    plain, by_pandas, _ = read_both(path, **kwargs)
    assert plain == by_pandas
    if message is not None:
        assert plain == "DataFormatError: " + message.replace("FILE", str(path))


@pytest.mark.parametrize(
    ("content", "kwargs"),
    [
        ('u,i,r\n"1",2,5\n', {}),  # quotes
        ("1,10,5\r2,10,3\r", {}),  # lone CR line ends
        ("1,2,1234567890123456\n", {}),  # more digits than MAX_NUMBER_CHARS
        ("1,2,1e3\n", {}),  # exponent
        ("u,i,r,t\n1,2,5,1970-01-02\n3,4,2,1970-01-01T00:01:00Z\n", {}),  # dates
        ("\nu,i,r\n1,10,5\n", {"header": True}),  # header below a blank line
        ("\ufeff1,10,5\n".encode(), {"encoding": "utf-8"}),  # BOM kept by the codec
        ("1,2,5\n3,4,1\n", {"encoding": "cp1252"}),  # codec not taken
        ("1 10 5\n" * 100 + "1\v10 5\n", {"sep": " "}),  # \v: whitespace to Python, not pandas
        ("1 | 10 | 5\n", {"sep": " | "}),  # separator with spaces at its ends
        ("1->10->-0\n", {"sep": "->"}),  # -0.0 to pandas' C parser, 0.0 to its python engine
        (f"{'x' * 70},1,5\n", {}),  # ID longer than MAX_ID_BYTES
    ],
)
def test_unusual_files_are_left_to_pandas(tmp_path, content, kwargs):
    plain, by_pandas, took_plain = read_both(write(tmp_path, content), **kwargs)
    assert plain == by_pandas
    assert not took_plain


def test_compressed_and_big_files_are_left_to_pandas(tmp_path, monkeypatch):
    raw = b"1,10,5\n2,10,3\n1,20,4\n"
    plain, by_pandas, took_plain = read_both(write(tmp_path, gzip.compress(raw), "r.gz"))
    assert plain == by_pandas and not took_plain
    path = write(tmp_path, raw)
    monkeypatch.setattr(load, "PLAIN_MAX_BYTES", len(raw) - 1)
    assert read(path)[1]
    monkeypatch.setattr(load, "PLAIN_MAX_BYTES", len(raw))
    assert not read(path)[1]


# -- start-up cost -----------------------------------------------------------------------------


def test_loading_a_plain_file_does_not_import_pandas(tmp_path):
    path = write(tmp_path, "user,item,rating,timestamp\n1,10,5,100\n2,10,3.5,200\n1,10,4,300\n")
    code = (
        "import sys; from mfrec.ratings.load import load_ratings; "
        f"data = load_ratings({str(path)!r}); "
        "assert len(data) == 2 and list(data.user_map.ids) == ['1', '2'], data; "
        "assert 'pandas' not in sys.modules, 'pandas was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.movielens
@pytest.mark.skipif(not ML100K.exists(), reason="MovieLens 100k not available")
@pytest.mark.parametrize(
    ("name", "kwargs"), [("u1.base", {}), ("u.data", {"preset": "ml-100k"}), ("u.data", {})]
)
def test_movielens_100k_is_read_without_pandas_and_alike(name, kwargs):
    fields = assert_plain_and_same(ML100K / name, **kwargs)
    assert fields["ratings"][0] == np.dtype(np.float32).str
