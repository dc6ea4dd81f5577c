"""Synthetic data: reproducible bytes, the promised shape, and a recoverable planted structure."""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mfrec.cli import cli
from mfrec.ratings import synth
from mfrec.ratings.synth import synthesize, write_synthetic

REPO = Path(__file__).resolve().parents[2]
SMALL = {"n_users": 300, "n_items": 500, "n_ratings": 20_000}


@pytest.fixture(scope="module")
def ds_small() -> synth.Synthetic:
    return synthesize(**SMALL, seed=7)


def _indices(ds: synth.Synthetic) -> tuple[np.ndarray, np.ndarray]:
    p = ds.planted
    users = pd.Index(p.user_ids).get_indexer(ds.ratings["user"])
    items = pd.Index(p.item_ids).get_indexer(ds.ratings["item"])
    assert (users >= 0).all() and (items >= 0).all()
    return users, items


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- reproducibility ---------------------------------------------------------------------------


def test_same_seed_same_bytes_and_different_seed_different_bytes(tmp_path):
    paths = [tmp_path / name for name in ("a.csv", "b.csv", "c.csv")]
    for path, seed in zip(paths, (3, 3, 4), strict=True):
        write_synthetic(path, **SMALL, seed=seed, items_path=path.with_suffix(".items"))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    items = [p.with_suffix(".items").read_bytes() for p in paths]
    assert items[0] == items[1] != items[2]


def test_file_holds_exactly_the_in_memory_data(tmp_path, ds_small):
    path, items_path = tmp_path / "r.csv", tmp_path / "i.csv"
    summary = write_synthetic(path, **SMALL, seed=7, items_path=items_path)
    assert path.read_text().startswith("user,item,rating,timestamp\n")
    back = pd.read_csv(path, dtype={"user": str, "item": str})
    pd.testing.assert_frame_equal(back, ds_small.ratings, check_dtype=False)
    items = pd.read_csv(items_path, dtype=str)
    pd.testing.assert_frame_equal(items, ds_small.items, check_dtype=False)
    ratings = ds_small.ratings
    assert (summary.n_ratings, summary.n_users, summary.n_items) == (
        len(ratings),
        ratings["user"].nunique(),
        ratings["item"].nunique(),
    )


def test_chunked_generation_streams_the_same_data(tmp_path, monkeypatch):
    # Tiny chunks: many blocks, each with its own stream, must still agree file vs memory.
    monkeypatch.setattr(synth, "CHUNK_RATINGS", 500)
    path = tmp_path / "r.csv"
    write_synthetic(path, 120, 90, 4000, seed=1)
    ds = synthesize(120, 90, 4000, seed=1)
    back = pd.read_csv(path, dtype={"user": str, "item": str})
    pd.testing.assert_frame_equal(back, ds.ratings, check_dtype=False)
    assert not ds.ratings.duplicated(["user", "item"]).any()


def test_seed_may_be_a_generator():
    a = synthesize(50, 60, 800, seed=np.random.default_rng(11)).ratings
    b = synthesize(50, 60, 800, seed=11).ratings
    pd.testing.assert_frame_equal(a, b)


# --- shape -------------------------------------------------------------------------------------


def test_pairs_unique_ratings_integers_1_to_5(ds_small):
    r = ds_small.ratings
    assert list(r.columns) == ["user", "item", "rating", "timestamp"]
    assert len(r) == SMALL["n_ratings"]
    assert not r.duplicated(["user", "item"]).any()
    assert r["rating"].dtype.kind == "i"
    assert set(r["rating"].unique()) == {1, 2, 3, 4, 5}


def test_popularity_and_activity_are_long_tailed(ds_small):
    users, items = _indices(ds_small)
    item_counts = np.sort(np.bincount(items, minlength=SMALL["n_items"]))[::-1]
    user_counts = np.sort(np.bincount(users, minlength=SMALL["n_users"]))[::-1]
    # Uniform popularity would give the top 10% about 10% of the ratings.
    assert item_counts[: SMALL["n_items"] // 10].sum() / SMALL["n_ratings"] > 0.3
    assert user_counts[: SMALL["n_users"] // 10].sum() / SMALL["n_ratings"] > 0.18
    # ... and popular items are not the low IDs: popularity is shuffled over items.
    by_id = np.bincount(items, minlength=SMALL["n_items"])
    assert abs(np.corrcoef(by_id, np.arange(SMALL["n_items"]))[0, 1]) < 0.2


def test_every_user_gets_the_minimum_when_ratings_suffice(ds_small):
    users, _ = _indices(ds_small)
    assert np.bincount(users).min() >= synth.MIN_PER_USER
    assert (ds_small.planted.activity == np.bincount(users)).all()


def test_ids_are_zero_padded_strings(ds_small):
    for column, n in (("user", SMALL["n_users"]), ("item", SMALL["n_items"])):
        ids = ds_small.ratings[column]
        assert ids.str.fullmatch(rf"0\d{{{len(str(n))}}}").all()
    assert ds_small.planted.user_ids[16] == "0017"
    assert ds_small.items["item"].iloc[41] == "0042"


def test_timestamps_increase_along_each_users_timeline(ds_small):
    r = ds_small.ratings
    assert r["timestamp"].between(synth.START, synth.MAX_TIMESTAMP).all()
    gaps = r.groupby("user", sort=False)["timestamp"].diff().dropna()
    assert (gaps > 0).all()
    # Rows are grouped by user, in increasing time.
    assert r["user"].is_monotonic_increasing


def test_item_titles_are_readable_and_follow_the_seed(ds_small):
    items = ds_small.items
    assert list(items.columns) == ["item", "title"]
    assert len(items) == SMALL["n_items"] and items["item"].is_unique
    pattern = r"(The )?[A-Z][a-z]+ (of the )?[A-Z][a-z]+ \((19|20)\d\d\)"
    assert items["title"].str.fullmatch(pattern).all()
    assert items["title"].nunique() > 0.9 * len(items)
    other = synthesize(**SMALL, seed=8).items
    assert (other["title"] != items["title"]).mean() > 0.9


@pytest.mark.parametrize(
    ("n_users", "n_items", "n_ratings"),
    [(30, 40, 1000), (30, 40, 1200), (5, 1, 5), (1, 1, 1), (400, 10, 3000)],
    ids=["dense-users", "full-matrix", "one-item", "one-pair", "few-items"],
)
def test_dense_and_degenerate_sizes(n_users, n_items, n_ratings):
    r = synthesize(n_users, n_items, n_ratings, seed=2).ratings
    assert len(r) == n_ratings
    assert not r.duplicated(["user", "item"]).any()
    assert r["rating"].between(1, 5).all()


def test_more_users_than_ratings_leaves_some_users_out():
    ds = synthesize(50, 1000, 20, seed=0)
    assert len(ds.ratings) == 20
    assert ds.ratings["user"].nunique() <= 20
    assert len(ds.items) == 1000


# --- planted structure -------------------------------------------------------------------------


def test_mean_ratings_follow_the_planted_biases(ds_small):
    users, items = _indices(ds_small)
    p, r = ds_small.planted, ds_small.ratings["rating"].to_numpy()
    user_mean = np.bincount(users, weights=r) / np.bincount(users)
    assert np.corrcoef(user_mean, p.user_bias)[0, 1] > 0.85
    counts = np.bincount(items, minlength=SMALL["n_items"])
    rated = counts >= 20
    item_mean = np.bincount(items, weights=r, minlength=SMALL["n_items"])[rated] / counts[rated]
    assert np.corrcoef(item_mean, p.item_bias[rated])[0, 1] > 0.85


def test_what_biases_leave_follows_the_planted_factors(ds_small):
    users, items = _indices(ds_small)
    p, r = ds_small.planted, ds_small.ratings["rating"].to_numpy()
    residual = r - (p.mean + p.user_bias[users] + p.item_bias[items])
    interaction = np.einsum("nk,nk->n", p.user_factors[users], p.item_factors[items])
    assert np.corrcoef(residual, interaction)[0, 1] > 0.55
    assert np.std(interaction) == pytest.approx(synth.INTERACTION_SD, rel=0.2)


def test_score_is_the_planted_model(ds_small):
    users, items = _indices(ds_small)
    p = ds_small.planted
    expected = (
        p.mean
        + p.user_bias[users]
        + p.item_bias[items]
        + np.einsum("nk,nk->n", p.user_factors[users], p.item_factors[items])
    )
    np.testing.assert_allclose(p.score(users, items), expected, rtol=1e-12, atol=1e-12)


def test_noise_zero_and_factors_zero_give_rounded_biases():
    ds = synthesize(40, 50, 600, factors=0, noise=0.0, seed=5)
    users, items = _indices(ds)
    p = ds.planted
    assert p.user_factors.shape == (40, 0)
    expected = np.clip(np.rint(p.mean + p.user_bias[users] + p.item_bias[items]), 1, 5)
    np.testing.assert_array_equal(ds.ratings["rating"], expected)


# --- helpers with a reference twin -------------------------------------------------------------


@pytest.mark.parametrize("high", [1_000, 2**61], ids=["packed", "fallback"])
def test_first_occurrences_matches_numpy_unique(high):
    keys = np.random.default_rng(0).integers(0, high, 5000).astype(np.int64)
    keys[::7] = keys[0]
    values, first = synth._first_occurrences(keys)
    ref_values, ref_first = np.unique(keys, return_index=True)
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(first, ref_first)


def test_alias_table_draws_follow_the_weights():
    p = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625])
    accept, alias = synth._alias_table(p)
    drawn = synth._draw(accept, alias, np.random.default_rng(1).random(400_000))
    freq = np.bincount(drawn, minlength=len(p)) / len(drawn)
    np.testing.assert_allclose(freq, p, atol=0.004)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_users": 0}, "n_users=0: must be >= 1"),
        ({"n_items": -3}, "n_items=-3: must be >= 1"),
        ({"n_ratings": 0}, "n_ratings=0: must be >= 1"),
        ({"factors": -1}, "factors=-1: must be >= 0"),
        ({"noise": -0.5}, "noise=-0.5: must be a finite number >= 0"),
        ({"noise": float("nan")}, "noise=nan: must be a finite number >= 0"),
        (
            {"n_users": 10, "n_items": 20, "n_ratings": 201},
            "n_ratings=201: more than the 200 distinct (user, item) pairs of 10 users x 20 items",
        ),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    args = {**SMALL, "factors": 3, "noise": 0.5, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        synthesize(**args, seed=0)


def test_non_integer_size_is_a_type_error():
    with pytest.raises(TypeError, match=re.escape("n_users=10.5: must be an integer")):
        synthesize(10.5, 10, 10)


# --- command line ------------------------------------------------------------------------------


def test_cli_synth_writes_the_library_output(tmp_path):
    out, items_out = tmp_path / "r.csv", tmp_path / "i.csv"
    args = "data synth --users 300 --items 500 --ratings 20000 --seed 7 --factors 10 --noise 0.5"
    result = CliRunner().invoke(
        cli, [*args.split(), "-o", str(out), "--items-out", str(items_out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == (
        f"wrote 20000 ratings by 300 users on {_n_items_rated(out)} items to {out}\n"
        f"wrote 500 item titles to {items_out}\n"
    )
    write_synthetic(tmp_path / "lib.csv", **SMALL, seed=7)
    assert out.read_bytes() == (tmp_path / "lib.csv").read_bytes()


def _n_items_rated(path: Path) -> int:
    return pd.read_csv(path, dtype=str)["item"].nunique()


def test_cli_synth_quiet_prints_nothing(tmp_path):
    out = tmp_path / "r.csv"
    args = ["data", "synth", "--users", "5", "--items", "5", "--ratings", "10", "--seed", "1"]
    result = CliRunner().invoke(cli, [*args, "-q", "-o", str(out)], catch_exceptions=False)
    assert (result.exit_code, result.output) == (0, "")
    assert len(out.read_text().splitlines()) == 11


def test_cli_synth_too_many_ratings_is_a_usage_error(tmp_path):
    out = tmp_path / "r.csv"
    args = ["data", "synth", "--users", "2", "--items", "3", "--ratings", "7", "--seed", "1"]
    result = CliRunner().invoke(cli, [*args, "-o", str(out)])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: n_ratings=7: more than the 6 distinct (user, item) pairs of 2 users x 3 items\n"
    )
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_synth_needs_a_seed(tmp_path):
    args = ["data", "synth", "--users", "2", "--items", "3", "--ratings", "4", "-o", "x.csv"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "Error: Missing option '--seed'." in result.stderr


# --- the shipped sample data -------------------------------------------------------------------


def _readme_command() -> list[str]:
    readme = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^\s*(mfrec data synth .+)$", readme, flags=re.MULTILINE)
    assert len(commands) == 1, "data/README.md must show exactly one `mfrec data synth` command"
    return shlex.split(commands[0])[1:]


def test_shipped_data_is_reproduced_byte_for_byte_by_the_readme_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = _readme_command()
    assert "data/ratings.csv" in args and "data/items.csv" in args
    result = CliRunner().invoke(cli, [*args, "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("ratings.csv", "items.csv"):
        assert _sha(tmp_path / "data" / name) == _sha(REPO / "data" / name), name


def test_readme_states_the_checksums_of_the_shipped_files():
    readme = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    for name in ("ratings.csv", "items.csv"):
        assert f"{_sha(REPO / 'data' / name)}  {name}" in readme


@pytest.mark.parametrize("command", [["data"], ["data", "synth"]])
def test_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Usage: " in result.output and len(result.output.splitlines()) > 5
