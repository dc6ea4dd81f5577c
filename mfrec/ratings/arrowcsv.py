"""Big delimited ratings files through pyarrow's CSV parser, read in pieces.

The file is cut at line ends into pieces of `PIECE_BYTES`, which flow through three threads:
one reads a piece and has pyarrow parse it (on every core), the next dictionary-encodes the
ID columns of the piece before, and the caller's numbers the piece before that: only IDs that
the previous piece did not hold become Python strings, looked up in the growing maps
(`IdNumbering`), and the rows go straight into the final arrays. No ID column is ever held
as strings, and no more than three pieces of text.

This reader takes only what it reads exactly as pandas' C parser does in `mfrec.ratings.load`
(the reference): one-character separators (``::`` split on ``:`` as there), UTF-8, ASCII or
latin-1 text, ratings and numeric timestamps. `arrow_plan` says whether a layout qualifies;
content met later that only pandas reads right (a quote after a space, a byte-order mark
inside the text, a quoted field over several lines) raises `ArrowDeclined`, and the caller
reads the file with pandas. A piece that pyarrow rejects, or whose IDs are empty, raises
`PieceRejected` with the number of rows read before it: the caller names the line.
"""

from __future__ import annotations

import codecs
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
from numpy.typing import NDArray

from mfrec.ratings.checks import epoch_seconds
from mfrec.ratings.idmap import IdMap

#: Bytes of text parsed at a time. Each piece builds its ID dictionaries anew (4 MB pieces
#: take ~15% more CPU time than 16 MB ones), and the three pieces in flight hold about ten
#: times this much (at 10M ratings 16 MB pieces peak ~70 MB higher than 6 MB ones).
PIECE_BYTES = 6 << 20
#: pyarrow's parse block within a piece: the unit its threads share out.
BLOCK_BYTES = 1 << 20
#: The text encodings read here (as `codecs.lookup` names them), and what a piece is checked
#: or converted with: pyarrow itself reads UTF-8 only.
CODECS = {"utf-8-sig": "utf-8", "utf-8": "utf-8", "iso8859-1": "latin-1", "ascii": "ascii"}

_BOM = codecs.BOM_UTF8


class ArrowDeclined(Exception):
    """The file holds something that only pandas' parser reads as the loader must."""


class PieceRejected(Exception):
    """A piece that pyarrow could not parse (`parse` true), or holding an empty ID.

    `rows_before` rows (non-blank lines below the header) were read before the piece.
    """

    def __init__(self, rows_before: int, reason: str, *, parse: bool):
        super().__init__(reason)
        self.rows_before = rows_before
        self.parse = parse


@dataclass(frozen=True)
class ArrowPlan:
    """What pyarrow is told: the separator character, the columns it splits a line into, and
    which of them hold the user, item, rating, timestamp (None: none) and, for ``::`` split on
    ``:``, the columns between the characters of a separator, which must be empty."""

    delimiter: str
    header: bool
    n_columns: int
    user: int
    item: int
    rating: int
    timestamp: int | None
    gaps: tuple[int, ...]
    codec: str
    strip_bom: bool


def arrow_plan(
    *,
    sep: str,
    header: bool,
    n_fields: int,
    positions: list[int],
    dtypes: dict,
    split_on_one_char: bool,
    encoding: str,
    first_line: str,
) -> ArrowPlan | None:
    """How pyarrow reads a file of this sniffed layout, or None when it does not read it as
    pandas' parser would (whitespace or multi-character separators, date timestamps, other
    encodings, a header below blank lines)."""
    try:
        codec = CODECS.get(codecs.lookup(encoding).name)
    except LookupError:
        return None
    t_pos = positions[3] if len(positions) > 3 else None
    if (
        codec is None
        or sep == " "
        or (len(sep) > 1 and not split_on_one_char)
        or (t_pos is not None and dtypes[t_pos] != "float64")
        or (header and not first_line.strip())
    ):
        return None
    # "::" is split on ":" as pandas' C parser does: field j is column 2j, and the columns
    # between must be empty (else an ID holds ":" and the caller splits on "::" itself).
    step = len(sep)
    u, i, r = (step * p for p in positions[:3])
    n_columns = step * (n_fields - 1) + 1
    return ArrowPlan(
        delimiter=sep[0],
        header=header,
        n_columns=n_columns,
        user=u,
        item=i,
        rating=r,
        timestamp=None if t_pos is None else step * t_pos,
        gaps=tuple(j for j in range(n_columns) if j % step),
        codec=codec,
        strip_bom=codecs.lookup(encoding).name == "utf-8-sig",
    )


@dataclass
class Piece:
    """One piece's rows: IDs numbered in the maps so far, ratings as parsed, timestamps as
    whole seconds (`mfrec.ratings.checks.epoch_seconds`)."""

    users: NDArray[np.int32]
    items: NDArray[np.int32]
    ratings: NDArray[np.float64]
    timestamps: NDArray[np.int64] | None
    rows_before: int


@dataclass
class EncodedIds:
    """A piece's ID column, dictionary-encoded: row k holds ``distinct[codes[k]]``.

    `distinct` are the IDs stripped of surrounding whitespace (as pandas' Arrow strings are
    stripped), each once, in order of first appearance; `in_last` the position of each in
    the previous piece's `distinct`, -1 where it was not there.
    """

    codes: NDArray[np.int32]
    distinct: pa.StringArray
    in_last: NDArray[np.int32] | None

    @classmethod
    def encode(cls, column: pa.ChunkedArray, last: pa.StringArray | None) -> EncodedIds:
        """The column encoded, all in pyarrow (no Python string is made); `last` is the
        previous piece's `distinct`."""
        encoded = pc.dictionary_encode(column)
        # The chunks of a dictionary-encoded chunked array share one dictionary (or each
        # holds what was found up to its end).
        dictionary = max((chunk.dictionary for chunk in encoded.chunks), key=len)
        codes = _values(pa.chunked_array([chunk.indices for chunk in encoded.chunks]))
        distinct = pc.utf8_trim_whitespace(dictionary)
        if not distinct.equals(dictionary):
            again = pc.dictionary_encode(distinct)
            codes = _values(again.indices)[codes]
            distinct = again.dictionary
        in_last = None
        if last is not None:
            in_last = _values(pc.fill_null(pc.index_in(distinct, value_set=last), -1))
        return cls(codes, distinct, in_last)

    @property
    def empty(self) -> bool:
        """Whether an ID is empty."""
        return len(self.distinct) > 0 and pc.min(pc.binary_length(self.distinct)).as_py() == 0


class IdNumbering:
    """Numbers string IDs in order of first appearance, one encoded piece at a time.

    An ID that the previous piece held is numbered through that piece's numbers; only the
    others become Python strings, looked up in one dict.
    """

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self.last: NDArray[np.int32] | None = None  # the numbers of the last piece's IDs

    def number(self, ids: EncodedIds) -> NDArray[np.int32]:
        """The numbers of a piece's IDs (row by row), numbering new ones."""
        if ids.in_last is None or self.last is None:
            numbers = np.full(len(ids.distinct), -1, dtype=np.int32)
        else:
            numbers = np.where(ids.in_last >= 0, self.last[ids.in_last], -1).astype(np.int32)
        unseen = np.flatnonzero(numbers < 0).astype(np.int64)
        if len(unseen):
            positions = self.positions
            # (pa.array would import pandas to ask whether `unseen` is a pandas object.)
            take = pa.Array.from_buffers(pa.int64(), len(unseen), [None, pa.py_buffer(unseen)])
            raw = ids.distinct.take(take).to_pylist()
            numbers[unseen] = np.fromiter(
                (positions.setdefault(x, len(positions)) for x in raw), np.int32, len(raw)
            )
        self.last = numbers
        return numbers[ids.codes]

    def to_idmap(self) -> IdMap:
        """The IDs numbered so far, as a map."""
        return IdMap.from_distinct_strings(np.array(list(self.positions), dtype=object))


@dataclass
class _Parsed:
    """A piece as the encoding thread leaves it: the table and its IDs encoded."""

    table: pa.Table
    users: EncodedIds
    items: EncodedIds
    split_wrong: bool  # "::" split on ":" met a field holding ":"


def read_pieces(
    open_binary: Callable[[], AbstractContextManager[BinaryIO]],
    plan: ArrowPlan,
    users: IdNumbering,
    items: IdNumbering,
) -> Iterator[Piece]:
    """The file's pieces in order, IDs numbered in `users` and `items`; meanwhile the next
    piece is dictionary-encoded in one worker thread and the one after it read and parsed in
    another.

    Raises PieceRejected, ArrowDeclined, or UnicodeDecodeError when the text is not in the
    plan's encoding.
    """
    parser = _Parser(plan)
    rows = 0
    with (
        open_binary() as fh,
        ThreadPoolExecutor(1) as parsing,
        ThreadPoolExecutor(1) as encoding,
    ):
        texts = _texts(fh, plan, parser)
        last: list[pa.StringArray | None] = [None, None]  # the last piece's distinct IDs

        def parse_next() -> pa.Table | None:
            while (piece := next(texts, None)) is not None:
                table = parser.parse(*piece)
                if table.num_rows:
                    return table
            return None

        def encode(parsed: Future[pa.Table | None]) -> _Parsed | None:
            table = parsed.result()
            if table is None:
                return None
            column = {int(name): table.column(name) for name in table.column_names}
            encoded = _Parsed(
                table,
                EncodedIds.encode(column[plan.user], last[0]),
                EncodedIds.encode(column[plan.item], last[1]),
                any(pc.max(pc.binary_length(column[j])).as_py() for j in plan.gaps),
            )
            last[:] = encoded.users.distinct, encoded.items.distinct
            return encoded

        def submit() -> Future[_Parsed | None]:
            # Pieces are parsed one after the other, and encoded one after the other.
            return encoding.submit(encode, parsing.submit(parse_next))

        ahead = deque([submit(), submit()])
        while True:
            try:
                parsed = ahead.popleft().result()
            except pa.ArrowInvalid as exc:
                raise PieceRejected(rows, str(exc), parse=True) from None
            if parsed is None:
                return
            ahead.append(submit())
            if parsed.split_wrong:
                raise PieceRejected(rows, "a field holds the separator's character", parse=True)
            if parsed.users.empty or parsed.items.empty:
                raise PieceRejected(rows, "empty ID", parse=False)
            table = parsed.table
            column = {int(name): table.column(name) for name in table.column_names}
            yield Piece(
                users.number(parsed.users),
                items.number(parsed.items),
                _values(column[plan.rating]),
                None if plan.timestamp is None else _seconds(_values(column[plan.timestamp])),
                rows,
            )
            rows += table.num_rows
            del parsed, table, column


def _seconds(stamps: NDArray[np.int64] | NDArray[np.float64]) -> NDArray[np.int64]:
    """Timestamps as whole seconds, as `epoch_seconds` makes them of the numbers pandas reads:
    integers beyond 2**53 rounded to the nearest float64, as reading them as numbers does."""
    if stamps.dtype.kind == "f":
        return epoch_seconds(stamps)
    if ((stamps > 1 << 53) | (stamps < -(1 << 53))).any():
        return epoch_seconds(stamps.astype(np.float64))
    return stamps


def _values(column: pa.Array | pa.ChunkedArray) -> NDArray:
    """A numeric column without nulls as numpy (a view of a single chunk); pyarrow's own
    `to_numpy` would import pandas."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    dtype = np.dtype(column.type.to_pandas_dtype())
    views = [
        np.frombuffer(c.buffers()[1], dtype, count=len(c), offset=c.offset * dtype.itemsize)
        for c in chunks
        if len(c)
    ]
    if len(views) == 1:
        return views[0]
    return np.concatenate(views) if views else np.empty(0, dtype)


class _Parser:
    """pyarrow's options for a plan, and the checks around parsing one piece."""

    def __init__(self, plan: ArrowPlan):
        delimiter = plan.delimiter
        types = {plan.user: pa.string(), plan.item: pa.string(), plan.rating: pa.float64()}
        types.update((gap, pa.string()) for gap in plan.gaps)
        self.types = types
        self.timestamp = plan.timestamp
        self.read_options = pv.ReadOptions(
            column_names=[str(j) for j in range(plan.n_columns)],
            block_size=BLOCK_BYTES,
            use_threads=True,
        )
        # Timestamps are parsed as integers (a third faster than as numbers) until a piece
        # holds another number.
        self.convert_options = self._convert_options(pa.int64())
        self.delimiter = delimiter
        spaces = "".join(c for c in " \t" if c != delimiter)
        # pandas drops a line of spaces and tabs, the separator not among them.
        self.blank = re.compile(f"[{spaces}]*")
        # pandas skips spaces after a separator, then reads a quoted field; pyarrow reads the
        # spaces and the quotes as part of the field.
        self.quote_after_space = re.compile(
            b"(?:^|[\r\n" + re.escape(delimiter.encode()) + b"])[" + spaces.encode() + b']+"',
            re.MULTILINE,
        )

    def parse(self, text: pa.Buffer, quoted: bool) -> pa.Table:
        """One piece as a table; raises pyarrow's ArrowInvalid for a line it cannot parse, and
        ArrowDeclined when a quoted field spans lines (pandas reads it, but the pieces are cut
        at line ends)."""
        skipped = []

        def invalid_row(row) -> str:
            # Anything else with too few or too many fields is the caller's to name.
            if self.blank.fullmatch(row.text):
                skipped.append(row)
                return "skip"
            return "error"

        parse_options = pv.ParseOptions(
            delimiter=self.delimiter,
            quote_char='"',
            double_quote=True,
            escape_char=False,
            newlines_in_values=quoted,  # blocks then end outside quotes
            ignore_empty_lines=True,
            invalid_row_handler=invalid_row,
        )
        try:
            table = pv.read_csv(
                pa.BufferReader(text), self.read_options, parse_options, self.convert_options
            )
        except pa.ArrowInvalid:
            integers = self.convert_options.column_types.get(str(self.timestamp)) == pa.int64()
            if self.timestamp is None or not integers:
                raise
            self.convert_options = self._convert_options(pa.float64())
            return self.parse(text, quoted)
        if quoted and table.num_rows + len(skipped) != _lines(text):
            raise ArrowDeclined("a quoted field holds a line end")
        return table

    def _convert_options(self, timestamps: pa.DataType) -> pv.ConvertOptions:
        types = dict(self.types)
        if self.timestamp is not None:
            types[self.timestamp] = timestamps
        return pv.ConvertOptions(
            column_types={str(j): t for j, t in types.items()},
            include_columns=[str(j) for j in sorted(types)],
            check_utf8=False,  # every piece is checked whole, as the text it is (`_checked`)
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            null_values=[],
        )


def _lines(text: pa.Buffer) -> int:
    """The lines of `text` that are not empty."""
    a = np.frombuffer(text, np.uint8)
    n = len(a)
    is_end = a == 10
    is_end[:-1] |= (a[:-1] == 13) & ~is_end[1:]  # a CR that is not part of a CRLF
    is_end[-1:] |= a[-1:] == 13
    ends = np.flatnonzero(is_end)
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [n]))
    length = stops - starts
    # The CR of a CRLF is no content.
    crlf = np.zeros(len(starts), dtype=bool)
    some = np.flatnonzero(length > 0)
    some = some[stops[some] < n]
    crlf[some] = (a[stops[some]] == 10) & (a[stops[some] - 1] == 13)
    return int(np.count_nonzero(length - crlf > 0))


def _texts(fh: BinaryIO, plan: ArrowPlan, parser: _Parser) -> Iterator[tuple[pa.Buffer, bool]]:
    """The file's text in pieces of about `PIECE_BYTES` ending at a line end, as UTF-8, the
    header line left out, and whether each holds a quote."""
    carry = b""  # a line begun at the end of the last piece
    first = True
    while True:
        # A new buffer for each piece: pyarrow may keep referring to the one it parsed.
        buf = bytearray(len(carry) + PIECE_BYTES)
        buf[: len(carry)] = carry
        end = len(carry)
        with memoryview(buf) as view:
            while end < len(buf) and (read := fh.readinto(view[end:])):
                end += read
        at_end = end < len(buf)
        cut = end
        if not at_end:  # cut after the last line end
            cut = max(buf.rfind(b"\n", 0, end), buf.rfind(b"\r", 0, end)) + 1
            if cut == 0:  # a line longer than a piece
                carry = bytes(buf)
                continue
        start = 0
        if first:
            first = False
            if plan.strip_bom and buf.startswith(_BOM):
                start = len(_BOM)
            if plan.header:
                start = _after_first_line(buf, start, cut)
        carry = bytes(buf[cut:end])
        if cut > start:
            yield _checked(buf, start, cut, plan, parser)
        if at_end:
            return


def _after_first_line(data: bytearray, start: int, end: int) -> int:
    """Where the line after the one at `start` begins."""
    ends = [k for k in (data.find(b"\n", start, end), data.find(b"\r", start, end)) if k >= 0]
    if not ends:
        return end  # the header is the only line
    stop = min(ends)
    if data.count(b'"', start, stop) % 2:
        raise ArrowDeclined("a quoted header over lines")
    return stop + (2 if data[stop : stop + 2] == b"\r\n" else 1)


def _checked(
    data: bytearray, start: int, end: int, plan: ArrowPlan, parser: _Parser
) -> tuple[pa.Buffer, bool]:
    """(`data[start:end]` as the UTF-8 that pyarrow reads as pandas reads the decoded text,
    whether it holds a quote); raises UnicodeDecodeError when it is not in the plan's
    encoding."""
    if data.startswith(_BOM, start, end):
        # pyarrow drops a byte-order mark at the start of what it parses; pandas keeps it.
        raise ArrowDeclined("byte-order mark")
    quoted = data.find(b'"', start, end) >= 0
    if (
        quoted
        and (data.find(b' "', start, end) >= 0 or data.find(b'\t"', start, end) >= 0)
        and parser.quote_after_space.search(data, start, end)
    ):
        raise ArrowDeclined("a quote after a space")
    text = pa.py_buffer(data).slice(start, end - start)
    if np.frombuffer(text, np.uint8).max() >= 0x80:
        if plan.codec == "ascii":
            raise ArrowDeclined("not ASCII")  # pandas' decoder names the error
        if plan.codec == "latin-1":
            return pa.py_buffer(codecs.decode(text, "latin-1").encode("utf-8")), quoted
        _check_utf8(text)
    return text, quoted


def _check_utf8(text: pa.Buffer) -> None:
    offsets = pa.py_buffer(np.array([0, text.size], np.int64))
    whole = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, text])
    try:
        whole.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise UnicodeDecodeError("utf-8", b"", 0, 1, str(exc)) from None
