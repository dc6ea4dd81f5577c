"""Read (user, item) pairs to predict, and small delimited files of IDs in general.

A pairs file is a ratings file without the need for a rating: ``user,item`` lines, or any
ratings file (a test split, MovieLens ``u1.test``) whose extra columns are ignored. Every row
is kept, in file order, repeated pairs included. It is read with the loader's options
(`mfrec.ratings.load`): preset, separator, header, columns and encoding; IDs stay exact strings.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import logging
import lzma
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mfrec.errors import DataFormatError
from mfrec.ratings.checks import id_strings
from mfrec.ratings.load import PRESETS
from mfrec.ratings.sniff import (
    KNOWN_NAMES,
    Column,
    detect_compression,
    looks_binary,
    normalize_name,
    normalize_sep,
)

log = logging.getLogger(__name__)

#: Separators tried, in order, when none is given (then any run of whitespace): the first
#: that splits every sampled line into the same number (>= 2) of fields wins.
SEPARATORS = ("::", "\t", "|", ",", ";")
SAMPLE_LINES = 50
_DECOMPRESS = {"gzip": gzip.decompress, "bz2": bz2.decompress, "xz": lzma.decompress}


@dataclass(frozen=True)
class Delimited:
    """A delimited text file as strings: `frame` holds the data rows (columns 0..n-1, object
    columns of ``str``), `names` the header fields (None without a header), `lines` the line
    number of each row. `spaced` is False when the text holds no whitespace besides its line
    breaks and separators, so that no field needs stripping."""

    frame: pd.DataFrame
    names: list[str] | None
    lines: NDArray[np.int64]
    sep: str
    source: str
    spaced: bool = True


def read_delimited(
    path: str | os.PathLike[str],
    *,
    sep: str | None = None,
    header: bool | None = None,
    encoding: str | None = None,
    is_header: Callable[[list[str]], bool],
) -> Delimited:
    """Read a delimited text file (compressed or not) into string columns.

    `sep` is detected when None (see `SEPARATORS`); ``" "`` means any run of whitespace.
    `header` is decided by `is_header(first line's fields)` when None. Commas and semicolons
    honour CSV quoting; other separators split literally. Raises DataFormatError naming the
    file and line of anything it cannot read.
    """
    path = Path(path)
    src = str(path)
    if not path.exists():
        raise DataFormatError("no such file", source=src)
    if path.is_dir():
        raise DataFormatError("is a directory, not a file", source=src)
    text = _decode(_read_bytes(path), encoding, src)
    plain = _plain_text(text)
    if plain is not None:
        return _read_plain(plain, sep, header, is_header, src)
    numbered = [(n, ln) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not numbered:
        raise DataFormatError("the file is empty", source=src)
    sample = [ln for _, ln in numbered[:SAMPLE_LINES]]
    sep = _sniff(sample, src) if sep is None else normalize_sep(sep)
    first = _split(sample[0], sep)
    if header is None:
        header = is_header([f.strip() for f in first])
    body = numbered[1:] if header else numbered
    if not body:
        raise DataFormatError("the file has a header line but no data", source=src)
    # Parse only the non-blank lines, so that row k of the frame is line numbered[k].
    frame = _parse("\n".join(ln for _, ln in numbered), sep, len(first), header)
    if frame is None or len(frame) != len(body) or frame.isna().to_numpy().any():
        raise _ragged(body, sep, len(first), src)
    names = [f.strip() for f in first] if header else None
    lines = np.array([n for n, _ in body], dtype=np.int64)
    return Delimited(frame, names, lines, sep, src)


#: Line breaks of ``str.splitlines`` in ASCII text besides ``\n`` and ``\r\n``.
_OTHER_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")
#: ASCII whitespace that ``str.strip`` removes and that is not a line break.
_SPACES = (" ", "\t", "\x1f")


def _plain_text(text: str) -> str | None:
    """`text` with ``\n`` line breaks when it is ASCII, breaks its lines at ``\n`` or
    ``\r\n`` only and has no blank line, nor one that may be all whitespace (one starting
    with whitespace); else None. Such a text is parsed as it is, without a list of its lines."""
    if not text.isascii():
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if not text or text[0] in "\n \t\x1f" or any(c in text for c in _OTHER_BREAKS):
        return None
    if any(f"\n{c}" in text for c in ("\n", *_SPACES)):
        return None
    return text


def _read_plain(
    text: str,
    sep: str | None,
    header: bool | None,
    is_header: Callable[[list[str]], bool],
    src: str,
) -> Delimited:
    """`read_delimited` on a text `_plain_text` returned: every line is a row (or the header)."""
    sample = _head_lines(text, SAMPLE_LINES)
    sep = _sniff(sample, src) if sep is None else normalize_sep(sep)
    first = _split(sample[0], sep)
    if header is None:
        header = is_header([f.strip() for f in first])
    n_lines = text.count("\n") + (not text.endswith("\n"))
    if n_lines == int(header):
        raise DataFormatError("the file has a header line but no data", source=src)
    frame = _parse(text, sep, len(first), header)
    if frame is None or len(frame) != n_lines - header or frame.isna().to_numpy().any():
        body = list(enumerate(text.splitlines(), start=1))[int(header) :]
        raise _ragged(body, sep, len(first), src)
    names = [f.strip() for f in first] if header else None
    lines = np.arange(1 + header, n_lines + 1, dtype=np.int64)
    spaced = sep == " " or any(c in text for c in _SPACES if c != sep)
    return Delimited(frame, names, lines, sep, src, spaced)


def _head_lines(text: str, n: int) -> list[str]:
    """The first `n` lines of a text whose lines end in ``\n``."""
    end = -1
    for _ in range(n):
        end = text.find("\n", end + 1)
        if end < 0:
            end = len(text)
            break
    return text[:end].splitlines()[:n]


def _parse(text: str, sep: str, n_fields: int, header: bool) -> pd.DataFrame | None:
    """The data rows of `text` as object columns of strings; None when pandas cannot parse it."""
    try:
        frame = pd.read_csv(io.StringIO(text), header=None, names=range(n_fields), **_csv_args(sep))
    except (ValueError, pd.errors.ParserError):
        return None
    return frame.iloc[1:].reset_index(drop=True) if header else frame


def _read_bytes(path: Path) -> bytes:
    compression, member = detect_compression(path)
    try:
        if compression == "zip":
            with zipfile.ZipFile(path) as zf:
                return zf.read(member)
        raw = path.read_bytes()
        return _DECOMPRESS[compression](raw) if compression else raw
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise DataFormatError(f"cannot read {compression} data ({exc})", source=str(path)) from None


def _decode(raw: bytes, encoding: str | None, src: str) -> str:
    if looks_binary(raw[:65536]):
        raise DataFormatError("this is not a text file (it contains binary data)", source=src)
    try:
        return raw.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError:
        if encoding is not None:
            raise DataFormatError(f"cannot decode the file as {encoding}", source=src) from None
    except LookupError:
        raise DataFormatError(f"unknown encoding {encoding!r}", source=src) from None
    log.warning("%s is not valid UTF-8; reading it as latin-1", src)
    return raw.decode("latin-1")


def _split(line: str, sep: str) -> list[str]:
    if sep == " ":
        return line.split()
    if sep in (",", ";"):
        return next(csv.reader([line], delimiter=sep), [])
    return line.split(sep)


def _sniff(lines: list[str], src: str) -> str:
    # Best: a separator giving every line the same number of fields. Failing that, one that
    # splits every line, so that one malformed line is reported as such.
    counts = {cand: [len(_split(ln, cand)) for ln in lines] for cand in SEPARATORS}
    counts[" "] = [len(ln.split()) for ln in lines]
    for cand, found in counts.items():
        if min(found) >= 2 and len(set(found)) == 1:
            return cand
    for cand, found in counts.items():
        if min(found) >= 2:
            return cand
    raise DataFormatError(
        "cannot tell the column separator from the first lines; give --sep", source=src
    )


def _csv_args(sep: str) -> dict:
    args: dict = {
        "dtype": object,
        "keep_default_na": False,
        "na_values": {},
        "skip_blank_lines": True,
    }
    if sep == " ":
        args["sep"] = r"\s+"
    elif len(sep) > 1:
        args.update(sep=re.escape(sep), engine="python", quoting=csv.QUOTE_NONE)
    else:
        quoting = csv.QUOTE_MINIMAL if sep in (",", ";") else csv.QUOTE_NONE
        args.update(sep=sep, quoting=quoting)
    return args


def _ragged(body: list[tuple[int, str]], sep: str, n_fields: int, src: str) -> DataFormatError:
    for lineno, line in body:
        found = len(_split(line, sep))
        if found != n_fields:
            return DataFormatError(
                f"expected {n_fields} columns, found {found}", source=src, line=lineno
            )
    return DataFormatError("cannot parse the file", source=src)


# -- pairs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pairs:
    """(user, item) pairs as raw string IDs, in the order they were read."""

    users: NDArray[np.object_]
    items: NDArray[np.object_]
    source: str

    def __len__(self) -> int:
        return len(self.users)


def read_pairs(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    preset: str = "auto",
    sep: str | None = None,
    header: bool | None = None,
    columns: Sequence[Column] | str | None = None,
    encoding: str | None = None,
) -> Pairs:
    """Read user,item pairs from a file or a DataFrame.

    Parameters are those of `mfrec.ratings.load.load_ratings`, except that `columns` names just the
    user and item columns (further entries, such as a rating, are accepted and ignored).
    Without `columns`, a header's user and item columns are found by name (``userId``,
    ``item``, ...) and otherwise the first two columns are used.
    """
    if preset not in PRESETS:
        raise DataFormatError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    wanted = _columns(p.columns if columns is None else columns)
    if isinstance(source, pd.DataFrame):
        names = [str(c) for c in source.columns]
        u, i = _positions(names, len(names), wanted, "DataFrame")
        return _pairs(source.iloc[:, u], source.iloc[:, i], None, "DataFrame")
    sep = p.sep if sep is None else sep
    header = p.header if header is None else header
    if wanted is not None and any(isinstance(c, str) for c in wanted):
        header = True
    table = read_delimited(source, sep=sep, header=header, encoding=encoding, is_header=_has_ids)
    u, i = _positions(table.names, table.frame.shape[1], wanted, table.source)
    return _pairs(table.frame[u], table.frame[i], table.lines, table.source, strip=table.spaced)


def _columns(columns: Sequence[Column] | str | None) -> tuple[Column, Column] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",")]
    parsed: list[Column] = [
        int(c) if isinstance(c, str) and c.isdigit() else c for c in list(columns)[:2]
    ]
    if len(parsed) < 2:
        raise DataFormatError("columns: expected at least user,item")
    for c in parsed:
        if isinstance(c, int) and c < 1:
            raise DataFormatError(f"columns: position {c} is invalid (positions count from 1)")
    return parsed[0], parsed[1]


def _has_ids(fields: list[str]) -> bool:
    """A header names a user and an item column."""
    names = {normalize_name(f) for f in fields}
    return bool(names & set(KNOWN_NAMES["user"])) and bool(names & set(KNOWN_NAMES["item"]))


def _positions(
    names: list[str] | None, n_fields: int, wanted: tuple[Column, Column] | None, src: str
) -> tuple[int, int]:
    """0-based positions of the user and item columns."""
    if wanted is None:
        if names is not None:
            normalized = [normalize_name(n) for n in names]
            found = [
                next((k for k, n in enumerate(normalized) if n in KNOWN_NAMES[role]), None)
                for role in ("user", "item")
            ]
            if None not in found:
                return found[0], found[1]
        wanted = (1, 2)
    positions = []
    for c in wanted:
        if isinstance(c, int):
            if c > n_fields:
                raise DataFormatError(
                    f"column {c} requested but lines have only {n_fields} columns", source=src
                )
            positions.append(c - 1)
        elif names is None or c not in names:
            have = f"the header has: {', '.join(names)}" if names else "the file has no header"
            raise DataFormatError(f"no column named {c!r}; {have}", source=src)
        else:
            positions.append(names.index(c))
    return positions[0], positions[1]


def _pairs(
    users: pd.Series,
    items: pd.Series,
    lines: NDArray[np.int64] | None,
    src: str,
    *,
    strip: bool = True,
) -> Pairs:
    """The IDs of two columns as strings; `strip` False: the columns hold strings without
    surrounding whitespace, kept as they are."""
    ids = []
    for role, col in (("user", users), ("item", items)):
        missing = col.isna().to_numpy()
        values = id_strings(col.fillna("")) if strip else col.to_numpy(dtype=object)
        empty = (values == "") | missing
        if empty.any():
            row = int(np.argmax(empty))
            if lines is None:
                raise DataFormatError(f"row {row}: missing {role} ID", source=src)
            raise DataFormatError(f"empty {role} ID", source=src, line=int(lines[row]))
        ids.append(values)
    return Pairs(ids[0], ids[1], src)
