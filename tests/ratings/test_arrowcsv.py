"""Big files are parsed by pyarrow (mfrec.ratings.arrowcsv), with the very result of pandas' parser.

Every comparison reads a file twice, both times past the plain reader (the size threshold set
below any file): with pyarrow's parser in small pieces, and with pandas' C parser (pyarrow
turned off); it asserts that every field of the RatingData is equal, dtypes and ID order
included, or that both raise the same error, and whether pyarrow read the file or left it to
pandas.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from builders import fields_of, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfrec.errors import DataFormatError
from mfrec.ratings import arrowcsv, load

pytest.importorskip("pyarrow")


def read(path: Path, *, arrow: bool, piece: int = 64, block: int = 128, **kwargs):
    """(the data's fields or the error message, whether pyarrow's parser answered: read the
    file or named its error, the pandas parser not used)."""
    answers = []
    arrow_read, pandas_read = load._TextReader._read_arrow, load._TextReader._read

    def arrow_spy(self, *args, **kw):
        answers.append(True)  # an error raised is its answer
        data = arrow_read(self, *args, **kw)
        answers[-1] = data is not None
        return data

    def pandas_spy(self, *args, **kw):
        answers.append(False)
        return pandas_read(self, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(load._TextReader, "_read_arrow", arrow_spy)
        mp.setattr(load._TextReader, "_read", pandas_spy)
        mp.setattr(load, "PLAIN_MAX_BYTES", -1)
        mp.setattr(load, "USE_ARROW", arrow)
        mp.setattr(arrowcsv, "PIECE_BYTES", piece)
        mp.setattr(arrowcsv, "BLOCK_BYTES", block)
        try:
            result = fields_of(load.load_ratings(path, **kwargs))
        except DataFormatError as exc:
            result = f"DataFormatError: {exc}"
    return result, bool(answers) and all(answers)


def read_both(path: Path, **kwargs):
    """(as pyarrow reads it, as pandas reads it, whether pyarrow answered by itself)."""
    by_arrow, took_arrow = read(path, arrow=True, **kwargs)
    by_pandas, _ = read(path, arrow=False, **kwargs)
    return by_arrow, by_pandas, took_arrow


def assert_arrow_and_same(path: Path, **kwargs):
    by_arrow, by_pandas, took_arrow = read_both(path, **kwargs)
    assert by_arrow == by_pandas
    assert took_arrow
    return by_arrow


# -- generated files ---------------------------------------------------------------------------

ids = st.text(alphabet="0123456789abcXY_-.:ëé", min_size=1, max_size=10)
ratings = st.sampled_from(["5", "4.5", "3", "1", "0.5", "-2", "+3", ".5", "4.", "0.1", "1e1", "10"])
stamps = st.from_regex(r"[0-9]{1,10}(\.[0-9]{1,2})?", fullmatch=True)
SEPARATORS = [",", "\t", ";", "|", "::"]


def quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@st.composite
def odd_field(draw, field: str) -> str:
    """A field as written: padded with spaces, quoted, or left as it is."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return " " + field + draw(st.sampled_from(["", " "]))
    if kind == 1:
        return quoted(field)
    return field


@st.composite
def ratings_files(draw):
    """(file bytes, load_ratings keyword arguments)."""
    sep = draw(st.sampled_from(SEPARATORS))
    with_stamps = draw(st.booleans())
    header = draw(st.booleans())
    users = draw(st.lists(ids, min_size=1, max_size=8, unique=True))
    items = draw(st.lists(ids, min_size=1, max_size=8, unique=True))
    n_rows = draw(st.integers(1, 40))
    lines = [sep.join(["user", "item", "rating"] + (["ts"] if with_stamps else []))]
    lines = lines if header else []
    for _ in range(n_rows):
        fields = [
            draw(odd_field(draw(st.sampled_from(users))))
            if sep != "::"
            else draw(st.sampled_from(users)),
            draw(odd_field(draw(st.sampled_from(items))))
            if sep != "::"
            else draw(st.sampled_from(items)),
            draw(ratings),
        ]
        if with_stamps:
            fields.append(draw(stamps))
        lines.append(sep.join(fields))
        extra = draw(st.integers(0, 19))
        if extra == 0:
            lines.append(draw(st.sampled_from(["", "  ", " \t", "\t"])))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(lines) + draw(st.sampled_from([eol, ""]))
    kwargs: dict = {"duplicates": draw(st.sampled_from(["last", "mean", "error"]))}
    if sep == "::" or draw(st.booleans()):
        kwargs["sep"] = sep
    if draw(st.booleans()):
        kwargs["header"] = header
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))), kwargs


@st.composite
def broken_files(draw):
    """A generated file with one line made bad: (file bytes, keyword arguments)."""
    content, kwargs = draw(ratings_files())
    lines = content.split(b"\n")
    k = draw(st.integers(0, len(lines) - 1))
    sep = kwargs.get("sep", ",").encode()
    bad = draw(
        st.sampled_from(
            [b"x", b"1" + sep + b"2", b"u" + sep + b"i" + sep + b"nan", b"u" + sep + b"i" + sep,
             sep + b"i" + sep + b"3", b"u" + sep + b"i" + sep + b"inf", b"\"u" + sep + b"i\""]
        )
    )  # fmt: skip
    lines.insert(k, bad)
    return b"\n".join(lines), kwargs


SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.slow
@SETTINGS
@given(
    case=ratings_files(),
    piece=st.sampled_from([16, 64, 1 << 20]),
    block=st.sampled_from([128, 1 << 20]),
)
def test_pyarrow_gives_what_pandas_gives(tmp_path_factory, case, piece, block):
    content, kwargs = case
    path = write(tmp_path_factory.mktemp("arrow"), content)
    by_arrow, by_pandas, _ = read_both(path, piece=piece, block=block, **kwargs)
    assert by_arrow == by_pandas


@pytest.mark.slow
@SETTINGS
@given(case=broken_files(), piece=st.sampled_from([16, 64, 1 << 20]))
def test_bad_lines_are_named_alike(tmp_path_factory, case, piece):
    content, kwargs = case
    path = write(tmp_path_factory.mktemp("broken"), content)
    by_arrow, by_pandas, _ = read_both(path, piece=piece, **kwargs)
    assert by_arrow == by_pandas


# -- each feature on its own -------------------------------------------------------------------


def compressed(kind: str, raw: bytes, path: Path) -> bytes:
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("ratings.csv", raw)
        return path.read_bytes()
    return {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](raw)


@pytest.mark.parametrize(
    ("content", "kwargs"),
    [
        ("1,10,5\n2,10,3\n1,20,4\n", {}),
        ("user,item,rating\n1,10,5\n2,10,3\n1,20,4\n", {}),
        ("1\t10\t5\n2\t10\t3\n", {}),
        ("1;10;5\n2;10;3\n", {}),
        ("1|10|5\n2|10|3\n", {}),
        ("1::10::5::978300760\n1::661::3::978302109\n", {"preset": "ml-1m"}),
        ("1::10::5\n2::10::3\n", {}),
        ("1:::10:::5\n2:::10:::3\n", {"sep": ":::"}),
        ("1, 10, 5\n2, 10 , 3 \n", {}),
        ('"user","item","rating"\n"1","10","5"\n"2","1,0","3"\n', {}),
        ('u,i,r\n"a ""b""",x,5\n', {}),
        ("007,1,5\n7,01,4\n07,1,3\n", {}),
        ("NA,null,3\n7.0,1e3,2\nnan,None,1\n", {}),
        ("a,x,-10.25\nb,x,100\nc,y,+3\nd,y,.5\ne,y,4.\nf,y,-0\ng,y,1e3\n", {}),
        ("a,x,0.1\nb,x,0.3\n", {}),
        ("1,10,5\n2,10,3\n1,10,1\n1,20,4\n", {}),
        ("1,10,5\n2,10,3\n1,10,1\n1,20,4\n", {"duplicates": "mean"}),
        ("u,i,r,t\n1,10,5,30\n2,10,3,10\n1,10,1,20\n", {"duplicates": "mean"}),
        ("\n1,10,5\n\n  \n\t\n2,10,3\n\n1,20,4\n\n", {}),
        ("1\t10\t5\n  \n2\t10\t3\n", {}),
        ("user,item,rating\r\n1,10,5\r\n\r\n2,10,3\r\n", {}),
        ("1,10,5\r2,10,3\r", {}),
        ("1,10,5\n2,10,3", {}),
        ("\ufeffuser,item,rating\n1,10,5\n", {}),
        ("zoë,café,5\n zoë ,café,4\n", {}),
        ("zo\xeb,caf\xe9,5\n".encode("latin-1"), {}),
        ("1,2,5\n3,4,1\n", {"encoding": "ascii"}),
        ("1\t10\t5\t881250949\n2\t10\t3\t881250950\n", {}),
        ("u,i,r,t\n1,2,5,100.7\n3,4,2,-100.5\n", {}),
        ("u,i,r,t\n1,2,5,9007199254740993\n3,4,2,-9007199254740995\n5,6,1,-0\n", {}),
        ("u,i,r,t\n" + "1,2,5,100\n" * 20 + "3,4,2,+7\n5,6,1,1e3\n7,8,2,0.5\n", {}),
        ("x,5,1,10\ny,3,2,10\nz,4,1,20\n", {"columns": "3,4,2"}),
        ("when,who,what,stars\n100,1,10,5\n200,2,10,3\n", {"columns": "who,what,stars,when"}),
        ("u,i,r,comment\n1,2,5,fine\n3,4,1,\n", {}),
        ("a,b,1\nc,d,2\n", {"header": True}),
        ("a,x,1\nb,x,3\n", {"scale": (0, 10)}),
        ("user,item,rating\n", {}),
    ],
)
def test_each_feature_is_read_by_pyarrow_and_alike(tmp_path, content, kwargs):
    assert_arrow_and_same(write(tmp_path, content), **kwargs)


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zip"])
def test_compressed_files(tmp_path, kind):
    raw = "".join(f"u{k % 13},i{k % 7},{1 + k % 5}\n" for k in range(300)).encode()
    path = tmp_path / "ratings.bin"
    path.write_bytes(compressed(kind, raw, path))
    assert assert_arrow_and_same(path, piece=256)["users"][1] == (7 * 13,)


def test_ids_keep_order_of_first_appearance_across_pieces_and_blocks(tmp_path):
    lines = [f"{' ' * (k % 2)}u{(k * 7) % 50},i{(k * 3) % 40} ,{1 + k % 5}" for k in range(2000)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    for piece, block in [(64, 32), (1000, 100), (1 << 20, 1 << 20)]:
        assert_arrow_and_same(path, piece=piece, block=block)


@pytest.mark.parametrize("piece", [16, 1 << 20])
def test_a_byte_order_mark_inside_the_text(tmp_path, piece):
    # pyarrow would drop it where a piece starts (this file's second with 16-byte pieces).
    path = write(tmp_path, "1,2,5\n1,2,5\n\ufeff3,4,1\n")
    by_arrow, by_pandas, took_arrow = read_both(path, piece=piece)
    assert by_arrow == by_pandas
    assert took_arrow == (piece > 16)


def test_a_line_longer_than_a_piece(tmp_path):
    path = write(tmp_path, f"{'u' * 300},i,5\nv,{'i' * 200},4\n")
    assert_arrow_and_same(path, piece=64, block=1024)
    # pyarrow's blocks must hold a line: longer ones are left to pandas.
    by_arrow, by_pandas, took_arrow = read_both(path, piece=64, block=128)
    assert by_arrow == by_pandas and not took_arrow


# -- what pyarrow leaves to pandas -----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "kwargs"),
    [
        ("1 10 5\n2   10\t3\n", {}),  # whitespace: pandas' own splitting
        ("1->10->5\n2->10->3\n", {"sep": "->"}),  # a separator of several characters
        ("u,i,r,t\n1,2,5,1970-01-02\n3,4,2,1970-01-01T00:01:00Z\n", {}),  # dates
        ('1, "a b",5\n2,c,3\n', {}),  # a quoted field after a space: pandas skips the space
        ('1,\t"a",5\n2,c,3\n', {}),  # ... or a tab
        ("\ufeff1,2,5\n3,4,1\n", {"encoding": "utf-8"}),  # ... which pyarrow would drop
        ("1\t10\t5\n\t\n2\t10\t3\n", {"sep": "\t"}),  # a line of the separator only
        ("\nu,i,r\n1,10,5\n", {"header": True}),  # header below a blank line
        ("1,2,5\n3,4,1\n", {"encoding": "cp1252"}),  # an encoding pyarrow is not given
        ('1,"a\nb",5\n2,c,3\n', {}),  # a quoted field over two lines
        ("a:1::x::5\nb::y:2::3\n", {"sep": "::"}),  # ":" inside an ID
        ("a:x:b::5\nc::d::3\n", {"sep": "::"}),  # ... that splits into the right count
        ("1,2,5\n3,4,1\n", {"encoding": "utf-16-le"}),  # pyarrow reads only UTF-8
        ("1,2,5\nzo\xeb,4,1\n".encode("latin-1"), {"encoding": "ascii"}),  # pandas' error
    ],
)
def test_unusual_files_are_left_to_pandas(tmp_path, content, kwargs):
    by_arrow, by_pandas, took_arrow = read_both(write(tmp_path, content), **kwargs)
    assert by_arrow == by_pandas
    assert not took_arrow


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1,2,5\n3,4\n5,6,1\n", "FILE, line 2: expected 3 columns, found 2"),
        ("1,2,5\n3,4,1,1\n5,6,1\n", "FILE, line 2: expected 3 columns, found 4"),
        ("u,i,r\n1,2,5\n\n3,4,x\n", "FILE, line 4: rating 'x' is not a number"),
        ("1,2,5\n3,4,NaN\n", "FILE, line 2: rating 'NaN' is not a number (NaN)"),
        ("1,2,5\n3,4,inf\n", "FILE, line 2: rating 'inf' is infinite"),
        ("1,2,5\n3,4,-Infinity\n", "FILE, line 2: rating '-Infinity' is infinite"),
        ("1,2,5\n3,4,\n", "FILE, line 2: rating is missing"),
        ("1,2,5\n,4,3\n", "FILE, line 2: empty user ID"),
        ("1,2,5\n 3 , ,3\n", "FILE, line 2: empty item ID"),
        ('1,2,5\n3,"",3\n', "FILE, line 2: empty item ID"),
        (
            "u\ti\tr\tts\n1\t2\t5\t9\n3\t4\t2\tnoon-ish\n",
            "FILE, line 3: timestamp 'noon-ish' is neither a number nor a date",
        ),
        ("1::2::5\n3::4::x\n", "FILE, line 2: rating 'x' is not a number"),
        ("u,i,r\n1,2,3,4\n5,6,7,8\n", "FILE, line 2: expected 3 columns, found 4"),
    ],
)
def test_bad_lines_are_named(tmp_path, content, message):
    path = write(tmp_path, content)
    by_arrow, by_pandas, _ = read_both(path)
    assert by_arrow == by_pandas == "DataFormatError: " + message.replace("FILE", str(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1,2,5\n3,4\n5,6,1\n", "FILE, line 2: expected 3 columns, found 2"),
        ("u,i,r\n1,2,5\n\n3,4,x\n", "FILE, line 4: rating 'x' is not a number"),
        ("1,2,5\n3,4,NaN\n", "FILE, line 2: rating 'NaN' is not a number (NaN)"),
        ("1,2,5\n,4,3\n", "FILE, line 2: empty user ID"),
        ("a,x,1\nb,x,3\nc,x,7\n", "FILE, line 3: rating 7 is outside the scale 1..5"),
    ],
)
def test_bad_lines_are_named_without_pandas_parsing(tmp_path, content, message):
    path = write(tmp_path, content)
    result, took_arrow = read(path, arrow=True, scale=(1, 5))
    assert result == "DataFormatError: " + message.replace("FILE", str(path))
    assert took_arrow


def test_bad_line_far_into_a_file_of_many_pieces(tmp_path):
    lines = [f"{k},{k % 7},{1 + k % 5}" for k in range(1000)]
    lines[733] = "733,1,five"
    lines.insert(500, "")
    path = write(tmp_path, "u,i,r\n" + "\n".join(lines) + "\n")
    result, took_arrow = read(path, arrow=True, piece=256)
    assert result == f"DataFormatError: {path}, line 736: rating 'five' is not a number"
    assert took_arrow


def test_duplicates_error_names_both_lines(tmp_path):
    path = write(tmp_path, "user,item,rating\n\n" + "1,10,5\n2,10,3\n1,10,1\n1,20,4\n")
    result, took_arrow = read(path, arrow=True, duplicates="error")
    assert result == (
        f"DataFormatError: {path}: user '1' rated item '10' twice (lines 3 and 5); "
        "choose --duplicates last or mean"
    )
    assert took_arrow


def test_not_utf8_after_the_sniffed_head_is_read_as_latin1(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(load, "SNIFF_BYTES", 64)
    body = "".join(f"{k},1,3\n" for k in range(50)).encode() + "zo\xeb,1,3\n".encode("latin-1")
    path = write(tmp_path, body)
    fields = assert_arrow_and_same(path)
    assert fields["user_ids"][-1] == (str, "zoë")
    assert "is not valid UTF-8; reading it as latin-1" in caplog.text


def test_explicit_wrong_encoding_is_a_clear_error(tmp_path):
    path = write(tmp_path, "a,b,5\nzo\xeb,caf\xe9,5\n".encode("latin-1"))
    by_arrow, by_pandas, _ = read_both(path, encoding="ascii")
    assert by_arrow == by_pandas == f"DataFormatError: {path}: cannot decode the file as ascii"


# -- start-up cost -----------------------------------------------------------------------------


def test_pyarrow_path_imports_neither_pandas_nor_numba(tmp_path):
    lines = [f"u{k // 10},i{k % 37},{1 + k % 5},{1000 + k}" for k in range(5000)]
    path = write(tmp_path, "user,item,rating,timestamp\n" + "\n".join(lines) + "\n")
    code = (
        "import sys; from mfrec.ratings import load; load.PLAIN_MAX_BYTES = -1; "
        "load.SORT_MAX_ROWS = 0; import mfrec.ratings.checks as c; c.SORT_MAX_ROWS = 0; "
        f"data = load.load_ratings({str(path)!r}); "
        "assert len(data) == 5000 and data.n_users == 500, data; "
        "assert 'pyarrow' in sys.modules; "
        "assert 'pandas' not in sys.modules, 'pandas was imported'; "
        "assert 'numba' not in sys.modules, 'numba was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- the ID numbering --------------------------------------------------------------------------


def test_id_numbering_strips_and_keeps_order_of_first_appearance():
    import pyarrow as pa

    numbering = arrowcsv.IdNumbering()
    pieces = [[["b", " a", "b "], ["c", "a"]], [["d", "c", " b"]], [["e", "d"], ["a"]]]
    numbers, last = [], None
    for chunks in pieces:
        last = arrowcsv.EncodedIds.encode(pa.chunked_array(chunks), last and last.distinct)
        assert not last.empty
        numbered = numbering.number(last)
        assert numbered.dtype == np.int32
        numbers.append(numbered.tolist())
    assert numbers == [[0, 1, 0, 2, 1], [3, 2, 0], [4, 3, 1]]
    assert list(numbering.to_idmap().ids) == ["b", "a", "c", "d", "e"]
    assert arrowcsv.EncodedIds.encode(pa.chunked_array([["x", "  "]]), None).empty
