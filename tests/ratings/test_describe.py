"""describe: hand-computed figures, the histogram's two forms, text and JSON output."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from mfrec.errors import DataFormatError
from mfrec.ratings.describe import HistogramBin, describe
from mfrec.ratings.ratingdata import RatingData


def small(timestamps=None) -> RatingData:
    return RatingData.from_ids(
        ["a", "a", "a", "b", "c", "c"],
        ["x", "y", "z", "x", "x", "y"],
        [1, 2, 5, 2, 5, 5],
        timestamps,
        scale=(1, 5),
    )


def test_figures_of_a_small_set():
    d = describe(small())
    assert (d.n_ratings, d.n_users, d.n_items) == (6, 3, 3)
    assert d.density == pytest.approx(6 / 9)
    assert (d.scale, d.rating_min, d.rating_max) == ((1.0, 5.0), 1.0, 5.0)
    assert d.rating_mean == pytest.approx(20 / 6)
    assert d.histogram == (HistogramBin(1, 1, 1), HistogramBin(2, 2, 2), HistogramBin(5, 5, 3))
    # per user [3, 1, 2], per item [3, 2, 1]: the same quantiles, linear interpolation
    expected = {"min": 1, "25%": 1.5, "50%": 2, "75%": 2.5, "90%": 2.8, "max": 3}
    assert d.ratings_per_user == pytest.approx(expected)
    assert d.ratings_per_item == pytest.approx(expected)
    assert d.time_range is None


def test_users_and_items_without_ratings_are_not_counted():
    d = describe(small().subset([0, 1, 3]))  # a-x, a-y, b-x: user c and item z are gone
    assert (d.n_ratings, d.n_users, d.n_items) == (3, 2, 2)
    assert d.density == pytest.approx(3 / 4)


def test_many_distinct_ratings_are_binned():
    n = 30
    data = RatingData.from_ids(np.arange(n), np.arange(n), np.arange(n, dtype=float))
    hist = describe(data).histogram
    assert len(hist) == 10
    assert [b.count for b in hist] == [3] * 10
    assert (hist[0].low, hist[-1].high) == (0, 29)
    assert all(a.high == b.low for a, b in itertools.pairwise(hist))


def test_twenty_distinct_ratings_are_still_counted_one_by_one():
    data = RatingData.from_ids(np.arange(20), np.arange(20), np.arange(20) / 2)
    assert [b.low for b in describe(data).histogram] == (np.arange(20) / 2).tolist()


def test_text_table():
    text = describe(small([874724710, 874724710, 893286638, 880000000, 880000000, 880000000]))
    assert text.to_text() == (
        "ratings       6\n"
        "users         3\n"
        "items         3\n"
        "density       66.6667%\n"
        "rating scale  1 .. 5\n"
        "ratings seen  1 .. 5, mean 3.333\n"
        "timestamps    874724710 .. 893286638 (1997-09-20 .. 1998-04-22 UTC)\n"
        "\n"
        "ratings per  min  25%  50%  75%  90%  max\n"
        "user           1  1.5    2  2.5  2.8    3\n"
        "item           1  1.5    2  2.5  2.8    3\n"
        "\n"
        "rating  count  share\n"
        "1           1  16.7%\n"
        "2           2  33.3%\n"
        "5           3  50.0%"
    )


def test_text_names_the_source_and_labels_bins():
    data = RatingData.from_ids(np.arange(30), np.arange(30), np.arange(30) / 10)
    data.source = "r.csv"
    lines = describe(data).to_text().splitlines()
    assert lines[0] == "source        r.csv"
    assert lines[-10] == "[0, 0.29)         3  10.0%"
    assert lines[-1] == "[2.61, 2.9]       3  10.0%"


def test_timestamps_that_are_not_unix_seconds_are_shown_as_numbers():
    d = describe(small([1, 2, 3, 4, 5, 2**40]))
    assert d.time_range == (1, 2**40)
    assert "timestamps    1 .. 1099511627776\n" in d.to_text()


def test_dict_is_plain_json():
    d = describe(small([5, 6, 7, 8, 9, 10]))
    out = json.loads(json.dumps(d.to_dict()))
    assert out == {
        "source": None,
        "ratings": 6,
        "users": 3,
        "items": 3,
        "density": pytest.approx(6 / 9),
        "scale": [1.0, 5.0],
        "rating_min": 1.0,
        "rating_max": 5.0,
        "rating_mean": pytest.approx(20 / 6),
        "histogram": [
            {"low": 1.0, "high": 1.0, "count": 1},
            {"low": 2.0, "high": 2.0, "count": 2},
            {"low": 5.0, "high": 5.0, "count": 3},
        ],
        "ratings_per_user": pytest.approx(
            {"min": 1, "25%": 1.5, "50%": 2, "75%": 2.5, "90%": 2.8, "max": 3}
        ),
        "ratings_per_item": pytest.approx(
            {"min": 1, "25%": 1.5, "50%": 2, "75%": 2.5, "90%": 2.8, "max": 3}
        ),
        "time_range": [5, 10],
    }


def test_mean_of_float32_ratings_is_accumulated_in_float64():
    n = 1_000_001
    ratings = np.full(n, 0.1, dtype=np.float32)
    data = RatingData.from_ids(np.arange(n) % 1000, np.arange(n) // 1000, ratings)
    data.ratings = ratings
    assert describe(data).rating_mean == pytest.approx(float(np.float32(0.1)), rel=1e-12)


def test_no_ratings_is_an_error():
    data = small().subset(np.zeros(6, dtype=bool))
    data.source = "empty.csv"
    with pytest.raises(DataFormatError) as info:
        describe(data)
    assert str(info.value) == "empty.csv: no ratings to describe"
