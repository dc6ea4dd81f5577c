"""`mfrec split` and `mfrec info` through click's CliRunner."""

from __future__ import annotations

import gzip
import inspect
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ML100K

from mfrec.cli import cli
from mfrec.cli.split_cmd import _output_suffix
from mfrec.ratings.describe import describe
from mfrec.ratings.load import load_ratings
from mfrec.ratings.split import split

# Four users with 5 ratings each, tab-separated like MovieLens u.data; IDs with leading zeros.
LINES = [
    f"{u:03d}\t{i:04d}\t{(u * 7 + i) % 5 + 1}\t{1000 + 10 * i + u}"
    for u in range(1, 5)
    for i in range(1, 6)
]


@pytest.fixture
def udata(tmp_path: Path) -> Path:
    path = tmp_path / "u.data"
    path.write_text("\n".join(LINES) + "\n")
    return path


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=not ok)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_split_writes_train_and_test_in_the_input_layout(udata, tmp_path):
    out = tmp_path / "out"
    result = run("split", udata, "-o", out, "--test-size", "0.25")
    train, test = lines_of(out / "train.data"), lines_of(out / "test.data")
    assert (len(train), len(test)) == (15, 5)
    assert sorted(train + test) == sorted(LINES)  # same IDs, separator, ratings, timestamps
    assert result.stdout.splitlines()[0] == f"{out / 'train.data'}: 15 ratings"
    assert result.stdout.splitlines()[1].startswith(f"{out / 'test.data'}: 5 ratings; not in")


def test_split_reports_users_and_items_missing_from_train(tmp_path):
    src = tmp_path / "r.csv"
    src.write_text("user,item,rating,timestamp\na,x,1,1\na,y,2,2\nb,x,3,3\nb,z,4,4\n")
    out = tmp_path / "out"
    result = run("split", src, "-o", out, "--by", "time", "--test-size", "0.5", "--min-ratings", 2)
    # each user's latest rating is tested: a-y (item y unknown) and b-z (item z unknown)
    assert lines_of(out / "test.csv") == ["user,item,rating,timestamp", "a,y,2,2", "b,z,4,4"]
    assert lines_of(out / "train.csv") == ["user,item,rating,timestamp", "a,x,1,1", "b,x,3,3"]
    assert result.stdout == (
        f"{out / 'train.csv'}: 2 ratings\n"
        f"{out / 'test.csv'}: 2 ratings; not in train: 0 users, 2 items (2 ratings)\n"
    )


def test_split_by_user_with_a_seed_is_reproducible(udata, tmp_path):
    run("split", udata, "-o", tmp_path / "a", "--by", "user", "--seed", "3")
    run("split", udata, "-o", tmp_path / "b", "--by", "user", "--seed", "3")
    test = lines_of(tmp_path / "a" / "test.data")
    assert test == lines_of(tmp_path / "b" / "test.data")
    assert sorted(line.split("\t")[0] for line in test) == ["001", "002", "003", "004"]


def test_folds_put_every_rating_in_exactly_one_test_file(udata, tmp_path):
    out = tmp_path / "cv"
    result = run("split", udata, "-o", out, "--folds", "3", "--by", "user")
    tested = []
    for f in (1, 2, 3):
        train, test = (
            lines_of(out / f"fold{f}" / "train.data"),
            lines_of(out / f"fold{f}" / "test.data"),
        )
        assert sorted(train + test) == sorted(LINES)
        tested += test
    assert sorted(tested) == sorted(LINES)
    assert len(result.stdout.splitlines()) == 6


def test_compressed_input_gives_compressed_output(tmp_path):
    src = tmp_path / "ratings.csv.gz"
    src.write_bytes(gzip.compress(b"u,i,r\n1,1,1\n1,2,2\n2,1,3\n2,2,4\n3,1,5\n"))
    out = tmp_path / "out"
    run("split", src, "-o", out)
    with gzip.open(out / "train.csv.gz", "rt") as fh:
        assert fh.readline() == "u,i,r\n"
    assert len(load_ratings(out / "test.csv.gz")) == 1


@pytest.mark.parametrize(
    ("source", "suffix"),
    [
        ("u.data", ".data"),
        ("dir.v2/ratings.CSV", ".csv"),
        ("ratings.csv.gz", ".csv.gz"),
        ("ratings.dat.bz2", ".dat.bz2"),
        ("ratings.parquet", ".csv"),
        ("ml-latest.zip", ".csv"),
        ("ratings", ""),
    ],
)
def test_output_suffix(source, suffix):
    assert _output_suffix(source) == suffix


def test_existing_outputs_are_not_overwritten_without_force(udata, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "test.data").write_text("keep me\n")
    result = run("split", udata, "-o", out, ok=False)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {out / 'test.data'} already exists; use --force to overwrite\n"
    assert (out / "test.data").read_text() == "keep me\n"
    assert not (out / "train.data").exists()
    run("split", udata, "-o", out, "--force")
    assert len(lines_of(out / "test.data")) == 4


def test_existing_fold_outputs_are_counted(udata, tmp_path):
    out = tmp_path / "cv"
    run("split", udata, "-o", out, "-k", "2")
    result = run("split", udata, "-o", out, "-k", "2", ok=False)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {out / 'fold1' / 'train.data'} already exists (and 3 more); "
        "use --force to overwrite\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--folds", "3", "--by", "time"], "--by time cannot be combined with --folds"),
        (["--folds", "3", "--test-size", "0.3"], "--test-size cannot be combined with --folds"),
        (["--folds", "3", "--min-ratings", "3"], "--min-ratings cannot be combined with --folds"),
        (["--test-size", "1.5"], "Invalid value for '--test-size': 1.5 is not in the range 0<x<1."),
        (["--folds", "1"], "Invalid value for '-k' / '--folds': 1 is not in the range x>=2."),
        (
            ["--by", "item"],
            "Invalid value for '--by': 'item' is not one of 'random', 'user', 'time'.",
        ),
    ],
)
def test_bad_split_options(udata, tmp_path, args, message):
    result = run("split", udata, "-o", tmp_path / "out", *args, ok=False)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert not (tmp_path / "out").exists()


def test_split_by_time_without_timestamps(tmp_path):
    src = tmp_path / "r.csv"
    src.write_text("user,item,rating\n" + "".join(f"a,{i},3\n" for i in range(6)))
    result = run("split", src, "-o", tmp_path / "out", "--by", "time", ok=False)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {src}: a split by time needs timestamps, and these ratings have none\n"
    )


def test_split_needs_an_output_folder(udata):
    result = run("split", udata, ok=False)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: Missing option '-o' / '--output'."


# -- info -------------------------------------------------------------------------------------


def test_info_prints_the_description_table(udata):
    result = run("info", udata)
    assert result.stdout == describe(load_ratings(udata)).to_text() + "\n"
    assert "ratings       20\n" in result.stdout


def test_info_json(udata):
    result = run("info", udata, "--format", "json")
    out = json.loads(result.stdout)
    assert out == describe(load_ratings(udata)).to_dict()
    assert (out["ratings"], out["users"], out["items"]) == (20, 4, 5)


def test_info_passes_loader_options(tmp_path):
    src = tmp_path / "r.txt"
    src.write_text("1;2;3;4\n5;6;7;8\n")
    out = json.loads(run("info", src, "--columns", "4,3,2", "--format", "json").stdout)
    assert out["rating_min"] == 2 and out["rating_max"] == 6


def test_info_missing_file(tmp_path):
    missing = tmp_path / "missing.csv"
    result = run("info", missing, ok=False)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {missing}: no such file\n"


def test_info_bad_format(udata):
    result = run("info", udata, "--format", "xml", ok=False)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--format': 'xml' is not one of 'table', 'json'."
    )


@pytest.mark.parametrize(
    ("command", "text"),
    [("split", "Split RATINGS into train and test files"), ("info", "Describe the ratings")],
)
def test_help(command, text):
    result = run(command, "--help")
    assert text in result.stdout
    assert "--preset" in result.stdout


def test_split_help_documents_overwrite_and_naming():
    out = " ".join(run("split", "--help").stdout.split())
    assert "Existing files are never overwritten unless --force is given." in out
    assert "OUTPUT/fold1/train.EXT" in out
    defaults = inspect.signature(split).parameters
    assert f"[default: {defaults['test_size'].default}]" in out
    assert f"[default: {defaults['min_ratings'].default}]" in out


@pytest.mark.movielens
@pytest.mark.skipif(not (ML100K / "u.data").exists(), reason="MovieLens 100k not present")
def test_movielens_split_by_time_round_trips(tmp_path):
    out = tmp_path / "ml"
    result = run("split", ML100K / "u.data", "-o", out, "--by", "time")
    train, test = load_ratings(out / "train.data"), load_ratings(out / "test.data")
    assert len(train) + len(test) == 100_000
    assert test.layout == train.layout == load_ratings(ML100K / "u.data").layout
    assert "not in train: 0 users" in result.stdout  # every user has >= 20 ratings
