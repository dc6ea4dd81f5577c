"""write_ratings: exact IDs, the file's own layout, quoting, compression, atomic writes."""

from __future__ import annotations

import bz2
import gzip
import lzma
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfrec.errors import DataFormatError
from mfrec.ratings.load import load_ratings
from mfrec.ratings.ratingdata import Layout, RatingData
from mfrec.ratings.write import write_ratings


def small(timestamps=None, ratings=(5, 3, 4)) -> RatingData:
    return RatingData.from_ids(["007", "2", "007"], ["10", "10", "x"], ratings, timestamps)


def test_csv_with_header_keeps_ids_and_writes_whole_ratings_as_integers(tmp_path):
    path = write_ratings(small(), tmp_path / "r.csv")
    assert path == tmp_path / "r.csv"
    assert path.read_text() == "user,item,rating\n007,10,5\n2,10,3\n007,x,4\n"


def test_fractional_ratings_use_the_shortest_exact_form(tmp_path):
    data = small(ratings=[0.1, 2.5, 1 / 3])
    text = write_ratings(data, tmp_path / "r.csv").read_text()
    assert text.splitlines()[1:] == ["007,10,0.1", "2,10,2.5", "007,x,0.3333333333333333"]


def test_float32_ratings_are_not_padded_with_float64_digits(tmp_path):
    data = small(ratings=[0.1, 2.5, 4])
    data = replace(data, ratings=data.ratings.astype(np.float32))
    text = write_ratings(data, tmp_path / "r.csv").read_text()
    assert text.splitlines()[1] == "007,10,0.1"


def test_layout_of_the_data_is_used_with_timestamps(tmp_path):
    data = replace(small([30, 10, 20]), layout=Layout("\t", False, ("u", "i", "r")))
    text = write_ratings(data, tmp_path / "u.data").read_text()
    assert text == "007\t10\t5\t30\n2\t10\t3\t10\n007\tx\t4\t20\n"


def test_header_names_come_from_the_layout_and_are_padded_for_timestamps(tmp_path):
    layout = Layout(";", True, ("userId", "movieId", "stars"))
    text = write_ratings(small([1, 2, 3]), tmp_path / "r.csv", layout).read_text()
    assert text.splitlines()[0] == "userId;movieId;stars;timestamp"


def test_timestamp_header_name_is_dropped_without_timestamps(tmp_path):
    layout = Layout(",", True, ("u", "i", "r", "t"))
    text = write_ratings(small(), tmp_path / "r.csv", layout).read_text()
    assert text.splitlines()[0] == "u,i,r"


def test_multi_character_separator(tmp_path):
    text = write_ratings(small([7, 8, 9]), tmp_path / "r.dat", Layout("::", False)).read_text()
    assert text == "007::10::5::7\n2::10::3::8\n007::x::4::9\n"


def test_fields_holding_the_separator_or_quotes_are_quoted(tmp_path):
    data = RatingData.from_ids(["a,b", 'say "hi"', "plain"], ["1", "2", "3"], [1, 2, 3])
    text = write_ratings(data, tmp_path / "r.csv").read_text()
    assert text.splitlines()[1:] == ['"a,b",1,1', '"say ""hi""",2,2', "plain,3,3"]


def test_line_breaks_inside_ids_are_quoted(tmp_path):
    data = RatingData.from_ids(["a\nb", "c\rd"], ["1", "2"], [1, 2])
    text = write_ratings(data, tmp_path / "r.csv", Layout(",", False)).read_bytes()
    assert text == b'"a\nb",1,1\n"c\rd",2,2\n'


def test_whitespace_separator_quotes_any_whitespace(tmp_path):
    data = RatingData.from_ids(["a b", "c\td", "e"], ["1", "2", "3"], [1, 2, 3])
    text = write_ratings(data, tmp_path / "r.txt", Layout(" ", False)).read_text()
    assert text.splitlines() == ['"a b" 1 1', '"c\td" 2 2', "e 3 3"]


@pytest.mark.parametrize(
    ("user", "bad"),
    [("a::b", "a::b"), ("a:", "a:"), ("line\nbreak", "line\\nbreak")],
)
def test_multi_character_separator_refuses_fields_it_cannot_quote(tmp_path, user, bad):
    data = RatingData.from_ids([user, "ok"], ["1", "2"], [1, 2])
    path = tmp_path / "r.dat"
    with pytest.raises(DataFormatError) as info:
        write_ratings(data, path, Layout("::", False))
    assert str(info.value) == (
        f"{path}: user ID '{bad}' holds or touches the separator '::' or holds a line break, "
        "which a '::'-separated file cannot quote; write it with a one-character separator "
        "such as ',' instead"
    )
    assert not path.exists()


def test_only_ids_that_are_written_are_checked(tmp_path):
    data = RatingData.from_ids(["a::b", "ok"], ["1", "2"], [1, 2]).subset([1])
    text = write_ratings(data, tmp_path / "r.dat", Layout("::", False)).read_text()
    assert text == "ok::2::2\n"


@pytest.mark.parametrize(
    ("suffix", "opener"), [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)]
)
def test_compressed_by_suffix(tmp_path, suffix, opener):
    path = write_ratings(small(), tmp_path / f"r.csv{suffix}")
    with opener(path, "rt") as fh:
        assert fh.read() == "user,item,rating\n007,10,5\n2,10,3\n007,x,4\n"


def test_gzip_output_is_reproducible(tmp_path):
    a = write_ratings(small(), tmp_path / "a.csv.gz").read_bytes()
    b = write_ratings(small(), tmp_path / "b.csv.gz").read_bytes()
    # The header stores the file's own name; everything after it must be identical.
    assert a.replace(b"a.csv", b"b.csv") == b


def test_failed_write_leaves_an_existing_file_alone(tmp_path):
    path = tmp_path / "r.dat"
    path.write_text("old\n")
    data = RatingData.from_ids(["a::b"], ["1"], [1])
    with pytest.raises(DataFormatError):
        write_ratings(data, path, Layout("::", False))
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.dat"]


def test_empty_separator_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"^layout\.sep='': the separator must not be empty$"):
        write_ratings(small(), tmp_path / "r.csv", Layout("", False))


def test_many_rows_are_written_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr("mfrec.ratings.write._CHUNK", 4)
    n = 10
    data = RatingData.from_ids(np.arange(n), np.arange(n) % 3, np.arange(n) % 5 + 1)
    lines = write_ratings(data, tmp_path / "r.csv").read_text().splitlines()
    assert lines[1:] == [f"{k},{k % 3},{k % 5 + 1}" for k in range(n)]


# -- round trips through the loader ------------------------------------------------------

# IDs the loader keeps as they are: non-empty, no surrounding whitespace (it strips fields),
# no control or line-separator characters (it would take the text for binary or split it).
ids = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x85"
    ),
    min_size=1,
    max_size=8,
).filter(lambda s: s == s.strip())
odd_ids = st.sampled_from(
    [
        "007",
        "0",
        "00",
        "1e3",
        "NA",
        "nan",
        "null",
        "-",
        "#1",
        "1.0",
        "日本",
        "a,b",
        'q"x',
        '"q"',
        "x;y",
        "p|q",
        "t\tu",
        "a b",
    ]
)
any_id = st.one_of(ids, odd_ids)


@st.composite
def rating_sets(draw):
    pairs = draw(st.lists(st.tuples(any_id, any_id), min_size=1, max_size=25, unique=True))
    ratings = draw(
        st.one_of(
            st.lists(st.integers(-5, 10), min_size=len(pairs), max_size=len(pairs)),
            st.lists(
                st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                min_size=len(pairs),
                max_size=len(pairs),
            ),
        )
    )
    stamps = draw(
        st.none() | st.lists(st.integers(0, 2**40), min_size=len(pairs), max_size=len(pairs))
    )
    users, items = zip(*pairs, strict=True)
    return RatingData.from_ids(
        np.array(users, dtype=object), np.array(items, dtype=object), ratings, stamps
    )


def assert_same_ratings(a: RatingData, b: RatingData) -> None:
    fa, fb = a.to_frame(), b.to_frame()
    assert fa.user.tolist() == fb.user.tolist()
    assert fa.item.tolist() == fb.item.tolist()
    np.testing.assert_array_equal(fa.rating.to_numpy(float), fb.rating.to_numpy(float))
    if a.timestamps is None:
        assert b.timestamps is None
    else:
        np.testing.assert_array_equal(a.timestamps, b.timestamps)


@pytest.mark.parametrize("sep", [",", "\t", ";", "|"])
@pytest.mark.parametrize("header", [True, False])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=rating_sets())
def test_round_trip_keeps_ids_ratings_and_timestamps_exactly(tmp_path, sep, header, data):
    path = write_ratings(data, tmp_path / "r.txt", Layout(sep, header))
    loaded = load_ratings(path, sep=sep, header=header)
    assert_same_ratings(data, loaded)
    assert loaded.layout.sep == sep


def test_round_trip_of_a_loaded_file_keeps_its_layout(tmp_path):
    source = tmp_path / "ratings.csv"
    source.write_text("userId,movieId,rating,timestamp\n007,0042,4.5,100\nabc,1,3,200\n")
    data = load_ratings(source)
    copy = write_ratings(data, tmp_path / "copy.csv")
    assert copy.read_text() == "userId,movieId,rating,timestamp\n007,0042,4.5,100\nabc,1,3.0,200\n"
    assert_same_ratings(data, load_ratings(copy))


@pytest.mark.parametrize("sep", ["::", " "])
def test_round_trip_with_other_separators(tmp_path, sep):
    data = RatingData.from_ids(["007", 'q"x', "7"], ["a", "b;c", "00"], [1.5, 2, 3], [3, 2, 1])
    path = write_ratings(data, tmp_path / "r.dat", Layout(sep, False))
    assert_same_ratings(data, load_ratings(path, sep=sep))


def test_round_trip_with_quoted_whitespace_ids(tmp_path):
    data = RatingData.from_ids(["a b", "c d", "e"], ["1", "2", "3"], [1, 2, 3])
    path = write_ratings(data, tmp_path / "r.txt", Layout(" ", False))
    assert_same_ratings(data, load_ratings(path, sep=" "))


def test_round_trip_with_colons_inside_ids_on_the_last_line(tmp_path):
    data = RatingData.from_ids(["a", "x:y"], ["1", "2"], [1, 2])
    path = write_ratings(data, tmp_path / "r.dat", Layout("::", False))
    assert_same_ratings(data, load_ratings(path, sep="::"))
