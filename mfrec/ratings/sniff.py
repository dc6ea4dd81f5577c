"""Format sniffing: what a delimited text file holds, told from its first bytes.

Compression from the magic bytes, binary data, the encoding, the column separator, whether the
first line is a header, and which columns hold the user, item, rating (and timestamp). The
local loader (`mfrec.ratings.load`), the pairs and titles readers and the Dask ingest all ask
here, so that one file's layout is read the same way by each of them.
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mfrec.errors import DataFormatError
from mfrec.ratings.ratingdata import Layout

#: A column as given by the user: a header name or a 1-based position.
Column = str | int
ROLES = ("user", "item", "rating", "timestamp")
# Header names recognised for each role when columns are not given (compared lower-case,
# without "_", "-" and spaces: `normalize_name`).
KNOWN_NAMES = {
    "user": ("user", "userid", "uid", "u", "customer", "customerid", "reviewer", "reviewerid"),
    "item": (
        "item",
        "itemid",
        "iid",
        "i",
        "movie",
        "movieid",
        "product",
        "productid",
        "asin",
        "book",
        "bookid",
        "isbn",
        "track",
        "trackid",
        "artist",
        "artistid",
    ),
    "rating": ("rating", "ratings", "score", "stars", "value", "r", "bookrating", "overall"),
    "timestamp": ("timestamp", "time", "ts", "t", "date", "datetime", "unixtime", "unixreviewtime"),
}
#: Bytes read from the start of a file (after decompression) to tell its layout.
SNIFF_BYTES = 1 << 16
#: Separators tried in order by `sniff_sep`; failing all, any run of whitespace.
SEPARATORS = ("::", "\t", ",", ";", "|")
#: Lines of the head looked at for the separator, the field count and the columns.
SAMPLE_LINES = 50

_QUOTED_OR_BARE = re.compile(r'"((?:[^"]|"")*)"|(\S+)')


# -- bytes ----------------------------------------------------------------------------------


def detect_compression(path: Path) -> tuple[str | None, str | None]:
    """(``gzip``, ``bz2``, ``xz``, ``zip`` or None, the zip's one member or None).

    Told from the magic bytes, not the name; a zip archive must hold exactly one file.
    """
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return "gzip", None
    if magic.startswith(b"BZh"):
        return "bz2", None
    if magic.startswith(b"\xfd7zXZ\x00"):
        return "xz", None
    if magic.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                members = [m.filename for m in zf.infolist() if not m.is_dir()]
        except zipfile.BadZipFile as exc:
            raise DataFormatError(f"broken zip archive ({exc})", source=str(path)) from None
        if len(members) != 1:
            raise DataFormatError(
                f"zip archive holds {len(members)} files ({', '.join(members[:5])}); "
                "unpack it and give the ratings file",
                source=str(path),
            )
        return "zip", members[0]
    return None, None


def looks_binary(head: bytes) -> bool:
    """A NUL byte, or more than 1% control characters in the first 4 kB: not text."""
    if b"\x00" in head:
        return True
    control = sum(1 for b in head[:4096] if b < 32 and b not in (9, 10, 13))
    return control > 0.01 * min(len(head), 4096)


def guess_encoding(head: bytes) -> str:
    """``utf-8-sig`` when `head` is UTF-8 (a character cut at its end allowed), else latin-1."""
    # Cut at most 3 bytes of a multi-byte character that the sample may end inside.
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
            return "utf-8-sig"
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:
                break
    return "latin-1"


def decode_head(head: bytes, encoding: str | None, src: str) -> tuple[str, str]:
    """(the head of a ratings file as text, the encoding to read the file with).

    Raises DataFormatError when the file is empty or holds binary data.
    """
    if not head.strip():
        raise DataFormatError("the file is empty", source=src)
    if looks_binary(head):
        raise DataFormatError(
            "this is not a text ratings file (it contains binary data)", source=src
        )
    encoding = encoding or guess_encoding(head)
    return head.decode(encoding, errors="replace"), encoding


# -- separators -----------------------------------------------------------------------------


def normalize_sep(sep: str) -> str:
    """A separator as given (``tab``, ``\\t``, ``comma``, ``space`` ...): ``" "`` for any
    whitespace but a tab."""
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "space": " ", "whitespace": " "}
    sep = named.get(sep.lower(), sep)
    if sep == "":
        raise DataFormatError("sep='': the separator cannot be empty")
    return " " if sep.isspace() and sep != "\t" else sep


def sniff_sep(lines: list[str], src: str) -> str:
    """The first of `SEPARATORS` found on every sampled line; else whitespace, if it splits."""
    # A separator must appear on every sampled line: one malformed line should be reported as
    # such, not make the separator undetectable. Too few columns is reported by the caller.
    sample = lines[:SAMPLE_LINES]
    for cand in SEPARATORS:
        if min(ln.count(cand) for ln in sample) >= 1:
            return cand
    if _mode([len(ln.split()) for ln in sample]) >= 2:
        return " "
    raise DataFormatError(
        "cannot tell the column separator from the first lines; give --sep", source=src
    )


def split_fields(line: str, sep: str) -> list[str]:
    """One line's fields as the loader splits them (``" "``: whitespace, with quoted fields)."""
    if sep == " ":
        if '"' not in line:
            return line.split()
        return [q.replace('""', '"') if q else bare for q, bare in _QUOTED_OR_BARE.findall(line)]
    if len(sep) == 1:
        return next(csv.reader([line], delimiter=sep, skipinitialspace=True), [])
    return line.split(sep)


def _mode(values: list[int]) -> int:
    return max(set(values), key=values.count)


# -- columns --------------------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """A header name as compared with `KNOWN_NAMES`: lower-case, without "_", "-" and spaces."""
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def is_number(text: str) -> bool:
    """`text` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_columns(columns: Sequence[Column] | str) -> tuple[Column, ...]:
    """The ``columns`` option: names or 1-based positions of user, item, rating[, timestamp]."""
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",")]
    parsed: list[Column] = []
    for c in columns:
        if isinstance(c, str) and c.isdigit():
            c = int(c)
        if isinstance(c, int) and c < 1:
            raise DataFormatError(f"columns: position {c} is invalid (positions count from 1)")
        if isinstance(c, str) and not c:
            raise DataFormatError("columns: empty column name")
        parsed.append(c)
    if len(parsed) not in (3, 4):
        raise DataFormatError(
            f"columns: expected user,item,rating[,timestamp], got {len(parsed)} entries"
        )
    if len(set(parsed)) != len(parsed):
        raise DataFormatError(f"columns: {','.join(map(str, parsed))} names a column twice")
    return tuple(parsed)


def pick_columns(
    names: list[str] | None,
    n_fields: int,
    cols: tuple[Column, ...] | None,
    src: str,
    rows: list[list[str]] | None,
) -> list[int]:
    """Turn the requested columns into 0-based positions: [user, item, rating(, timestamp)].

    Without `cols`: the header's names (`KNOWN_NAMES`), else the first three columns and a
    fourth when the sampled `rows` show numbers in it.
    """
    if cols is not None:
        return _requested_positions(names, n_fields, cols, src)
    if names is not None:
        normalized = [normalize_name(n) for n in names]
        found = {}
        for role in ROLES:
            for cand in KNOWN_NAMES[role]:
                if cand in normalized and normalized.index(cand) not in found.values():
                    found[role] = normalized.index(cand)
                    break
        if all(r in found for r in ROLES[:3]):
            return [found[r] for r in ROLES if r in found]
    if n_fields < 3:
        raise DataFormatError(
            f"found {n_fields} column(s); need at least user, item and rating", source=src
        )
    positions = [0, 1, 2]
    if n_fields >= 4 and rows and all(is_number(r[3]) for r in rows if len(r) > 3):
        positions.append(3)
    return positions


def _requested_positions(
    names: list[str] | None, n_fields: int, cols: tuple[Column, ...], src: str
) -> list[int]:
    positions = []
    for c in cols:
        if isinstance(c, int):
            if c > n_fields:
                raise DataFormatError(
                    f"column {c} requested but lines have only {n_fields} columns", source=src
                )
            positions.append(c - 1)
        else:
            if names is None:
                raise DataFormatError(
                    f"column {c!r} requested by name but the file has no header line; "
                    "give positions (--columns 1,2,3) or --header",
                    source=src,
                )
            if c not in names:
                raise DataFormatError(
                    f"no column named {c!r}; the header has: {', '.join(names)}", source=src
                )
            positions.append(names.index(c))
    return positions


def looks_like_header(first: list[str], cols: tuple[Column, ...] | None) -> bool:
    """The first line is a header: columns are requested by name, or its rating is no number."""
    if cols is not None and any(isinstance(c, str) for c in cols):
        return True
    r_pos = cols[2] - 1 if cols is not None else 2
    return r_pos < len(first) and not is_number(first[r_pos].strip())


# -- the whole layout -----------------------------------------------------------------------


@dataclass
class TextFormat:
    """The layout of a delimited ratings file, as told from its head.

    `positions` are the 0-based user, item, rating (and timestamp) columns; `dtypes` what
    pandas' parser reads each of the `n_fields` columns as (``float64`` for the rating, and
    for a numeric timestamp). `split_on_one_char`: the separator is one character repeated
    (``::``) and every sampled line splits cleanly on that character.
    """

    sep: str
    header: bool
    n_fields: int
    positions: list[int]
    dtypes: dict[int, type | str]
    split_on_one_char: bool
    layout: Layout


def sniff_layout(
    text: str,
    *,
    truncated: bool,
    sep: str | None,
    header: bool | None,
    cols: tuple[Column, ...] | None,
    src: str,
) -> TextFormat:
    """The layout of the file whose head is `text`; `sep`, `header`, `cols` as far as given.

    `truncated`: the head is a sample that may end inside a line (its last line is ignored).
    """
    lines = text.splitlines()
    if truncated and len(lines) > 1:
        lines.pop()  # the sample may end inside this line
    lines = [ln for ln in lines if ln.strip()]
    sep = sep or sniff_sep(lines, src)
    first = split_fields(lines[0], sep)
    if header is None:
        header = looks_like_header(first, cols)
    names = [f.strip().strip('"') for f in first] if header else None
    sample = [split_fields(ln, sep) for ln in lines[1 if header else 0 :][:SAMPLE_LINES]]
    n_fields = len(first) if header or not sample else _mode([len(f) for f in sample])
    # "::" is one character repeated: splitting on ":" and dropping the empty fields
    # between keeps the fast C parser. An ID holding ":" changes the field count, which
    # the parser reports; the read is then redone with the (slower) python engine.
    single = sep[0]
    split_on_one_char = (
        len(sep) > 1
        and set(sep) == {single}
        and all(ln.count(single) == len(sep) * (n_fields - 1) for ln in lines)
    )
    positions = pick_columns(names, n_fields, cols, src, sample)
    # Numeric columns are parsed by the C parser itself: far faster than converting strings.
    dtypes: dict[int, type | str] = {j: str for j in range(n_fields)}
    dtypes[positions[2]] = "float64"
    if len(positions) > 3 and all(is_number(r[positions[3]]) for r in sample if len(r) == n_fields):
        dtypes[positions[3]] = "float64"
    chosen = [names[p] for p in positions] if names else list(ROLES)
    layout = Layout(sep=sep, header=bool(header), names=tuple(chosen[: len(positions)]))
    return TextFormat(sep, bool(header), n_fields, positions, dtypes, split_on_one_char, layout)
