"""The loader: formats, presets, opaque string IDs, and one clear error per kind of bad input."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ML100K

from mfrec.errors import DataFormatError
from mfrec.ratings.load import PRESETS, load_ratings, parse_scale
from mfrec.ratings.ratingdata import Layout


def write(tmp_path: Path, content: str | bytes, name: str = "r.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def triples(data) -> list[tuple[str, str, float]]:
    frame = data.to_frame()
    return list(zip(frame.user, frame.item, frame.rating.astype(float), strict=True))


@pytest.fixture(params=["pandas", "pyarrow"])
def big_file_parser(request, monkeypatch):
    """Files read as those too big for `mfrec.ratings.plaintext` are: by pyarrow's parser in
    pieces of 256 bytes, and by pandas' C parser (the reference)."""
    monkeypatch.setattr("mfrec.ratings.load.PLAIN_MAX_BYTES", -1)
    monkeypatch.setattr("mfrec.ratings.load.USE_ARROW", request.param == "pyarrow")
    monkeypatch.setattr("mfrec.ratings.arrowcsv.PIECE_BYTES", 256)


def error_of(path: Path, **kwargs) -> str:
    with pytest.raises(DataFormatError) as info:
        load_ratings(path, **kwargs)
    return str(info.value).replace(str(path), "FILE")


# -- formats ---------------------------------------------------------------------------------

EXPECTED = [("1", "10", 5.0), ("2", "10", 3.0), ("1", "20", 4.0)]


@pytest.mark.parametrize(
    "content",
    [
        "1,10,5\n2,10,3\n1,20,4\n",
        "user,item,rating\n1,10,5\n2,10,3\n1,20,4\n",
        "1\t10\t5\n2\t10\t3\n1\t20\t4\n",
        "1 10 5\n2   10\t3\n 1 20 4\n",
        "1::10::5\n2::10::3\n1::20::4\n",
        "1;10;5\n2;10;3\n1;20;4\n",
        "1|10|5\n2|10|3\n1|20|4\n",
        "1, 10, 5\n2, 10, 3\n1, 20, 4\n",
        '"user","item","rating"\n"1","10","5"\n"2","10","3"\n"1","20","4"\n',
    ],
    ids=[
        "csv",
        "csv-header",
        "tsv",
        "whitespace",
        "double-colon",
        "semicolon",
        "pipe",
        "comma-space",
        "quoted",
    ],
)
def test_separators_and_headers_are_detected(tmp_path, content):
    data = load_ratings(write(tmp_path, content))
    assert triples(data) == EXPECTED
    assert data.users.dtype == np.int32 and data.items.dtype == np.int32
    assert data.users.flags.c_contiguous and data.ratings.flags.c_contiguous


def test_multi_character_separator_that_is_not_repeated(tmp_path):
    data = load_ratings(write(tmp_path, "1->10->5\n2->10->3\n1->20->4\n"), sep="->")
    assert triples(data) == EXPECTED


@pytest.mark.parametrize("parser", ["plain", "pandas"])
def test_double_colon_with_colons_inside_ids(tmp_path, monkeypatch, parser):
    if parser == "pandas":
        monkeypatch.setattr("mfrec.ratings.load.PLAIN_MAX_BYTES", -1)
    # IDs that hold ":" must not be cut by the fast single-character split.
    data = load_ratings(write(tmp_path, "a:1::x::5\nb::y:2::3\n"), sep="::")
    assert triples(data) == [("a:1", "x", 5.0), ("b", "y:2", 3.0)]


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zip"])
def test_compressed_files_are_read_by_their_magic_bytes(tmp_path, kind):
    raw = b"1,10,5\n2,10,3\n1,20,4\n"
    path = tmp_path / "ratings.bin"  # the name says nothing: the bytes decide
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("ratings.csv", raw)
    else:
        path.write_bytes({"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](raw))
    assert triples(load_ratings(path)) == EXPECTED


def test_zip_with_several_files_is_an_error(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.csv", "1,2,3\n")
        zf.writestr("b.csv", "1,2,3\n")
    assert error_of(path) == (
        "FILE: zip archive holds 2 files (a.csv, b.csv); unpack it and give the ratings file"
    )


def test_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"userId": ["007", "7"], "movieId": ["1", "1"], "rating": [4.5, 3.0]})
    path = tmp_path / "r.parquet"
    frame.to_parquet(path)
    data = load_ratings(path)
    assert triples(data) == [("007", "1", 4.5), ("7", "1", 3.0)]


def test_dataframe_source_with_integer_ids_and_named_columns():
    frame = pd.DataFrame({"uid": [1, 2, 1], "iid": [10, 10, 20], "score": [5, 3, 4], "x": 0})
    data = load_ratings(frame, columns=["uid", "iid", "score"])
    assert triples(data) == EXPECTED
    assert data.layout.names == ("uid", "iid", "score")


def test_dataframe_source_detects_known_column_names():
    frame = pd.DataFrame({"rating": [5.0], "itemId": ["b"], "user_id": ["a"]})
    assert triples(load_ratings(frame)) == [("a", "b", 5.0)]


# -- columns, header, presets ----------------------------------------------------------------


def test_columns_by_position_are_one_based(tmp_path):
    path = write(tmp_path, "x,5,1,10\ny,3,2,10\nz,4,1,20\n")
    data = load_ratings(path, columns="3,4,2")
    assert triples(data) == EXPECTED
    assert data.timestamps is None


def test_columns_by_name_and_timestamp(tmp_path):
    path = write(tmp_path, "when,who,what,stars\n100,1,10,5\n200,2,10,3\n300,1,20,4\n")
    data = load_ratings(path, columns="who,what,stars,when")
    assert triples(data) == EXPECTED
    assert data.timestamps.tolist() == [100, 200, 300]
    assert data.layout.names == ("who", "what", "stars", "when")


def test_known_header_names_are_found_in_any_order(tmp_path):
    path = write(tmp_path, "timestamp,rating,movieId,userId\n100,5,10,1\n200,3,10,2\n")
    data = load_ratings(path)
    assert triples(data) == EXPECTED[:2]
    assert data.timestamps.tolist() == [100, 200]


def test_header_can_be_forced_off_and_on(tmp_path):
    path = write(tmp_path, "a,b,1\nc,d,2\n")
    assert len(load_ratings(path)) == 2
    assert len(load_ratings(path, header=True)) == 1


def test_unknown_column_name_lists_the_header(tmp_path):
    path = write(tmp_path, "u,i,r\n1,2,3\n")
    assert (
        error_of(path, columns="u,i,stars")
        == "FILE: no column named 'stars'; the header has: u, i, r"
    )


def test_column_position_beyond_the_line(tmp_path):
    path = write(tmp_path, "1,2,3\n")
    assert error_of(path, columns="1,2,5") == (
        "FILE: column 5 requested but lines have only 3 columns"
    )


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ("1,2", "columns: expected user,item,rating[,timestamp], got 2 entries"),
        ("1,1,2", "columns: 1,1,2 names a column twice"),
        ("0,1,2", "columns: position 0 is invalid (positions count from 1)"),
    ],
)
def test_bad_columns_option(tmp_path, columns, message):
    assert error_of(write(tmp_path, "1,2,3\n"), columns=columns) == message


def test_fourth_numeric_column_is_taken_as_timestamp(tmp_path):
    data = load_ratings(write(tmp_path, "1\t10\t5\t881250949\n2\t10\t3\t881250950\n"))
    assert data.timestamps.tolist() == [881250949, 881250950]
    assert data.layout == Layout("\t", False, ("user", "item", "rating", "timestamp"))


def test_date_timestamps_become_epoch_seconds(tmp_path):
    path = write(tmp_path, "u,i,r,t\n1,2,5,1970-01-02\n3,4,2,1970-01-01T00:01:00Z\n")
    assert load_ratings(path).timestamps.tolist() == [86400, 60]


def test_presets_cover_the_movielens_layouts(tmp_path):
    assert {"ml-100k", "ml-1m", "ml-10m", "ml-latest", "generic"} <= set(PRESETS)
    ml1m = write(tmp_path, "1::1193::5::978300760\n1::661::3::978302109\n", "ratings.dat")
    assert load_ratings(ml1m, preset="ml-1m").timestamps.tolist() == [978300760, 978302109]
    latest = write(tmp_path, "userId,movieId,rating,timestamp\n1,1,4.5,964982703\n", "l.csv")
    data = load_ratings(latest, preset="ml-latest")
    assert triples(data) == [("1", "1", 4.5)]


def test_unknown_preset():
    with pytest.raises(DataFormatError, match="unknown preset 'ml-2k': use one of auto, generic"):
        load_ratings("whatever", preset="ml-2k")


# -- IDs and ratings ---------------------------------------------------------------------------


def test_ids_are_opaque_strings(tmp_path):
    path = write(tmp_path, "007,1,5\n7,01,4\nNA,null,3\n7.0,1e3,2\n")
    data = load_ratings(path)
    assert list(data.user_map.ids) == ["007", "7", "NA", "7.0"]
    assert list(data.item_map.ids) == ["1", "01", "null", "1e3"]


def test_ratings_on_any_scale_and_the_scale_from_the_data(tmp_path):
    data = load_ratings(write(tmp_path, "a,x,-10.25\nb,x,100\n"))
    assert data.scale == (-10.25, 100.0)
    assert data.ratings.tolist() == [-10.25, 100.0]


def test_ratings_keep_full_precision_when_float32_would_round(tmp_path):
    data = load_ratings(write(tmp_path, "a,x,0.1\nb,x,0.3\n"))
    assert data.ratings.dtype == np.float64 and data.ratings.tolist() == [0.1, 0.3]
    assert load_ratings(write(tmp_path, "a,x,4.5\n", "h.csv")).ratings.dtype == np.float32


def test_explicit_scale_is_kept_and_checked(tmp_path):
    path = write(tmp_path, "a,x,1\nb,x,3\nc,x,7\n")
    assert load_ratings(path, scale=(0, 10)).scale == (0.0, 10.0)
    assert error_of(path, scale=(1, 5)) == "FILE, line 3: rating 7 is outside the scale 1..5"


@pytest.mark.parametrize(
    ("text", "expected"), [("1,5", (1.0, 5.0)), ("0.5,5", (0.5, 5.0)), ("-1,1", (-1.0, 1.0))]
)
def test_parse_scale(text, expected):
    assert parse_scale(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5", "--scale '5': expected MIN,MAX such as 1,5"),
        ("a,b", "--scale 'a,b': expected MIN,MAX such as 1,5"),
        ("5,1", "scale=(5, 1): need finite MIN < MAX"),
    ],
)
def test_parse_scale_errors(text, message):
    with pytest.raises(DataFormatError) as info:
        parse_scale(text)
    assert str(info.value) == message


# -- duplicates --------------------------------------------------------------------------------

DUPES = "1,10,5\n2,10,3\n1,10,1\n1,20,4\n"


def test_duplicates_last_is_the_default(tmp_path):
    data = load_ratings(write(tmp_path, DUPES))
    assert triples(data) == [("2", "10", 3.0), ("1", "10", 1.0), ("1", "20", 4.0)]


def test_duplicates_mean(tmp_path):
    data = load_ratings(write(tmp_path, DUPES), duplicates="mean")
    assert triples(data) == [("1", "10", 3.0), ("2", "10", 3.0), ("1", "20", 4.0)]


def test_duplicates_error_names_both_lines(tmp_path):
    path = write(tmp_path, "user,item,rating\n\n" + DUPES)
    assert error_of(path, duplicates="error") == (
        "FILE: user '1' rated item '10' twice (lines 3 and 5); choose --duplicates last or mean"
    )


def test_duplicates_bad_policy():
    with pytest.raises(
        DataFormatError, match="duplicates='first': must be one of last, mean, error"
    ):
        load_ratings("x", duplicates="first")


# -- bad input: one clear error each ---------------------------------------------------------


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.csv") == "FILE: no such file"


def test_directory(tmp_path):
    assert error_of(tmp_path) == "FILE: is a directory, not a ratings file"


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, content):
    assert error_of(write(tmp_path, content)) == "FILE: the file is empty"


def test_header_only(tmp_path):
    assert error_of(write(tmp_path, "user,item,rating\n")) == (
        "FILE: the file has a header line but no ratings"
    )


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
        (
            "u\ti\tr\tts\n1\t2\t5\t9\n3\t4\t2\tnoon-ish\n",
            "FILE, line 3: timestamp 'noon-ish' is neither a number nor a date",
        ),
    ],
    ids=[
        "short-line",
        "long-line",
        "non-numeric",
        "nan",
        "inf",
        "minus-inf",
        "missing",
        "empty-id",
        "bad-timestamp",
    ],
)
def test_bad_lines_are_named(tmp_path, content, message):
    assert error_of(write(tmp_path, content)) == message


def test_bad_line_far_into_a_multi_chunk_file(tmp_path, monkeypatch, big_file_parser):
    monkeypatch.setattr("mfrec.ratings.load.CHUNK_ROWS", 100)
    lines = [f"{k},{k % 7},{1 + k % 5}" for k in range(1000)]
    lines[733] = "733,1,five"
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert error_of(path) == "FILE, line 734: rating 'five' is not a number"


def test_blank_lines_are_skipped(tmp_path):
    data = load_ratings(write(tmp_path, "\n1,10,5\n\n  \n2,10,3\n\n1,20,4\n\n"))
    assert triples(data) == EXPECTED


def test_crlf_line_endings(tmp_path):
    data = load_ratings(write(tmp_path, "user,item,rating\r\n1,10,5\r\n2,10,3\r\n1,20,4\r\n"))
    assert triples(data) == EXPECTED


def test_utf8_byte_order_mark(tmp_path):
    data = load_ratings(write(tmp_path, "\ufeffuser,item,rating\n1,10,5\n2,10,3\n1,20,4\n"))
    assert triples(data) == EXPECTED


def test_utf8_ids(tmp_path):
    data = load_ratings(write(tmp_path, "zoë,café,5\n"))
    assert triples(data) == [("zoë", "café", 5.0)]


def test_latin1_falls_back_with_a_warning(tmp_path, caplog):
    path = write(tmp_path, "zo\xeb,caf\xe9,5\n".encode("latin-1"))
    data = load_ratings(path)
    assert triples(data) == [("zoë", "café", 5.0)]
    assert "is not valid UTF-8; reading it as latin-1" in caplog.text


def test_non_utf8_byte_after_the_sniffed_head(tmp_path, monkeypatch):
    monkeypatch.setattr("mfrec.ratings.load.SNIFF_BYTES", 64)
    body = "".join(f"{k},1,3\n" for k in range(50)).encode() + "zo\xeb,1,3\n".encode("latin-1")
    data = load_ratings(write(tmp_path, body))
    assert data.user_map.ids[-1] == "zoë"


def test_explicit_wrong_encoding_is_a_clear_error(tmp_path):
    path = write(tmp_path, "zo\xeb,caf\xe9,5\n".encode("latin-1"))
    assert error_of(path, encoding="ascii") == "FILE: cannot decode the file as ascii"


@pytest.mark.parametrize(
    "content",
    [bytes(range(256)) * 8, b"\x89PNG\r\n\x1a\n" + bytes(200), b"PK\x03\x04broken"],
    ids=["bytes", "png", "broken-zip"],
)
def test_not_text_at_all(tmp_path, content):
    message = error_of(write(tmp_path, content))
    assert message in (
        "FILE: this is not a text ratings file (it contains binary data)",
        "FILE: broken zip archive (File is not a zip file)",
    )


def test_undetectable_separator(tmp_path):
    assert error_of(write(tmp_path, "hello\nworld\n")) == (
        "FILE: cannot tell the column separator from the first lines; give --sep"
    )


def test_names_without_a_header(tmp_path):
    path = write(tmp_path, "1,2,3\n")
    assert error_of(path, header=False, columns="u,i,r") == (
        "FILE: column 'u' requested by name but the file has no header line; "
        "give positions (--columns 1,2,3) or --header"
    )


def test_dataframe_errors_name_the_row():
    frame = pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"], "rating": [1.0, np.nan]})
    with pytest.raises(DataFormatError) as info:
        load_ratings(frame)
    assert str(info.value) == "DataFrame: row 1: rating 'nan' is not a number (NaN)"


# -- real data -------------------------------------------------------------------------------


@pytest.mark.movielens
@pytest.mark.skipif(not ML100K.exists(), reason="MovieLens 100k not available")
def test_movielens_100k_with_its_preset_and_detected():
    by_preset = load_ratings(ML100K / "u.data", preset="ml-100k")
    assert (len(by_preset), by_preset.n_users, by_preset.n_items) == (100_000, 943, 1682)
    assert by_preset.scale == (1.0, 5.0)
    detected = load_ratings(ML100K / "u.data")
    assert np.array_equal(detected.ratings, by_preset.ratings)
    assert detected.user_map == by_preset.user_map


def test_colon_inside_an_id_past_the_sniffed_head(tmp_path, monkeypatch, big_file_parser):
    monkeypatch.setattr("mfrec.ratings.load.SNIFF_BYTES", 64)
    lines = [f"{k}::{k % 3}::4" for k in range(40)] + ["x:y::1::2"]
    data = load_ratings(write(tmp_path, "\n".join(lines) + "\n"), sep="::")
    assert triples(data)[-1] == ("x:y", "1", 2.0)
    assert data.layout.sep == "::"


def test_quoted_ids_with_spaces_in_a_whitespace_file(tmp_path):
    data = load_ratings(write(tmp_path, '"a b" 1 5\n"say ""hi""" 2 3\nc 3 1\n'), sep=" ")
    assert triples(data) == [("a b", "1", 5.0), ('say "hi"', "2", 3.0), ("c", "3", 1.0)]


def test_two_columns_are_named_as_too_few(tmp_path):
    path = write(tmp_path, "user,item\n1,2\n3,4\n")
    assert error_of(path) == "FILE: found 2 column(s); need at least user, item and rating"


# -- columns written in place as chunks arrive -----------------------------------------------


def numbered_lines(n: int) -> list[str]:
    return [f"u{k % 97},i{k},{1 + k % 9 / 2},{1000 + k}" for k in range(n)]


def expected_columns(n: int):
    users = [f"u{k % 97}" for k in range(n)]
    items = [f"i{k}" for k in range(n)]
    return users, items, [1 + k % 9 / 2 for k in range(n)], [1000 + k for k in range(n)]


def columns_of(data):
    frame = data.to_frame()
    return (
        frame.user.tolist(),
        frame.item.tolist(),
        frame.rating.astype(float).tolist(),
        frame.timestamp.tolist(),
    )


@pytest.mark.parametrize("compressed", [False, True])
def test_more_rows_than_expected_grow_the_columns(
    tmp_path, monkeypatch, compressed, big_file_parser
):
    monkeypatch.setattr("mfrec.ratings.load.CHUNK_ROWS", 100)
    monkeypatch.setattr("mfrec.ratings.load.ROWS_MARGIN", 0.0)  # expect only 1024 rows
    raw = ("\n".join(numbered_lines(3000)) + "\n").encode()
    path = write(tmp_path, gzip.compress(raw) if compressed else raw)
    data = load_ratings(path)
    assert columns_of(data) == expected_columns(3000)
    assert data.ratings.dtype == np.float32


def test_a_chunk_needing_float64_widens_the_ratings_read_before(
    tmp_path, monkeypatch, big_file_parser
):
    monkeypatch.setattr("mfrec.ratings.load.CHUNK_ROWS", 100)
    lines = numbered_lines(350)
    lines[260] = f"u{260 % 97},i260,0.1,1260"
    data = load_ratings(write(tmp_path, "\n".join(lines) + "\n"))
    users, items, ratings, stamps = expected_columns(350)
    ratings[260] = 0.1
    assert data.ratings.dtype == np.float64
    assert columns_of(data) == (users, items, ratings, stamps)


def test_the_size_of_a_plain_file_gives_the_rows_it_holds(tmp_path):
    from mfrec.ratings.load import ROWS_MARGIN, _TextReader

    lines = [f"{k:06d},{k % 1000:04d},{1 + k % 5}" for k in range(50_000)]
    reader = _TextReader(write(tmp_path, "\n".join(lines) + "\n"), None, None, None, None)
    # Enough room for every row (no reallocation), and not much more.
    assert 50_000 <= reader._expected_rows() <= 50_000 * ROWS_MARGIN + 1024


def test_columns_take_chunks_without_reallocating_while_they_fit():
    from mfrec.ratings.chunks import ChunkColumns

    columns = ChunkColumns(10, timestamps=False)
    start = columns.users.ctypes.data
    for k in range(2):
        chunk = np.arange(4 * k, 4 * k + 4)
        columns.append(chunk, chunk + 100, chunk.astype(np.float32), None)
    assert columns.users.ctypes.data == start
    users, items, ratings, stamps = columns.finish()
    assert users.tolist() == list(range(8)) and items.tolist() == list(range(100, 108))
    assert ratings.dtype == np.float32 and ratings.tolist() == list(range(8))
    assert stamps is None


def test_arrow_memory_kept_for_reuse_is_handed_back_after_the_parse(
    tmp_path, monkeypatch, big_file_parser
):
    pyarrow = pytest.importorskip("pyarrow")
    released = []

    class Pool:
        def release_unused(self):
            released.append(True)

    monkeypatch.setattr(pyarrow, "default_memory_pool", Pool)
    load_ratings(write(tmp_path, "a,x,1\nb,y,2\n"))
    assert released == [True]
