"""Public rating datasets (MovieLens), fetched once into a local cache and verified.

Cache layout, one folder per dataset, moved into place complete or not at all::

    <cache>/datasets/ml-100k/ml-100k.zip      the archive, MD5-checked against GroupLens
    <cache>/datasets/ml-100k/ml-100k/...      its unpacked contents (u.data, ...)
    <cache>/datasets/ml-100k/manifest.json    SHA-256 of the archive and of the ratings file

The cache is ``$MFREC_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/mfrec``, else
``~/.cache/mfrec``. The download location is ``$MFREC_DATASETS_URL`` if set, else GroupLens.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mfrec.errors import DatasetError, UnknownDatasetError
from mfrec.progress import ProgressBar
from mfrec.utils.atomicfile import atomic_open

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
#: Seconds to wait for the server before giving up.
TIMEOUT = 60.0
_MANIFEST = "manifest.json"
_BLOCK = 1 << 16


@dataclass(frozen=True)
class Dataset:
    """A known public dataset: where it comes from and where its ratings are once unpacked."""

    name: str
    description: str
    #: Path of the ratings file inside the archive (its top folder included).
    ratings: str
    #: The loader preset that reads the ratings file.
    preset: str
    license: str = (
        "GroupLens research license: non-commercial use, no redistribution, "
        "cite Harper & Konstan (2015)"
    )

    @property
    def archive(self) -> str:
        """File name of the archive on the server."""
        return f"{self.name}.zip"


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "ml-100k",
            "MovieLens 100K: 100,000 ratings 1-5 by 943 users on 1,682 movies (1998)",
            "ml-100k/u.data",
            "ml-100k",
        ),
        Dataset(
            "ml-1m",
            "MovieLens 1M: 1,000,209 ratings 1-5 by 6,040 users on 3,706 movies (2003)",
            "ml-1m/ratings.dat",
            "ml-1m",
        ),
        Dataset(
            "ml-latest-small",
            "MovieLens latest, small: ~100,000 half-star ratings by ~600 users on ~9,000 "
            "movies (updated from time to time)",
            "ml-latest-small/ratings.csv",
            "ml-latest",
        ),
    )
}


@dataclass(frozen=True)
class DatasetStatus:
    """What the cache holds for one dataset: `state` is "cached", "missing" or "corrupted"."""

    dataset: Dataset
    state: str
    path: Path
    problem: str | None = None


def cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: the argument, else $MFREC_CACHE_DIR, else the user's cache folder."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("MFREC_CACHE_DIR"):
        return Path(os.environ["MFREC_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mfrec"


def get(name: str) -> Dataset:
    """The known dataset called `name`, or UnknownDatasetError listing the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(DATASETS)
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {known}") from None


def fetch(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    base_url: str | None = None,
    *,
    force: bool = False,
) -> Path:
    """Download, verify and unpack a dataset into the cache; return its unpacked folder.

    An already fetched dataset whose checksums still match is not downloaded again. The
    archive's MD5 must match the checksum the server posts beside it (``<archive>.md5``);
    its SHA-256 is then kept so that later runs detect a corrupted cache. Nothing partial is
    ever left in the cache: a failed download, a checksum mismatch or an interrupt leaves it
    as it was.

    Parameters
    ----------
    name
        One of :data:`DATASETS` (``mfrec data list``).
    cache_dir
        Cache root; see :func:`cache_dir`.
    progress
        Show a progress bar on stderr (only when it is a terminal).
    base_url
        Where the archives are; default $MFREC_DATASETS_URL, else GroupLens.
    force
        Download again even when the cache holds a good copy (or a corrupted one).

    Raises
    ------
    UnknownDatasetError
        `name` is not a known dataset.
    DatasetError
        The download failed, the checksum does not match, or the cached copy is corrupted
        (and `force` is false).
    """
    dataset = get(name)
    root = _dataset_dir(dataset, cache_dir)
    if not force:
        status = _status(dataset, root, check_archive=True)
        if status.state == "cached":
            return root / dataset.name
        if status.state == "corrupted":
            raise DatasetError(status.problem or "")
    url = _base_url(base_url) + dataset.archive
    expected_md5 = parse_md5(_read_url(f"{url}.md5", dataset).decode("utf-8", "replace"), dataset)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dataset.name}.", suffix=".tmp", dir=root.parent))
    try:
        archive = staging / dataset.archive
        md5, sha256 = _download(url, archive, dataset, progress)
        if md5 != expected_md5:
            raise DatasetError(
                f"{dataset.name}: checksum mismatch for {url}: expected MD5 {expected_md5}, "
                f"got {md5}; the download was discarded"
            )
        _unpack(archive, staging, dataset)
        manifest = {
            "dataset": dataset.name,
            "url": url,
            "archive": dataset.archive,
            "md5": md5,
            "sha256": sha256,
            "ratings": dataset.ratings,
            "ratings_sha256": _sha256(staging / dataset.ratings),
        }
        with atomic_open(staging / _MANIFEST) as fh:
            json.dump(manifest, fh, indent=2)
            fh.write("\n")
        _swap_in(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / dataset.name


def resolve(name: str, cache_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str] | None:
    """(ratings file, loader preset) of a fetched dataset; None if `name` is no dataset name.

    The loader calls this when a source is not an existing path. The ratings file is checked
    against its recorded SHA-256, so a damaged cache is reported rather than half-read.

    Raises
    ------
    DatasetError
        `name` is a known dataset that is not fetched yet, or whose cached copy is corrupted.
    """
    dataset = DATASETS.get(name)
    if dataset is None:
        return None
    root = _dataset_dir(dataset, cache_dir)
    status = _status(dataset, root, check_archive=False)
    if status.state == "missing":
        raise DatasetError(
            f"dataset {name} is not in the cache ({root.parent}); "
            f"run `mfrec data fetch {name}` first"
        )
    if status.state == "corrupted":
        raise DatasetError(status.problem or "")
    return root / dataset.ratings, dataset.preset


def status(cache_dir: str | os.PathLike[str] | None = None) -> list[DatasetStatus]:
    """The cache state of every known dataset (checksums verified), in :data:`DATASETS` order."""
    return [_status(d, _dataset_dir(d, cache_dir), check_archive=True) for d in DATASETS.values()]


def parse_md5(text: str, dataset: Dataset) -> str:
    """The MD5 hex digest of `dataset`'s archive from a checksum file.

    Accepts the BSD form GroupLens posts (``MD5 (ml-100k.zip) = <hex>``), the GNU form
    (``<hex>  ml-100k.zip``, possibly ``*ml-100k.zip``) and a bare digest. When the file names
    several archives, the line naming this one counts.
    """
    found: list[tuple[str | None, str]] = []
    for line in text.splitlines():
        line = line.strip()
        bsd = re.fullmatch(r"MD5 ?\((.+)\) ?= ?([0-9a-fA-F]{32})", line)
        gnu = re.fullmatch(r"([0-9a-fA-F]{32})(?:\s+\*?(.+))?", line)
        if bsd:
            found.append((bsd.group(1).strip(), bsd.group(2).lower()))
        elif gnu:
            found.append((gnu.group(2).strip() if gnu.group(2) else None, gnu.group(1).lower()))
    ours = [md5 for file, md5 in found if file is None or Path(file).name == dataset.archive]
    if not ours:
        snippet = text.strip()[:80]
        raise DatasetError(
            f"{dataset.name}: no MD5 checksum for {dataset.archive} in the server's checksum "
            f"file (it says {snippet!r})"
        )
    return ours[0]


def _base_url(base_url: str | None) -> str:
    url = base_url or os.environ.get("MFREC_DATASETS_URL") or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def _dataset_dir(dataset: Dataset, root: str | os.PathLike[str] | None) -> Path:
    return cache_dir(root) / "datasets" / dataset.name


def _status(dataset: Dataset, root: Path, *, check_archive: bool) -> DatasetStatus:
    """Compare the cached files with the manifest; hashing the archive is the slower part."""
    manifest_path = root / _MANIFEST
    if not manifest_path.exists():
        return DatasetStatus(dataset, "missing", root)

    def corrupted(what: str) -> DatasetStatus:
        problem = f"{dataset.name}: {what}; re-fetch with `mfrec data fetch {dataset.name} --force`"
        return DatasetStatus(dataset, "corrupted", root, problem)

    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        expected = {"archive": manifest["sha256"], "ratings": manifest["ratings_sha256"]}
    except (OSError, ValueError, KeyError, TypeError):
        return corrupted(f"cache manifest {manifest_path} is unreadable")
    checks = [("ratings", root / dataset.ratings, "cached file")]
    if check_archive:
        checks.insert(0, ("archive", root / dataset.archive, "cached archive"))
    for key, path, what in checks:
        if not path.is_file():
            return corrupted(f"{what} {path} is missing")
        actual = _sha256(path)
        if actual != expected[key]:
            return corrupted(
                f"{what} {path} is corrupted (SHA-256 {actual}, expected {expected[key]})"
            )
    return DatasetStatus(dataset, "cached", root)


def _read_url(url: str, dataset: Dataset) -> bytes:
    with _open_url(url, dataset) as response:
        return _read_block(response, url, dataset, None)


def _open_url(url: str, dataset: Dataset) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "mfrec"})
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise DatasetError(
            f"{dataset.name}: download failed: HTTP {exc.code} {exc.reason} for {url}"
        ) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DatasetError(f"{dataset.name}: cannot download {url}: {reason}") from exc


def _read_block(
    response: http.client.HTTPResponse, url: str, dataset: Dataset, size: int | None
) -> bytes:
    # Only network errors become DatasetError; a full disk while writing stays an OSError.
    try:
        return response.read(size)
    except (OSError, http.client.HTTPException) as exc:
        raise DatasetError(f"{dataset.name}: download of {url} failed: {exc!r}") from exc


def _download(url: str, target: Path, dataset: Dataset, progress: bool) -> tuple[str, str]:
    """Stream `url` into `target`; return its (MD5, SHA-256) hex digests."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    received = 0
    with _open_url(url, dataset) as response, open(target, "wb") as out:
        size = response.headers.get("Content-Length")
        total = int(size) if size and size.isdigit() else None
        with ProgressBar(
            total, f"Downloading {dataset.archive}", enabled=progress, fmt=_megabytes
        ) as bar:
            while block := _read_block(response, url, dataset, _BLOCK):
                out.write(block)
                md5.update(block)
                sha256.update(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received != total:
        raise DatasetError(
            f"{dataset.name}: download of {url} was cut short ({received} of {total} bytes)"
        )
    return md5.hexdigest(), sha256.hexdigest()


def _unpack(archive: Path, into: Path, dataset: Dataset) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                # zipfile itself strips "..", but a hostile archive still deserves a clear error.
                parts = Path(member).parts
                if Path(member).is_absolute() or ".." in parts:
                    raise DatasetError(f"{dataset.name}: unsafe path {member!r} in the archive")
            zf.extractall(into)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{dataset.name}: the archive is not a valid zip file: {exc}") from exc
    if not (into / dataset.ratings).is_file():
        raise DatasetError(f"{dataset.name}: the archive holds no {dataset.ratings}")


def _swap_in(staging: Path, root: Path) -> None:
    """Replace `root` by `staging` with renames, so readers see the old or the new copy."""
    staging.chmod(0o755)  # mkdtemp made it private
    old = None
    if root.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", dir=root.parent))
        os.replace(root, old / root.name)
    os.replace(staging, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _megabytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB"
