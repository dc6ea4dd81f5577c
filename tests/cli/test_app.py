"""The command group itself: help, version, lazy imports, and errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from mfrec.cli import cli
from mfrec.cli.options import DUPLICATE_CHOICES, PRESET_NAMES
from mfrec.ratings.load import DUPLICATE_POLICIES, PRESETS


def all_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


def test_every_command_has_help_text():
    commands = list(all_commands())
    assert commands, "no commands registered"
    for path, command in commands:
        result = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
        assert result.exit_code == 0, path
        assert command.help and len(command.help.strip()) > 20, f"{path} lacks help text"


def test_cli_options_match_the_loader():
    assert set(PRESET_NAMES) == set(PRESETS)
    assert set(DUPLICATE_CHOICES) == set(DUPLICATE_POLICIES)


def test_help_does_not_import_the_numeric_stack():
    code = (
        "import sys; from mfrec.cli import cli; "
        "print(sorted(m for m in ('pandas', 'numba', 'scipy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Runs each step of argv[1] (JSON: ["import", code] or ["cli", args]) in one process and prints,
# as its last line, the steps after which numba was imported.
NUMBA_PROBE = """\
import json, sys
from mfrec.cli import cli
numba_after = []
for kind, step in json.loads(sys.argv[1]):
    if kind == "import":
        exec(step)
    else:
        cli.main(step, prog_name="mfrec", standalone_mode=False)
    if "numba" in sys.modules:
        numba_after.append(step)
print(json.dumps(numba_after))
"""


def test_commands_that_train_nothing_do_not_import_numba(tmp_path):
    # numba's import and its start-up cost a few tenths of a second: only training, predicting
    # and recommending pay it.
    from mfrec.model.estimator import MatrixFactorization
    from mfrec.ratings.load import load_ratings

    ratings = tmp_path / "r.csv"
    ratings.write_text(
        "user,item,rating\n"
        + "".join(f"{u},{i},{1 + (u * i) % 5}\n" for u in range(9) for i in range(7))
    )
    model = tmp_path / "m.npz"
    MatrixFactorization(factors=2, epochs=2, validation=0.2, progress=False).fit(
        load_ratings(ratings)
    ).save(model)
    synth = ["--users", "20", "--items", "10", "--ratings", "100", "--seed", "1"]
    steps = [
        ["import", "import mfrec"],
        ["import", "from mfrec.model.estimator import MatrixFactorization"],
        ["import", "import mfrec.training.fitting, mfrec.training.state"],
        ["import", "from mfrec.training.solvers import SOLVERS; assert 'sgd' in SOLVERS"],
        ["import", f"from mfrec.ratings.load import load_ratings; load_ratings({str(ratings)!r})"],
        ["import", f"MatrixFactorization.load({str(model)!r}).history_"],
        ["cli", ["--help"]],
        ["cli", ["train", "--help"]],
        ["cli", ["info", str(ratings)]],
        ["cli", ["info", str(model)]],
        ["cli", ["split", str(ratings), "-o", str(tmp_path / "parts"), "--seed", "1"]],
        ["cli", ["data", "synth", *synth, "-o", str(tmp_path / "synth.csv")]],
    ]
    out = subprocess.run(
        [sys.executable, "-c", NUMBA_PROBE, json.dumps(steps)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "mfrec", "--help"], capture_output=True, text=True, check=True
    )
    assert "matrix-factorization recommender" in out.stdout


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "version" in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["info", "no-such-file.csv"], 2, "Error: no-such-file.csv: no such file\n"),
        (
            ["info", "x.csv", "--scale", "5"],
            2,
            "Error: --scale '5': expected MIN,MAX such as 1,5\n",
        ),
    ],
)
def test_library_errors_become_one_line(args, code, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code
    assert result.output == message
    assert "Traceback" not in result.output


def test_debug_shows_the_exception(tmp_path):
    result = CliRunner().invoke(cli, ["--debug", "info", str(tmp_path / "none.csv")])
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "DataFormatError"


def test_bad_data_in_a_real_process_prints_no_traceback(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,2,5\n3,4,x\n")
    out = subprocess.run(
        [sys.executable, "-m", "mfrec", "info", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr == f"Error: {path}, line 2: rating 'x' is not a number\n"


def test_info_on_a_file_named_npz_that_is_not_a_model(tmp_path):
    path = tmp_path / "model.npz"
    path.write_text("user,item,rating\n1,2,3\n")
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 2
    assert (
        result.output
        == f"Error: {path}: not an mfrec model file (truncated, or not an .npz archive)\n"
    )
