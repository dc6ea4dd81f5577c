"""Summary figures of a ratings set: sizes, density, rating distribution, activity per user/item."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mfrec.errors import DataFormatError
from mfrec.ratings.ratingdata import RatingData
from mfrec.utils.formatting import aligned, label_row, number

#: Up to this many distinct rating values, the histogram counts each value; beyond, it bins.
MAX_DISTINCT = 20
HISTOGRAM_BINS = 10
QUANTILES = (("min", 0.0), ("25%", 0.25), ("50%", 0.5), ("75%", 0.75), ("90%", 0.9), ("max", 1.0))

# Timestamps in this range are read as Unix seconds and also shown as dates.
_UNIX_SECONDS = (0, 2**32)


@dataclass(frozen=True)
class HistogramBin:
    """Ratings in [low, high) (the last bin includes `high`); low == high for a single value."""

    low: float
    high: float
    count: int


@dataclass(frozen=True)
class Description:
    """What `describe` found; `to_text()` for people, `to_dict()` for JSON.

    Users and items count only those with at least one rating. `ratings_per_user` and
    `ratings_per_item` map quantile names (``min``, ``25%``, ..., ``max``) to values.
    """

    source: str | None
    n_ratings: int
    n_users: int
    n_items: int
    density: float
    scale: tuple[float, float]
    rating_min: float
    rating_max: float
    rating_mean: float
    histogram: tuple[HistogramBin, ...]
    ratings_per_user: dict[str, float]
    ratings_per_item: dict[str, float]
    time_range: tuple[int, int] | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (no numpy types)."""
        return {
            "source": self.source,
            "ratings": self.n_ratings,
            "users": self.n_users,
            "items": self.n_items,
            "density": self.density,
            "scale": list(self.scale),
            "rating_min": self.rating_min,
            "rating_max": self.rating_max,
            "rating_mean": self.rating_mean,
            "histogram": [{"low": b.low, "high": b.high, "count": b.count} for b in self.histogram],
            "ratings_per_user": dict(self.ratings_per_user),
            "ratings_per_item": dict(self.ratings_per_item),
            "time_range": None if self.time_range is None else list(self.time_range),
        }

    def to_text(self) -> str:
        """A human-readable summary: key figures, activity quantiles and the histogram."""
        lines = []
        if self.source:
            lines.append(label_row("source", self.source))
        lines += [
            label_row("ratings", f"{self.n_ratings:,}"),
            label_row("users", f"{self.n_users:,}"),
            label_row("items", f"{self.n_items:,}"),
            label_row("density", f"{self.density:.4%}"),
            label_row("rating scale", f"{number(self.scale[0])} .. {number(self.scale[1])}"),
            label_row(
                "ratings seen",
                f"{number(self.rating_min)} .. {number(self.rating_max)}, "
                f"mean {self.rating_mean:.4g}",
            ),
        ]
        if self.time_range is not None:
            lines.append(label_row("timestamps", _time_text(self.time_range)))
        lines += ["", _quantile_table(self.ratings_per_user, self.ratings_per_item), ""]
        lines.append(_histogram_table(self.histogram, self.n_ratings))
        return "\n".join(lines)


def describe(data: RatingData) -> Description:
    """Summarize `data`: sizes, density, rating histogram, ratings per user and per item.

    Raises
    ------
    DataFormatError
        When there are no ratings to describe.
    """
    n = len(data)
    if n == 0:
        raise DataFormatError("no ratings to describe", source=data.source)
    per_user = np.bincount(data.users, minlength=data.n_users)
    per_item = np.bincount(data.items, minlength=data.n_items)
    per_user, per_item = per_user[per_user > 0], per_item[per_item > 0]
    ratings = data.ratings
    ts = data.timestamps
    return Description(
        source=data.source,
        n_ratings=n,
        n_users=len(per_user),
        n_items=len(per_item),
        density=n / (len(per_user) * len(per_item)),
        scale=(float(data.scale[0]), float(data.scale[1])),
        rating_min=float(ratings.min()),
        rating_max=float(ratings.max()),
        rating_mean=float(ratings.mean(dtype=np.float64)),
        histogram=_histogram(ratings),
        ratings_per_user=_quantiles(per_user),
        ratings_per_item=_quantiles(per_item),
        time_range=None if ts is None else (int(ts.min()), int(ts.max())),
    )


def _histogram(ratings: NDArray[np.floating]) -> tuple[HistogramBin, ...]:
    values, counts = np.unique(ratings, return_counts=True)
    if len(values) <= MAX_DISTINCT:
        return tuple(
            HistogramBin(v, v, c) for v, c in zip(values.tolist(), counts.tolist(), strict=True)
        )
    counts, edges = np.histogram(ratings, bins=HISTOGRAM_BINS)
    edges = edges.tolist()
    return tuple(
        HistogramBin(lo, hi, c)
        for lo, hi, c in zip(edges[:-1], edges[1:], counts.tolist(), strict=True)
    )


def _quantiles(counts: NDArray[np.integer]) -> dict[str, float]:
    values = np.quantile(counts, [q for _, q in QUANTILES]).tolist()
    return {name: v for (name, _), v in zip(QUANTILES, values, strict=True)}


def _time_text(time_range: tuple[int, int]) -> str:
    lo, hi = time_range
    text = f"{lo} .. {hi}"
    if _UNIX_SECONDS[0] <= lo and hi < _UNIX_SECONDS[1]:
        day = [datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d") for t in time_range]
        text += f" ({day[0]} .. {day[1]} UTC)"
    return text


def _quantile_table(per_user: dict[str, float], per_item: dict[str, float]) -> str:
    return aligned(
        [
            ["ratings per", *per_user],
            ["user", *map(number, per_user.values())],
            ["item", *map(number, per_item.values())],
        ]
    )


def _histogram_table(histogram: tuple[HistogramBin, ...], total: int) -> str:
    last = len(histogram) - 1
    rows = [["rating", "count", "share"]]
    for k, b in enumerate(histogram):
        if b.low == b.high:
            label = number(b.low)
        else:
            label = f"[{number(b.low)}, {number(b.high)}{']' if k == last else ')'}"
        rows.append([label, f"{b.count:,}", f"{b.count / total:.1%}"])
    return aligned(rows)
