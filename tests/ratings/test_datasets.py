"""Dataset fetching against a local HTTP server: checksums, a clean cache, resolve(), the CLI."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import socket
import threading
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from mfrec.cli import cli
from mfrec.errors import DatasetError, UnknownDatasetError
from mfrec.ratings import datasets

U_DATA = b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n022\t377\t1\t878887116\n"


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _bsd_md5(content: bytes, name: str) -> bytes:
    return f"MD5 ({name}) = {hashlib.md5(content).hexdigest()}\n".encode()


FAKE = {
    "ml-100k": _zip({"ml-100k/u.data": U_DATA, "ml-100k/README": b"fake ml-100k\n"}),
    "ml-1m": _zip({"ml-1m/ratings.dat": b"1::1193::5::978300760\n"}),
    "ml-latest-small": _zip(
        {"ml-latest-small/ratings.csv": b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"}
    ),
}


class _Server:
    """Files served from a dict on 127.0.0.1, with a count of requests per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: Counter[str] = Counter()
        #: Paths whose Content-Length claims more bytes than are sent.
        self.truncate: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                extra = 1000 if self.path in server.truncate else 0
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/movielens/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def publish(self, name: str, archive: bytes, md5_text: bytes | None = None) -> None:
        path = f"/movielens/{name}.zip"
        self.files[path] = archive
        self.files[path + ".md5"] = md5_text or _bsd_md5(archive, f"{name}.zip")

    def downloads(self) -> int:
        return sum(n for path, n in self.hits.items() if path.endswith(".zip"))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def ds_server():
    server = _Server()
    for name, archive in FAKE.items():
        server.publish(name, archive)
    yield server
    server.close()


@pytest.fixture
def ds_cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def ds_env(ds_server, ds_cache, monkeypatch):
    """The environment variables pointing mfrec at the local server and a fresh cache."""
    monkeypatch.setenv("MFREC_DATASETS_URL", ds_server.url)
    monkeypatch.setenv("MFREC_CACHE_DIR", str(ds_cache))
    return ds_server


def _fetch(server: _Server, cache: Path, name: str = "ml-100k", **kwargs) -> Path:
    return datasets.fetch(name, cache, progress=False, base_url=server.url, **kwargs)


def _cache_entries(cache: Path) -> list[str]:
    """Everything under the datasets folder, hidden temporary names included."""
    root = cache / "datasets"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# --- fetch -------------------------------------------------------------------------------------


def test_fetch_downloads_verifies_and_unpacks(ds_server, ds_cache):
    path = _fetch(ds_server, ds_cache)
    assert path == ds_cache / "datasets" / "ml-100k" / "ml-100k"
    assert (path / "u.data").read_bytes() == U_DATA
    assert _cache_entries(ds_cache) == [
        "ml-100k",
        "ml-100k/manifest.json",
        "ml-100k/ml-100k",
        "ml-100k/ml-100k.zip",
        "ml-100k/ml-100k/README",
        "ml-100k/ml-100k/u.data",
    ]
    manifest = json.loads((ds_cache / "datasets/ml-100k/manifest.json").read_text())
    archive = FAKE["ml-100k"]
    assert manifest["md5"] == hashlib.md5(archive).hexdigest()
    assert manifest["sha256"] == hashlib.sha256(archive).hexdigest()
    assert manifest["ratings_sha256"] == hashlib.sha256(U_DATA).hexdigest()
    assert ds_server.hits == {"/movielens/ml-100k.zip.md5": 1, "/movielens/ml-100k.zip": 1}


def test_second_fetch_does_not_download(ds_server, ds_cache):
    first = _fetch(ds_server, ds_cache)
    second = _fetch(ds_server, ds_cache)
    assert first == second
    assert sum(ds_server.hits.values()) == 2  # the checksum and the archive, once


def test_force_downloads_again(ds_server, ds_cache):
    _fetch(ds_server, ds_cache)
    _fetch(ds_server, ds_cache, force=True)
    assert ds_server.downloads() == 2
    assert "ml-100k/manifest.json" in _cache_entries(ds_cache)
    assert not [e for e in _cache_entries(ds_cache) if e.startswith(".")]


@pytest.mark.parametrize(
    "form",
    [
        "MD5 (ml-100k.zip) = {md5}\n",
        "{md5}  ml-100k.zip\n",
        "{md5} *ml-100k.zip\r\n",
        "{md5}\n",
        "{upper}  ./ml-100k.zip\n",
        "MD5 (ml-1m.zip) = 00000000000000000000000000000000\nMD5 (ml-100k.zip) = {md5}\n",
    ],
    ids=["bsd", "gnu", "gnu-binary-crlf", "bare", "uppercase-path", "several"],
)
def test_checksum_file_forms(ds_server, ds_cache, form):
    archive = FAKE["ml-100k"]
    md5 = hashlib.md5(archive).hexdigest()
    ds_server.publish("ml-100k", archive, form.format(md5=md5, upper=md5.upper()).encode())
    assert (_fetch(ds_server, ds_cache) / "u.data").is_file()


def test_checksum_file_without_our_archive_is_an_error():
    text = "MD5 (ml-1m.zip) = c4d9eecfca2ab87c1945afe126590906\n"
    with pytest.raises(DatasetError) as err:
        datasets.parse_md5(text, datasets.get("ml-100k"))
    assert str(err.value) == (
        "ml-100k: no MD5 checksum for ml-100k.zip in the server's checksum file "
        "(it says 'MD5 (ml-1m.zip) = c4d9eecfca2ab87c1945afe126590906')"
    )


def test_checksum_mismatch_is_named_and_leaves_the_cache_clean(ds_server, ds_cache):
    wrong = "0" * 32
    ds_server.publish("ml-100k", FAKE["ml-100k"], f"MD5 (ml-100k.zip) = {wrong}\n".encode())
    with pytest.raises(DatasetError) as err:
        _fetch(ds_server, ds_cache)
    actual = hashlib.md5(FAKE["ml-100k"]).hexdigest()
    assert str(err.value) == (
        f"ml-100k: checksum mismatch for {ds_server.url}ml-100k.zip: expected MD5 {wrong}, "
        f"got {actual}; the download was discarded"
    )
    assert _cache_entries(ds_cache) == []


def test_failed_forced_refetch_keeps_the_good_copy(ds_server, ds_cache):
    path = _fetch(ds_server, ds_cache)
    before = _cache_entries(ds_cache)
    ds_server.publish("ml-100k", b"not the archive", _bsd_md5(FAKE["ml-100k"], "ml-100k.zip"))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        _fetch(ds_server, ds_cache, force=True)
    assert _cache_entries(ds_cache) == before
    assert (path / "u.data").read_bytes() == U_DATA


def test_corrupted_cached_archive_is_detected(ds_server, ds_cache):
    _fetch(ds_server, ds_cache)
    archive = ds_cache / "datasets/ml-100k/ml-100k.zip"
    archive.write_bytes(archive.read_bytes()[:-10])
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    expected = hashlib.sha256(FAKE["ml-100k"]).hexdigest()
    with pytest.raises(DatasetError) as err:
        _fetch(ds_server, ds_cache)
    assert str(err.value) == (
        f"ml-100k: cached archive {archive} is corrupted (SHA-256 {actual}, expected "
        f"{expected}); re-fetch with `mfrec data fetch ml-100k --force`"
    )
    assert ds_server.downloads() == 1
    _fetch(ds_server, ds_cache, force=True)
    assert archive.read_bytes() == FAKE["ml-100k"]
    assert datasets.resolve("ml-100k", ds_cache) is not None


def test_corrupted_ratings_file_is_detected_by_resolve(ds_server, ds_cache):
    path = _fetch(ds_server, ds_cache) / "u.data"
    path.write_bytes(U_DATA[:20])
    with pytest.raises(DatasetError, match=r"^ml-100k: cached file .*u\.data is corrupted \("):
        datasets.resolve("ml-100k", ds_cache)


def test_missing_manifest_entry_or_file_is_corruption(ds_server, ds_cache):
    _fetch(ds_server, ds_cache)
    (ds_cache / "datasets/ml-100k/ml-100k.zip").unlink()
    with pytest.raises(DatasetError, match=r"cached archive .*ml-100k\.zip is missing; re-fetch"):
        _fetch(ds_server, ds_cache)
    (ds_cache / "datasets/ml-100k/manifest.json").write_text("{}")
    with pytest.raises(DatasetError, match=r"cache manifest .*manifest\.json is unreadable"):
        datasets.resolve("ml-100k", ds_cache)


def test_unknown_dataset_is_named():
    with pytest.raises(UnknownDatasetError) as err:
        datasets.fetch("ml-5k", progress=False)
    assert str(err.value) == (
        "unknown dataset 'ml-5k'; known datasets: ml-100k, ml-1m, ml-latest-small"
    )
    assert err.value.exit_code == 2


def test_http_error_is_named_and_leaves_no_trace(ds_server, ds_cache):
    del ds_server.files["/movielens/ml-1m.zip"]
    with pytest.raises(DatasetError) as err:
        _fetch(ds_server, ds_cache, "ml-1m")
    assert str(err.value) == (
        f"ml-1m: download failed: HTTP 404 Not Found for {ds_server.url}ml-1m.zip"
    )
    assert _cache_entries(ds_cache) == []


def test_unreachable_server_is_named(ds_cache):
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    with pytest.raises(
        DatasetError, match=re.escape(f"ml-100k: cannot download {url}ml-100k.zip.md5: ")
    ):
        datasets.fetch("ml-100k", ds_cache, progress=False, base_url=url)
    assert _cache_entries(ds_cache) == []


def test_truncated_download_is_an_error(ds_server, ds_cache):
    ds_server.truncate.add("/movielens/ml-100k.zip")
    with pytest.raises(DatasetError) as err:
        _fetch(ds_server, ds_cache)
    size = len(FAKE["ml-100k"])
    assert str(err.value) == (
        f"ml-100k: download of {ds_server.url}ml-100k.zip was cut short "
        f"({size} of {size + 1000} bytes)"
    )
    assert _cache_entries(ds_cache) == []


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (b"PK this is no zip", "ml-100k: the archive is not a valid zip file: "),
        (
            _zip({"ml-100k/u.item": b"1|Toy Story\n"}),
            "ml-100k: the archive holds no ml-100k/u.data",
        ),
        (_zip({"../evil": b"x"}), "ml-100k: unsafe path '../evil' in the archive"),
    ],
    ids=["not-zip", "no-ratings", "zip-slip"],
)
def test_bad_archives_are_refused(ds_server, ds_cache, archive, message):
    ds_server.publish("ml-100k", archive)
    with pytest.raises(DatasetError, match="^" + re.escape(message)):
        _fetch(ds_server, ds_cache)
    assert _cache_entries(ds_cache) == []


def test_environment_picks_cache_and_server(ds_env, ds_cache):
    path = datasets.fetch("ml-1m", progress=False)
    assert path == ds_cache / "datasets" / "ml-1m" / "ml-1m"
    assert ds_env.downloads() == 1


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("MFREC_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert datasets.cache_dir() == tmp_path / ".cache" / "mfrec"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir() == tmp_path / "xdg" / "mfrec"
    monkeypatch.setenv("MFREC_CACHE_DIR", str(tmp_path / "env"))
    assert datasets.cache_dir() == tmp_path / "env"
    assert datasets.cache_dir(tmp_path / "arg") == tmp_path / "arg"


# --- resolve -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ratings", "preset"),
    [
        ("ml-100k", "ml-100k/u.data", "ml-100k"),
        ("ml-1m", "ml-1m/ratings.dat", "ml-1m"),
        ("ml-latest-small", "ml-latest-small/ratings.csv", "ml-latest"),
    ],
)
def test_resolve_gives_ratings_file_and_preset(ds_server, ds_cache, name, ratings, preset):
    with pytest.raises(DatasetError) as err:
        datasets.resolve(name, ds_cache)
    assert str(err.value) == (
        f"dataset {name} is not in the cache ({ds_cache / 'datasets'}); "
        f"run `mfrec data fetch {name}` first"
    )
    _fetch(ds_server, ds_cache, name)
    path, got_preset = datasets.resolve(name, ds_cache)
    assert path == ds_cache / "datasets" / name / ratings
    assert path.is_file() and got_preset == preset


def test_resolve_ignores_names_that_are_no_dataset(ds_cache):
    assert datasets.resolve("ratings.csv", ds_cache) is None
    assert datasets.resolve("ML-100K", ds_cache) is None


def test_loader_reads_a_fetched_dataset_by_name(ds_env):
    from mfrec.ratings.load import load_ratings

    datasets.fetch("ml-100k", progress=False)
    data = load_ratings("ml-100k")
    assert len(data) == 3
    assert list(data.user_map.ids) == ["196", "186", "022"]


def test_status_reports_each_state(ds_server, ds_cache):
    _fetch(ds_server, ds_cache, "ml-1m")
    _fetch(ds_server, ds_cache, "ml-latest-small")
    (ds_cache / "datasets/ml-latest-small/ml-latest-small.zip").write_bytes(b"")
    states = {s.dataset.name: s.state for s in datasets.status(ds_cache)}
    assert states == {"ml-100k": "missing", "ml-1m": "cached", "ml-latest-small": "corrupted"}


# --- command line ------------------------------------------------------------------------------


def test_cli_fetch_prints_the_path(ds_env, ds_cache):
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["data", "fetch", "ml-100k"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"{ds_cache / 'datasets' / 'ml-100k' / 'ml-100k'}\n"
        assert result.stderr == f"ml-100k: {datasets.get('ml-100k').license}\n"
    assert ds_env.downloads() == 1


def test_cli_fetch_cache_dir_quiet_and_force(ds_env, tmp_path):
    other = tmp_path / "other"
    args = ["data", "fetch", "ml-1m", "--cache-dir", str(other), "--quiet"]
    for extra in ([], ["--force"]):
        result = CliRunner().invoke(cli, [*args, *extra], catch_exceptions=False)
        assert (result.exit_code, result.stderr) == (0, "")
        assert result.stdout == f"{other / 'datasets' / 'ml-1m' / 'ml-1m'}\n"
    assert ds_env.downloads() == 2


def test_cli_unknown_dataset_exits_2(ds_env):
    result = CliRunner().invoke(cli, ["data", "fetch", "movielens"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: unknown dataset 'movielens'; known datasets: ml-100k, ml-1m, ml-latest-small\n"
    )
    assert result.stdout == ""


def test_cli_checksum_mismatch_exits_1(ds_env, ds_cache):
    wrong = "f" * 32
    ds_env.publish("ml-100k", FAKE["ml-100k"], f"{wrong}  ml-100k.zip\n".encode())
    result = CliRunner().invoke(cli, ["data", "fetch", "ml-100k", "-q"])
    assert result.exit_code == 1
    actual = hashlib.md5(FAKE["ml-100k"]).hexdigest()
    assert result.stderr == (
        f"Error: ml-100k: checksum mismatch for {ds_env.url}ml-100k.zip: expected MD5 {wrong}, "
        f"got {actual}; the download was discarded\n"
    )
    assert _cache_entries(ds_cache) == []


def test_cli_network_failure_exits_1(ds_env):
    del ds_env.files["/movielens/ml-100k.zip.md5"]
    result = CliRunner().invoke(cli, ["data", "fetch", "ml-100k"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: ml-100k: download failed: HTTP 404 Not Found for {ds_env.url}ml-100k.zip.md5\n"
    )


def test_cli_list_shows_what_is_cached(ds_env, ds_cache):
    CliRunner().invoke(cli, ["data", "fetch", "ml-100k", "-q"], catch_exceptions=False)
    result = CliRunner().invoke(cli, ["data", "list"], catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "DESCRIPTION"]
    assert [line[:30].rstrip().split(maxsplit=1) for line in lines[1:]] == [
        ["ml-100k", "cached"],
        ["ml-1m", "not fetched"],
        ["ml-latest-small", "not fetched"],
    ]
    assert lines[1].endswith(datasets.get("ml-100k").description)
    assert result.stderr == f"cache: {ds_cache / 'datasets'}\n"


@pytest.mark.parametrize("command", ["fetch", "list"])
def test_help(command):
    result = CliRunner().invoke(cli, ["data", command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert re.match(rf"Usage: \S+ data {command} ", result.output)
    assert "--cache-dir" in result.output
