"""Every Python example in README.md runs as written (as sqlite-utils tests its docs).

The examples name files (``ratings.csv``, ``u.data``, ``splits/test.csv``, ...): each block
runs, in README order, in one folder holding small files with those names, cut from the
sample data so the whole README runs in seconds. A block that writes a file (``model.npz``)
leaves it for the blocks after it, as a reader following the README would.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mfrec

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SAMPLE_USERS = 60


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The ```python blocks of a Markdown text, with the line each starts on."""
    return [
        (text[: m.start()].count("\n") + 2, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S)
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder with every file the README's examples read, cut from data/ratings.csv."""
    folder = tmp_path_factory.mktemp("readme")
    sample = pd.read_csv(REPO / "data" / "ratings.csv", dtype={"user": str, "item": str})
    users = sorted(sample["user"].unique())[:SAMPLE_USERS]
    small = sample[sample["user"].isin(users)]
    small.to_csv(folder / "ratings.csv", index=False)
    (folder / "data").mkdir()
    small.to_csv(folder / "data" / "ratings.csv", index=False)
    for name in ("u.data", "u1.base"):
        small.to_csv(folder / name, sep="\t", header=False, index=False)
    (folder / "splits").mkdir()
    test = small.groupby("user").sample(frac=0.2, random_state=0)
    test.to_csv(folder / "splits" / "test.csv", index=False)
    return folder


def test_the_readme_has_python_examples():
    assert len(python_blocks(README.read_text(encoding="utf-8"))) >= 5


def test_every_python_example_in_the_readme_runs(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    # The one name an example uses without defining it: "a DataFrame of your own".
    frame = pd.DataFrame({"uid": ["a", "b", "b"], "iid": ["x", "x", "y"], "stars": [1, 2, 5]})
    for line, code in python_blocks(README.read_text(encoding="utf-8")):
        try:
            exec(compile(code, f"README.md:{line}", "exec"), {"frame": frame})
        except Exception as exc:
            pytest.fail(f"README.md, the example on line {line}: {exc!r}")


def test_every_public_name_resolves_to_what_its_module_defines():
    import importlib

    for name, module in mfrec._EXPORTS.items():
        assert getattr(mfrec, name) is getattr(importlib.import_module(module), name)
    assert sorted(mfrec.__all__) == sorted([*mfrec._EXPORTS, "__version__"])
    assert dir(mfrec) == sorted(mfrec.__all__)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'mfrec' has no attribute 'nothing'"):
        mfrec.nothing  # noqa: B018


def test_the_readme_api_table_lists_every_public_name():
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Python API") : text.index("## Layout of the project")]
    listed = set(re.findall(r"`(\w+)`", table))
    missing = set(mfrec._EXPORTS) - listed
    assert not missing, f"add to README's Python API table: {sorted(missing)}"


def test_readme_examples_work_on_the_sample_they_are_given(workdir):
    # The examples recommend to users 00001 and 00002 and predict item 00640: the cut keeps them.
    small = pd.read_csv(workdir / "ratings.csv", dtype=str)
    assert {"00001", "00002"} <= set(small["user"])
    assert np.any(small["item"] == "00640")
