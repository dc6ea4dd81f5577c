"""Split a plain delimited ratings text into columns with numpy alone.

pandas' C parser is the tool for big files, but importing pandas takes a quarter of a second:
longer than reading MovieLens 100k this way. This reader takes only what it can read exactly
as pandas would (no quotes, every line the same number of fields, plain decimal numbers) and
answers None for anything else; the caller then reads the file with pandas, which also names
the line at fault. It never raises for bad data.

The text is never split into Python strings: the fields are located by their separators in one
byte array, each column is copied into a fixed-width byte matrix (a row per line), numbers are
computed from their digits and IDs are numbered by sorting their bytes. Only the distinct IDs
become ``str``.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

#: Longest number field taken. Up to 15 digits form an integer exact in a double, and one
#: division by an (exact) power of ten rounds correctly: the value is the one any correct
#: decimal converter gives. Longer fields are left to pandas rather than trusting that every
#: pandas version rounds them alike.
MAX_NUMBER_CHARS = 15
#: Longest ID taken (in bytes); a column is copied into a matrix as wide as its longest value.
MAX_ID_BYTES = 64

_BOM = codecs.BOM_UTF8
# Byte standing in for a multi-character separator, so that all separators split alike.
_SEP_STANDIN = b"\x1f"
# The codecs whose text keeps every ASCII byte as that character: separators, digits and line
# ends can then be found in the bytes. IDs are decoded one distinct value at a time.
_ID_CODECS = {"utf-8-sig": "utf-8", "utf-8": "utf-8", "iso8859-1": "latin-1", "ascii": "ascii"}
_POW10 = np.array([float(10**k) for k in range(MAX_NUMBER_CHARS + 1)])
_NL, _TAB, _SPACE = ord("\n"), ord("\t"), ord(" ")
_DOT, _PLUS, _MINUS, _ZERO = ord("."), ord("+"), ord("-"), ord("0")


@dataclass(frozen=True)
class PlainColumns:
    """The columns of a plain ratings text: IDs numbered in order of first appearance.

    `user_ids` / `item_ids` are the distinct IDs (``str``, whitespace stripped); `users` and
    `items` index into them. Ratings and timestamps are float64 as written.
    """

    users: NDArray[np.int32]
    user_ids: NDArray[np.object_]
    items: NDArray[np.int32]
    item_ids: NDArray[np.object_]
    ratings: NDArray[np.float64]
    timestamps: NDArray[np.float64] | None


def read_plain(
    data: bytes,
    *,
    sep: str,
    n_fields: int,
    positions: Sequence[int],
    header: bool,
    encoding: str,
) -> PlainColumns | None:
    """The user, item, rating (and timestamp) columns at `positions` of the text `data`, or
    None when the text is not plain enough to read exactly as pandas' parser would.

    `sep` is one separator string, or ``" "`` for any run of spaces and tabs; every non-blank
    line below the header (skipped when `header`) must have `n_fields` fields.
    """
    text = _plain_text(data, header, encoding)
    if text is None:
        return None
    body, id_codec = text
    located = _locate_fields(body, sep, n_fields)
    if located is None:
        return None
    body, starts, ends = located
    widths = ends - starts
    u_pos, i_pos, r_pos = positions[:3]
    if max(widths[:, u_pos].max(), widths[:, i_pos].max()) > MAX_ID_BYTES:
        return None
    # Each column is cut from windows of the text as wide as its widest field (IDs: in whole
    # 8-byte words).
    tail = np.zeros(_words(int(widths.max())) * 8, np.uint8)
    padded = np.concatenate((np.frombuffer(body, np.uint8), tail))

    def column(k: int, ids: bool = False) -> NDArray[np.uint8]:
        width = int(widths[:, k].max())
        return _column(padded, starts[:, k], widths[:, k], _words(width) * 8 if ids else width)

    # pandas skips the spaces after a one-character separator, and its converter those at
    # the end; after other separators they are left for pandas to judge.
    spaces = sep != " " and len(sep) == 1
    ratings = _numbers(column(r_pos), spaces)
    stamps = None if len(positions) < 4 else _numbers(column(positions[3]), spaces)
    if ratings is None or (len(positions) > 3 and stamps is None):
        return None
    users = _number_ids(column(u_pos, ids=True), id_codec)
    items = _number_ids(column(i_pos, ids=True), id_codec)
    if users is None or items is None:
        return None
    return PlainColumns(users[0], users[1], items[0], items[1], ratings, stamps)


def _plain_text(data: bytes, header: bool, encoding: str) -> tuple[bytes, str] | None:
    """(the lines below the header, ending in LF; the codec to decode IDs with), or None when
    the text holds what only pandas reads right: quotes, NULs, a lone CR, a foreign BOM."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        return None
    id_codec = _ID_CODECS.get(codec)
    if id_codec is None or not _decodes(data, id_codec):
        return None
    if data.startswith(_BOM):
        # Only utf-8-sig drops it as the file is decoded; otherwise it is part of the text.
        if codec != "utf-8-sig":
            return None
        data = data[len(_BOM) :]
    body = _body(data, header)
    if not body or b'"' in body or b"\x00" in body:
        return None
    if b"\r" in body:
        # pandas also ends a line at a lone CR; only CRLF is taken here.
        if body.count(b"\r") != body.count(b"\r\n"):
            return None
        body = body.replace(b"\r\n", b"\n")
    return body, id_codec


def _locate_fields(
    body: bytes, sep: str, n_fields: int
) -> tuple[bytes, NDArray[np.intp], NDArray[np.intp]] | None:
    """(`body`, with a long separator replaced by one byte; the start and end offsets of every
    field, one row per non-blank line), or None unless each such line has `n_fields` fields."""
    if sep == " ":
        spans = _whitespace_spans(body, n_fields)
    else:
        one_byte = _one_byte_separator(body, sep)
        if one_byte is None:
            return None
        body, sep_byte = one_byte
        spans = _separated_spans(body, sep_byte, n_fields)
    if spans is None or spans[0].size == 0:
        return None
    return body, *spans


def _decodes(data: bytes, codec: str) -> bool:
    if data.isascii():
        return True
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _body(data: bytes, header: bool) -> bytes | None:
    """The text below the header line; None when the header line is blank or opens a quote."""
    if not header:
        return data
    end = data.find(b"\n")
    first = data if end < 0 else data[:end]
    # pandas skips the first physical line, quotes and all, where the sniffing skipped the
    # first non-blank one: they agree only when that is the first line and has no open quote.
    if not first.strip() or first.count(b'"') % 2:
        return None
    return b"" if end < 0 else data[end + 1 :]


def _one_byte_separator(body: bytes, sep: str) -> tuple[bytes, int] | None:
    """`body` with `sep` as one byte (a stand-in for a longer one), and that byte."""
    if not _plain_separator(sep):
        return None
    if len(sep) == 1:
        return body, ord(sep)
    if _SEP_STANDIN in body:
        return None
    # bytes.replace takes the leftmost non-overlapping matches, as pandas' regex split.
    return body.replace(sep.encode("ascii"), _SEP_STANDIN), _SEP_STANDIN[0]


def _separated_spans(
    body: bytes, sep: int, n_fields: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """(starts, ends) of the fields between the byte `sep` and line ends, a row per line."""
    buf = np.frombuffer(body, np.uint8)
    is_end = buf == sep
    is_end |= buf == _NL
    ends = np.flatnonzero(is_end)
    line_end = buf[ends] == _NL
    if buf[-1] != _NL:
        ends = np.append(ends, len(buf))
        line_end = np.append(line_end, True)
    starts = np.empty_like(ends)
    starts[0] = 0
    np.add(ends[:-1], 1, out=starts[1:])
    last_field = np.flatnonzero(line_end)
    per_line = np.diff(last_field, prepend=-1)
    # A line without separator is blank (whitespace only) or wrong: n_fields is at least 3.
    lone = last_field[per_line == 1]
    if any(body[starts[k] : ends[k]].strip() for k in lone.tolist()):
        return None
    if (per_line[per_line != 1] != n_fields).any():
        return None
    if len(lone):
        keep = np.ones(len(ends), dtype=bool)
        keep[lone] = False
        starts, ends = starts[keep], ends[keep]
    return starts.reshape(-1, n_fields), ends.reshape(-1, n_fields)


def _plain_separator(sep: str) -> bool:
    # Multi-character separators go to pandas' python engine, which strips each line first:
    # a separator with whitespace at an end could be cut there.
    if not sep.isascii() or '"' in sep or "\n" in sep or "\r" in sep:
        return False
    return len(sep) == 1 or (sep.isprintable() and sep.strip() == sep)


def _whitespace_spans(
    body: bytes, n_fields: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """(starts, ends) of the runs of bytes between spaces, tabs and line ends, a row per line."""
    # pandas splits on spaces and tabs only; \v and \f would be whitespace to others.
    if b"\x0b" in body or b"\x0c" in body:
        return None
    buf = np.frombuffer(body, np.uint8)
    is_newline = buf == _NL
    in_field = ~(is_newline | (buf == _SPACE) | (buf == _TAB))
    edges = np.diff(in_field, prepend=False, append=False).nonzero()[0]
    starts, ends = edges[0::2], edges[1::2]
    per_line = np.bincount(np.searchsorted(np.flatnonzero(is_newline), starts))
    if (per_line[per_line != 0] != n_fields).any():
        return None
    return starts.reshape(-1, n_fields), ends.reshape(-1, n_fields)


def _words(n_bytes: int) -> int:
    """8-byte words needed for `n_bytes` (at least one)."""
    return max(-(-n_bytes // 8), 1)


def _column(
    padded: NDArray[np.uint8], starts: NDArray, widths: NDArray, width: int
) -> NDArray[np.uint8]:
    """The fields at `starts` as rows of a byte matrix `width` wide (at least 1), NUL-padded."""
    width = max(width, 1)
    chars = sliding_window_view(padded, width)[starts]
    if (widths != width).any():
        chars[np.arange(width) >= widths[:, None]] = 0
    return chars


def _number_ids(chars: NDArray[np.uint8], codec: str) -> tuple[NDArray[np.int32], NDArray] | None:
    """(codes, distinct IDs) in order of first appearance, from IDs as rows of whole 8-byte
    words (equal IDs, equal words: the padding is NUL, which no field holds); None when an ID
    is empty.

    Surrounding whitespace is not part of an ID: ``" 7"`` and ``"7"`` are one ID, numbered
    where either first appears. Only the distinct values are decoded and stripped.
    """
    codes, first_rows = _first_appearance(chars.view(np.uint64))
    distinct = chars[first_rows].view(f"S{chars.shape[1]}").ravel().tolist()
    numbering: dict[str, int] = {}
    renumber = np.empty(len(distinct), dtype=np.int32)
    for k, raw in enumerate(distinct):
        text = raw.decode(codec).strip()
        if not text:
            return None
        renumber[k] = numbering.setdefault(text, len(numbering))
    return renumber[codes], np.array(list(numbering), dtype=object)


def _first_appearance(keys: NDArray[np.uint64]) -> tuple[NDArray[np.int32], NDArray[np.intp]]:
    """(code of each row, first row of each code): equal rows share a code, numbered in order
    of first appearance."""
    n, n_words = keys.shape
    # Stable, so each group's first row comes first; and fast on files sorted by user.
    if n_words == 1:
        order = np.argsort(keys[:, 0], kind="stable")
    else:
        order = np.lexsort(keys.T[::-1])
    sorted_keys = keys[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (sorted_keys[1:] != sorted_keys[:-1]).any(axis=1)
    first_rows = order[new]
    by_appearance = np.argsort(first_rows)
    code_of_group = np.empty(len(first_rows), dtype=np.int32)
    code_of_group[by_appearance] = np.arange(len(first_rows), dtype=np.int32)
    codes = np.empty(n, dtype=np.int32)
    codes[order] = code_of_group[np.cumsum(new) - 1]
    return codes, first_rows[by_appearance]


def _numbers(chars: NDArray[np.uint8], spaces: bool) -> NDArray[np.float64] | None:
    """Plain decimal numbers (``5``, ``-0.25``, ``+3.``) as float64, one per row; None for
    anything else (exponents, nan, inf, digit separators, empty fields), left to pandas."""
    if chars.shape[1] > MAX_NUMBER_CHARS:
        return None
    offsets = chars - _ZERO  # unsigned: every byte but a digit wraps to 10 or more
    digit = offsets <= 9
    if digit.all():
        # Unsigned integers of one width (star ratings, epoch seconds): the common case.
        whole = np.zeros(len(chars), dtype=np.int64)
        for j in range(chars.shape[1]):
            whole *= 10
            whole += offsets[:, j]
        return whole.astype(np.float64)
    dot = chars == _DOT
    sign = (chars == _PLUS) | (chars == _MINUS)
    space = chars == _SPACE
    if not (digit | dot | sign | space | (chars == 0)).all():
        return None
    if spaces and space.any():
        # numpy's converter skips spaces around the number as pandas' does.
        try:
            values = chars.view(f"S{chars.shape[1]}").ravel().astype(np.float64)
        except ValueError:
            return None
        return None if _negative_zero(values) else values
    if space.any() or sign[:, 1:].any() or (dot.sum(axis=1) > 1).any():
        return None
    if not digit.any(axis=1).all():
        return None
    mantissa = np.zeros(len(chars), dtype=np.int64)
    decimals = np.zeros(len(chars), dtype=np.intp)
    after_dot = np.zeros(len(chars), dtype=bool)
    for j in range(chars.shape[1]):
        d = digit[:, j]
        mantissa = np.where(d, mantissa * 10 + offsets[:, j], mantissa)
        after_dot |= dot[:, j]
        decimals += d & after_dot
    values = mantissa / _POW10[decimals]
    values = np.where(chars[:, 0] == _MINUS, -values, values)
    return None if _negative_zero(values) else values


def _negative_zero(values: NDArray[np.float64]) -> bool:
    # "-0" is -0.0 to pandas' C parser but 0.0 to its python engine (long separators).
    return bool(np.signbit(values[values == 0]).any())
