"""`mfrec predict`, `recommend`, `similar`, `evaluate` and `info MODEL` through CliRunner, and
the files they read: pairs and item titles."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
from builders import tiny_model
from click.testing import CliRunner
from conftest import ML100K

from mfrec.cli import cli
from mfrec.errors import DataFormatError
from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings import pairs as pairs_module
from mfrec.ratings.pairs import read_pairs
from mfrec.ratings.titles import read_titles, titles_of

ITEMS_CSV = 'item,title\na,Alpha\nb,Beta\nc,"Gamma, The"\nd,Delta\n'


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.npz"
    tiny_model().save(path)
    return path


@pytest.fixture
def items_csv(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(ITEMS_CSV)
    return path


#: IDs that a CSV writer must quote or keep exactly: leading zeros, commas, quotes, unicode.
ODD_USERS = ["007", "7", "0", "a,b", 'say "hi"', "naïve", "東京", "🎬 fan", "semi;colon", "x'y"]
ODD_ITEMS = ["0001", "1", "x,y", 'q"', "é", "映画", "tab\there", "10", "9", "99"]


def odd_model(seed=0) -> MatrixFactorization:
    """Random factors and biases over `ODD_USERS` x `ODD_ITEMS`, a few seen items each."""
    rng = np.random.default_rng(seed)
    n_users, n_items = len(ODD_USERS), len(ODD_ITEMS)
    counts = rng.integers(0, 4, n_users)
    seen = np.concatenate([rng.choice(n_items, c, replace=False) for c in counts])
    return MatrixFactorization.from_factors(
        rng.normal(0, 1, (n_users, 3)).astype(np.float32),
        rng.normal(0, 1, (n_items, 3)).astype(np.float32),
        ODD_USERS,
        ODD_ITEMS,
        scale=(1.0, 5.0),
        user_bias=rng.normal(0, 0.5, n_users),
        item_bias=rng.normal(0, 0.5, n_items),
        global_mean=3.2,
        seen=(np.concatenate([[0], np.cumsum(counts)]), seen),
    )


def pandas_csv(columns: dict, **options) -> str:
    """What the commands wrote before their CSV writer was replaced (pandas' to_csv)."""
    return pd.DataFrame(columns).to_csv(index=False, lineterminator="\n", **options)


def run(*args, ok=True):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=not ok)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def fails(*args, code=2):
    result = run(*args, ok=False)
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    return result.stderr


# -- predict ---------------------------------------------------------------------------------


def test_predict_writes_csv_with_what_was_known(model_file, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item\nu1,b\nu1,q\nzz,a\n007,c\nu1,b\n")
    result = run("predict", model_file, pairs)
    assert result.stdout == (
        "user,item,prediction,known\n"
        "u1,b,1,both\nu1,q,3,user\nzz,a,3,item\n007,c,3,both\nu1,b,1,both\n"
    )
    assert result.stderr == (
        "2 of 5 pairs have an unknown user or item: fallback predictions (see the known column)\n"
    )


def test_predict_clips_unless_told_and_writes_a_file(tmp_path):
    path = tmp_path / "biased.npz"
    tiny_model(user_bias=[0.5, 0, 0], item_bias=[0, 1.5, 0, 0, 0]).save(path)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("u1\tb\t3\t1000\n")  # a u.data-like test file: rating and time ignored
    assert run("predict", path, pairs).stdout.splitlines()[1] == "u1,b,5,both"
    assert run("predict", path, pairs, "--no-clip").stdout.splitlines()[1] == "u1,b,6,both"
    out = tmp_path / "out" / "pred.csv"
    result = run("predict", path, pairs, "-o", out)
    assert result.stdout == ""
    assert out.read_text() == "user,item,prediction,known\nu1,b,5,both\n"
    assert [p.name for p in out.parent.iterdir()] == ["pred.csv"]  # no temporary left


def test_predict_keeps_ids_exactly(model_file, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("007,a\n7,a\n")
    lines = run("predict", model_file, pairs).stdout.splitlines()
    assert lines[1:] == ["007,a,2,both", "7,a,3,item"]


@pytest.mark.parametrize("clip", ["--clip", "--no-clip"])
def test_predict_writes_what_pandas_wrote_for_odd_ids(tmp_path, clip):
    model = odd_model()
    path = tmp_path / "odd.npz"
    model.save(path)
    rng = np.random.default_rng(1)
    users = [*ODD_USERS, "unknown", "07", "a"]
    items = [*ODD_ITEMS, "nope", "01", "x"]
    wanted = [(users[u], items[i]) for u, i in rng.integers(0, [len(users), len(items)], (300, 2))]
    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerows([("user", "item"), *wanted])
    u, i = [w[0] for w in wanted], [w[1] for w in wanted]
    pred, known = model.predict(u, i, clip=clip == "--clip", return_known=True)
    expected = pandas_csv(
        {"user": u, "item": i, "prediction": pred, "known": known}, float_format="%.6g"
    )
    assert run("predict", path, pairs, clip).stdout == expected
    out = tmp_path / "pred.csv"
    run("predict", path, pairs, clip, "-o", out)
    assert out.read_bytes() == expected.encode("utf-8")


def test_predict_errors(model_file, tmp_path):
    assert fails("predict", model_file, tmp_path / "nope.csv") == (
        f"Error: {tmp_path / 'nope.csv'}: no such file\n"
    )
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("user,item\nu1,a\nu1,b,c\n")
    assert fails("predict", model_file, ragged) == (
        f"Error: {ragged}, line 3: expected 2 columns, found 3\n"
    )
    assert "does not exist" in fails("predict", tmp_path / "none.npz", ragged)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    assert fails("predict", bad, ragged) == (
        f"Error: {bad}: not an mfrec model file (truncated, or not an .npz archive)\n"
    )


# -- pairs and titles files ------------------------------------------------------------------


def test_read_pairs_layouts(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("rating,itemId,userId\n5,x,001\n\n4,y,002\n")
    pairs = read_pairs(path)  # columns found by header name; blank line skipped
    assert pairs.users.tolist() == ["001", "002"] and pairs.items.tolist() == ["x", "y"]
    path.write_text("a b c\nd  e f\n")
    pairs = read_pairs(path, columns="3,1")
    assert pairs.users.tolist() == ["c", "f"] and pairs.items.tolist() == ["a", "d"]
    path.write_text("1::2::5::978300760\n")
    assert read_pairs(path, preset="ml-1m").items.tolist() == ["2"]
    with pytest.raises(DataFormatError, match=r"line 2: empty item ID$"):
        path.write_text("u,i\nu1, \n")
        read_pairs(path)
    with pytest.raises(DataFormatError, match=r"no column named 'who'; the header has: u, i$"):
        read_pairs(path, columns="who,i")


#: Files read by the plain-text path (True) or the general one, which must agree.
PAIRS_TEXTS = {
    "plain": ("user,item\n007,a\n7,b\n", True),
    "no final newline": ("007,a\n7,b", True),
    "crlf": ("user,item\r\n007,a\r\n7,b\r\n", True),
    "inner spaces": ("u1, a\nu2,b \n", True),
    "tabs and ratings": ("u1\ta\t5\t100\nu2\tb\t3\t101\n", True),
    "whitespace runs": ("u1 a 5\nu2  b 3\n", True),
    "double colon": ("1::2::5::978300760\n3::4::1::978300761\n", True),
    "quoted": ('user,item\n"a,b","x ""y"""\n007,"z"\n', True),
    "header by name": ("rating,itemId,userId\n5,x,001\n4,y,002\n", True),
    "unicode": ("user,item\nnaïve,東京\n🎬,x\n", False),
    "blank lines": ("user,item\n\n007,a\n   \n7,b\n\n", False),
    "leading whitespace": (" u1,a\n\tu2,b\n", False),
    "form feed": ("a,b\x0cc,d\n", False),
    "record separator": ("a,b\x1ec,d\n", False),
    "unit separator": ("a\x1f,b\nc,d\n", True),
    "lone carriage returns": ("a,b\rc,d\r", False),
    "no-break space line": ("a,b\n\xa0\nc,d\n", False),
    "header only": ("user,item\n", True),
    "ragged": ("user,item\nu1,a\nu1,b,c\n", True),
    "short line": ("user,item\nu1,a\nu1\n", True),
    "quoted line break": ('a,"b\nc"\nd,e\n', True),
    "empty id": ("u,i\nu1,a\nu2,\n", True),
    "empty id after a blank line": ("u,i\n\nu1,a\nu2,\n", False),
    "blank id": ("u,i\nu1, \n", True),
    "empty file": ("", False),
    "blank file": ("\n\n  \n", False),
}


@pytest.mark.parametrize("name", list(PAIRS_TEXTS))
def test_read_pairs_plain_text_path_reads_as_the_general_one(name, tmp_path, monkeypatch):
    text, plain = PAIRS_TEXTS[name]
    path = tmp_path / "pairs.txt"
    path.write_bytes(text.encode("utf-8"))

    def read():
        try:
            found = read_pairs(path)
        except DataFormatError as exc:
            return f"error: {exc}"
        assert found.users.dtype == found.items.dtype == object
        assert all(type(x) is str for x in [*found.users, *found.items])
        return found.users.tolist(), found.items.tolist()

    assert (pairs_module._plain_text(text) is not None) == plain
    fast = read()
    monkeypatch.setattr(pairs_module, "_plain_text", lambda text: None)
    assert fast == read()


def test_read_titles_in_the_usual_layouts(tmp_path):
    csv_file = tmp_path / "items.csv"
    csv_file.write_text("item,title\n00001,Hidden Bridge (1962)\n2,Other\n")
    assert read_titles(csv_file).to_dict() == {"00001": "Hidden Bridge (1962)", "2": "Other"}
    movies = tmp_path / "movies.csv"
    movies.write_text(
        'movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n'
        '11,"American President, The (1995)",Comedy|Drama\n'
    )  # fmt: skip
    assert read_titles(movies)["11"] == "American President, The (1995)"
    u_item = tmp_path / "u.item"
    u_item.write_bytes(
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|1\n"
        "2|Misérables, Les (1995)|01-Jan-1995||http://y|1|0\n".encode("latin-1")
    )
    assert read_titles(u_item).to_dict() == {"1": "Toy Story (1995)", "2": "Misérables, Les (1995)"}
    dat = tmp_path / "movies.dat"
    dat.write_text("1::Toy Story (1995)::Animation\n2::Jumanji (1995)::Adventure\n")
    assert read_titles(dat)["2"] == "Jumanji (1995)"
    assert titles_of(read_titles(dat), [["2", None], ["9", "1"]]).tolist() == [
        ["Jumanji (1995)", ""],
        ["", "Toy Story (1995)"],
    ]


def test_read_titles_refuses_a_repeated_item(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("item,title\na,A\nb,B\na,C\n")
    with pytest.raises(DataFormatError, match=r"item 'a' is listed twice \(lines 2 and 4\)$"):
        read_titles(path)


@pytest.mark.movielens
@pytest.mark.skipif(not ML100K.exists(), reason="MovieLens 100k not present")
def test_read_titles_of_movielens_u_item():
    titles = read_titles(ML100K / "u.item")
    assert len(titles) == 1682
    assert titles["1"] == "Toy Story (1995)"


# -- recommend -------------------------------------------------------------------------------


def test_recommend_table_with_titles(model_file, items_csv):
    result = run("recommend", model_file, "--user", "u1", "--user", "007", "-k", 2,
                 "--items", items_csv)  # fmt: skip
    assert result.stdout == (
        "user  rank  item   score  title\n"
        "u1       1  b     1.0000  Beta\n"
        "u1       2  d     1.0000  Delta\n"
        "007      1  c     3.0000  Gamma, The\n"
        "007      2  a     2.0000  Alpha\n"
    )


def test_recommend_csv_and_include_seen(model_file):
    result = run("recommend", model_file, "--user", "u1", "-k", 2, "--format", "csv")
    assert result.stdout == "user,rank,item,score\nu1,1,b,1.0\nu1,2,d,1.0\n"
    result = run("recommend", model_file, "--user", "u1", "-k", 2, "--include-seen",
                 "--format", "csv")  # fmt: skip
    assert result.stdout == "user,rank,item,score\nu1,1,a,2.0\nu1,2,b,1.0\n"


def test_recommend_json_with_cold_start(model_file, items_csv):
    result = run("recommend", model_file, "--user", "zz", "--user", "u2", "-k", 2,
                 "--cold-start", "popular", "--format", "json", "--items", items_csv)  # fmt: skip
    assert json.loads(result.stdout) == [
        {"user": "zz", "source": "popular", "items": [
            {"rank": 1, "item": "a", "score": 3.0, "title": "Alpha"},
            {"rank": 2, "item": "b", "score": 3.0, "title": "Beta"}]},
        {"user": "u2", "source": "model", "items": [
            {"rank": 1, "item": "a", "score": 0.0, "title": "Alpha"},
            {"rank": 2, "item": "d", "score": 0.0, "title": "Delta"}]},
    ]  # fmt: skip
    assert result.stderr == "1 unknown user(s): recommended the most popular items\n"


def test_recommend_all_users_in_blocks(model_file, tmp_path):
    out = tmp_path / "all.csv"
    run("recommend", model_file, "--all-users", "-k", 1, "--format", "csv", "-o", out,
        "--memory-budget", 1)  # fmt: skip
    assert out.read_text() == "user,rank,item,score\nu1,1,b,1.0\nu2,1,a,0.0\n007,1,c,3.0\n"


def test_recommend_all_users_csv_is_what_pandas_wrote(tmp_path):
    model = odd_model(2)
    path = tmp_path / "odd.npz"
    model.save(path)
    titles = tmp_path / "titles.csv"
    titles.write_text(
        pandas_csv(
            {"item": ODD_ITEMS[:7], "title": ["A, The", 'Say "x"', "Ünï", "", "B", "C", "D"]}
        ),
        encoding="utf-8",
    )
    for seen in ("--exclude-seen", "--include-seen"):
        ids, scores = model.recommend(None, 3, exclude_seen=seen == "--exclude-seen")
        listed = ids != None  # noqa: E711
        row, rank = np.nonzero(listed)
        columns = {"user": np.array(ODD_USERS, dtype=object)[row], "rank": rank + 1,
                   "item": ids[listed], "score": np.round(scores[listed], 4)}  # fmt: skip
        out = run("recommend", path, "--all-users", "-k", 3, seen, "--format", "csv",
                  "--memory-budget", 1).stdout  # fmt: skip
        assert out == pandas_csv(columns)
        columns["title"] = titles_of(read_titles(titles), columns["item"])
        out = run("recommend", path, "--all-users", "-k", 3, seen, "--format", "csv",
                  "--items", titles).stdout  # fmt: skip
        assert out == pandas_csv(columns)


def test_recommend_csv_with_cold_start_is_what_pandas_wrote(tmp_path):
    model = odd_model(3)
    path = tmp_path / "odd.npz"
    model.save(path)
    users = ["a,b", "nobody", 'say "hi"', "07"]
    ids, scores = model.recommend(users, 4, cold_start="popular")
    cold = np.array([u not in model.user_map_ for u in users])
    listed = ids != None  # noqa: E711
    row, rank = np.nonzero(listed)
    expected = pandas_csv({
        "user": np.array(users, dtype=object)[row], "rank": rank + 1, "item": ids[listed],
        "score": np.round(scores[listed], 4), "source": np.where(cold[row], "popular", "model"),
    })  # fmt: skip
    args = [a for u in users for a in ("--user", u)]
    out = tmp_path / "rec.csv"
    run("recommend", path, *args, "-k", 4, "--cold-start", "popular", "--format", "csv", "-o", out)
    assert out.read_bytes() == expected.encode("utf-8")


def test_recommend_errors(model_file):
    assert fails("recommend", model_file, "--user", "zz", "--user", "u1") == (
        "Error: unknown user 'zz': not in the model's training data; --cold-start popular "
        "recommends the most popular items\n"
    )
    expected = "Error: give --user ID (repeatable) or --all-users, not both\n"
    assert fails("recommend", model_file) == expected
    assert fails("recommend", model_file, "--user", "u1", "--all-users") == expected
    assert "Invalid value for '-k'" in fails("recommend", model_file, "--user", "u1", "-k", 0)


# -- similar ---------------------------------------------------------------------------------


def test_similar_items(model_file, items_csv):
    result = run("similar", model_file, "--item", "a", "-k", 2, "--items", items_csv)
    assert result.stdout == (
        "item  rank  similar  similarity  title\n"
        "a        1  d            1.0000  Delta\n"
        "a        2  b            0.7071  Beta\n"
    )
    result = run("similar", model_file, "--item", "a", "-k", 1, "--format", "json",
                 "--items", items_csv)  # fmt: skip
    assert json.loads(result.stdout) == [
        {"item": "a", "title": "Alpha",
         "items": [{"rank": 1, "similar": "d", "similarity": 1.0, "title": "Delta"}]}
    ]  # fmt: skip
    assert fails("similar", model_file, "--item", "z") == (
        "Error: unknown item 'z': not in the model's training data\n"
    )


# -- evaluate --------------------------------------------------------------------------------


@pytest.fixture
def test_file(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("user,item,rating\nu1,b,4\nu1,c,5\n007,a,4\nzz,a,4\n")
    return path


def test_evaluate_table(model_file, test_file):
    out = run("evaluate", model_file, test_file, "-k", 2).stdout
    assert out.startswith(f"model  {model_file}\ntest   {test_file}\n\nrating accuracy on 3 of 4")
    assert "relevant = test rating >= 3.75 (scale 0..5)" in out
    assert "  precision@2     0.5000\n" in out


def test_evaluate_json_and_csv(model_file, test_file):
    figures = json.loads(run("evaluate", model_file, test_file, "-k", 2, "--format", "json").stdout)
    assert figures["recall"] == pytest.approx(0.75)
    assert (figures["pairs_scored"], figures["pairs_unknown_user"]) == (3, 1)
    assert figures["model"] == str(model_file)
    lines = run("evaluate", model_file, test_file, "--format", "csv", "--threshold", 5).stdout
    header, row = lines.splitlines()
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert (values["threshold"], values["scale"], values["users_evaluated"]) == ("5.0", "0..5", "1")


# -- info on a model -------------------------------------------------------------------------


def test_info_describes_a_model(model_file):
    out = run("info", model_file).stdout
    assert "solver        sgd\n" in out
    assert "factors       2 (float32, no biases)\n" in out
    assert "ratings       3 (density 20.0000%)\n" in out
    assert "training      0 epochs (not trained by mfrec)" in out
    info = json.loads(run("info", model_file, "--format", "json").stdout)
    assert (info["users"], info["items"], info["model"]) == (3, 5, str(model_file))


def test_info_on_a_trained_model_shows_final_and_best(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["user,item,rating"] + [
        f"{u},{i},{rng.integers(1, 6)}" for u in range(20) for i in range(15) if rng.random() < 0.6
    ]
    ratings = tmp_path / "r.csv"
    ratings.write_text("\n".join(lines) + "\n")
    model = tmp_path / "m.npz"
    run("train", ratings, "-o", model, "--factors", 2, "--epochs", 6, "--validation", 0.2, "-q")
    out = run("info", model).stdout
    assert "validation RMSE" in out and "best (epoch" in out
    assert "hyperparameters factors=2 epochs=6 lr=default" in out


def test_info_on_a_foreign_npz(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.arange(3))
    assert fails("info", path) == (
        f"Error: {path}: not an mfrec model file (an .npz archive without the 'mfrec-model' "
        "format marker)\n"
    )


@pytest.mark.parametrize("command", ["predict", "recommend", "similar", "evaluate"])
def test_every_command_has_help(command):
    out = run(command, "--help").stdout
    assert out.startswith(f"Usage: cli {command} [OPTIONS] MODEL")
    assert len(out.splitlines()) > 8
