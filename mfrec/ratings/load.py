"""Load a ratings file or DataFrame into RatingData: integer indices, ID maps and the scale.

A small, plain text file is split with numpy (`mfrec.ratings.plaintext`): importing pandas would
take longer than reading it. A bigger one is parsed by pyarrow in pieces whose IDs are numbered
as they arrive (`mfrec.ratings.arrowcsv`), wherever pyarrow reads the file exactly as pandas' C
parser does; anything else goes to that parser, read in chunks numbered the same way. Either
way peak memory stays near the final arrays. Anything a parser rejects is handed to a slow,
line-by-line diagnosis whose only job is to name the line and say what is wrong with it.

Here the file is opened and parsed. Its layout is told by `mfrec.ratings.sniff`, pandas' chunks
are gathered by `mfrec.ratings.chunks`, and the columns are checked and become a RatingData in
`mfrec.ratings.checks`, which the Dask ingest shares.
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import lzma
import math
import os
import re
import sys
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mfrec.errors import DataFormatError
from mfrec.ratings.checks import (
    assemble_ratings,
    epoch_seconds,
    id_strings,
    narrow_ratings,
    outside_scale,
    parse_timestamps,
    rating_problem,
)
from mfrec.ratings.chunks import (
    ChunkColumns,
    GrowingIdMap,
    blank_rows,
    pandas_chunks,
    release_arrow_memory,
)
from mfrec.ratings.idmap import IdMap
from mfrec.ratings.ratingdata import Layout, RatingData
from mfrec.ratings.sniff import (
    SNIFF_BYTES,
    Column,
    decode_head,
    detect_compression,
    normalize_sep,
    parse_columns,
    pick_columns,
    sniff_layout,
    split_fields,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DUPLICATE_POLICIES = ("last", "mean", "error")
CHUNK_ROWS = 1 << 20
#: Headroom on the rows a file's size suggests: lines a little shorter than the sniffed ones
#: then need no reallocation (unused capacity is never touched, so it costs no memory).
ROWS_MARGIN = 1.05
#: Plain text files up to this size are split with numpy (`mfrec.ratings.plaintext`), without paying
#: for pandas' import: 5x faster than pandas on 4 MB, 2x on 16 MB, 1.3x on 32 MB (MovieLens 1M
#: is 24 MB). About 64 MB pandas' C parser catches up, and needs less memory.
PLAIN_MAX_BYTES = 32 << 20
#: Files the plain reader leaves are parsed by pyarrow (`mfrec.ratings.arrowcsv`) wherever it
#: reads them as pandas' C parser does: 2-3x faster, in less memory. False: always pandas, the
#: reference the other readers are tested against.
USE_ARROW = True


@dataclass(frozen=True)
class Preset:
    """A named file layout: separator, header and the columns holding user, item, rating."""

    sep: str | None
    header: bool | None
    columns: tuple[Column, ...] | None
    description: str


PRESETS: dict[str, Preset] = {
    "auto": Preset(None, None, None, "detect separator, header and columns (the default)"),
    "generic": Preset(None, None, None, "same as auto"),
    "ml-100k": Preset(
        "\t", False, (1, 2, 3, 4), "MovieLens 100k u.data: user item rating ts, tabs"
    ),
    "ml-1m": Preset("::", False, (1, 2, 3, 4), "MovieLens 1M ratings.dat: user::item::rating::ts"),
    "ml-10m": Preset("::", False, (1, 2, 3, 4), "MovieLens 10M ratings.dat, as ml-1m"),
    "ml-latest": Preset(
        ",",
        True,
        ("userId", "movieId", "rating", "timestamp"),
        "MovieLens latest ratings.csv: header, half-star ratings",
    ),
}


def load_ratings(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    preset: str = "auto",
    sep: str | None = None,
    header: bool | None = None,
    columns: Sequence[Column] | str | None = None,
    scale: tuple[float, float] | None = None,
    duplicates: str = "last",
    encoding: str | None = None,
) -> RatingData:
    """Read ratings from a file, a dataset name or a DataFrame into a RatingData.

    Parameters
    ----------
    source
        A path (CSV, TSV, whitespace-separated, any separator; gzip, bz2, xz or zip compressed;
        Parquet), the name of a fetched public dataset (``ml-100k``), or a pandas DataFrame.
    preset
        A named layout from `PRESETS`; explicit `sep`, `header` and `columns` override it.
    sep
        Column separator; ``" "`` means any run of whitespace. Detected when None.
    header
        Whether the first line names the columns. Detected when None.
    columns
        The user, item, rating (and optional timestamp) columns, in that order: header names,
        or 1-based positions as in ``cut`` and ``awk``. A string ``"userId,movieId,rating"``
        is split on commas. Detected when None.
    scale
        (min, max) of the rating scale; a rating outside it is an error. Taken from the data
        when None.
    duplicates
        What a repeated (user, item) pair means: ``last`` keeps the last one (the default:
        files are usually appended to, so the latest rating wins), ``mean`` averages them,
        ``error`` refuses the file.
    encoding
        Text encoding; by default UTF-8 (with or without a byte-order mark), falling back to
        latin-1 when the bytes are not UTF-8.
    """
    if preset not in PRESETS:
        raise DataFormatError(
            f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}", source=None
        )
    if duplicates not in DUPLICATE_POLICIES:
        raise DataFormatError(
            f"duplicates={duplicates!r}: must be one of {', '.join(DUPLICATE_POLICIES)}"
        )
    if scale is not None:
        scale = _check_scale(scale)
    p = PRESETS[preset]
    sep = p.sep if sep is None else normalize_sep(sep)
    header = p.header if header is None else header
    cols = p.columns if columns is None else parse_columns(columns)

    if _is_frame(source):
        return _from_frame(source, cols, scale, duplicates, name="DataFrame")

    path, sep, header, cols = _resolve_source(source, sep, header, cols)
    if _is_parquet(path):
        return _from_frame(_read_parquet(path), cols, scale, duplicates, name=str(path))
    return _TextReader(path, sep, header, cols, encoding).read(scale, duplicates)


def _is_frame(source: object) -> bool:
    # A DataFrame exists only once pandas is imported: no need to import it to ask.
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(source, pandas.DataFrame)


def parse_scale(text: str) -> tuple[float, float]:
    """Parse ``"MIN,MAX"`` (as given to ``--scale``)."""
    parts = text.split(",")
    try:
        lo, hi = (float(x) for x in parts)
    except ValueError:
        raise DataFormatError(f"--scale {text!r}: expected MIN,MAX such as 1,5") from None
    return _check_scale((lo, hi))


def _check_scale(scale: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(x) for x in scale)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise DataFormatError(f"scale=({lo:g}, {hi:g}): need finite MIN < MAX")
    return lo, hi


def _resolve_source(
    source: str | os.PathLike[str], sep: str | None, header: bool | None, cols
) -> tuple[Path, str | None, bool | None, tuple[Column, ...] | None]:
    path = Path(source)
    if path.exists():
        if path.is_dir():
            raise DataFormatError("is a directory, not a ratings file", source=str(path))
        return path, sep, header, cols
    if isinstance(source, str) and os.sep not in source:
        from mfrec.ratings.datasets import resolve

        found = resolve(source)
        if found is not None:
            data_path, preset_name = found
            p = PRESETS[preset_name]
            return (
                data_path,
                p.sep if sep is None else sep,
                p.header if header is None else header,
                p.columns if cols is None else cols,
            )
    raise DataFormatError("no such file", source=str(path))


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in (".parquet", ".pq"):
        return True
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _read_parquet(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise DataFormatError(
            "reading Parquet needs pyarrow: pip install 'mfrec[parquet]'", source=str(path)
        ) from None
    try:
        return pd.read_parquet(path)
    except Exception as exc:
        raise DataFormatError(f"not a readable Parquet file ({exc})", source=str(path)) from None


class _TextReader:
    """Reads one delimited text file; knows its encoding, separator, header and columns."""

    def __init__(self, path: Path, sep, header, cols, encoding: str | None):
        self.path = path
        self.src = str(path)
        self.compression, self.member = detect_compression(path)
        head = self._head_bytes()
        self.head_bytes_per_line = len(head) / max(head.count(b"\n"), 1)
        text, self.encoding = decode_head(head, encoding, self.src)
        self.first_line = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
        if self.encoding == "latin-1" and encoding is None:
            log.warning("%s is not valid UTF-8; reading it as latin-1", self.src)
        found = sniff_layout(
            text,
            truncated=len(head) == SNIFF_BYTES,
            sep=sep,
            header=header,
            cols=cols,
            src=self.src,
        )
        self.sep, self.header, self.n_fields = found.sep, found.header, found.n_fields
        self.positions, self.dtypes, self.layout = found.positions, found.dtypes, found.layout
        self.split_on_one_char = found.split_on_one_char

    # -- opening ------------------------------------------------------------------------

    def _open_binary(self) -> io.BufferedIOBase:
        if self.compression == "zip":
            zf = zipfile.ZipFile(self.path)
            return zf.open(self.member)
        opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}.get(self.compression, open)
        return opener(self.path, "rb")

    def _head_bytes(self) -> bytes:
        try:
            with self._open_binary() as fh:
                return fh.read(SNIFF_BYTES)
        except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError, ValueError) as exc:
            raise DataFormatError(
                f"cannot read {self.compression} data ({exc})", source=self.src
            ) from None

    def _open_text(self, encoding: str) -> io.TextIOBase:
        return io.TextIOWrapper(self._open_binary(), encoding=encoding, newline="")

    def _split(self, line: str) -> list[str]:
        return split_fields(line, self.sep)

    # -- fast path ----------------------------------------------------------------------

    def read(self, scale: tuple[float, float] | None, duplicates: str) -> RatingData:
        """Parse the whole file (a small plain one without pandas, a big one with pyarrow where
        it reads the file as pandas would, else pandas); on a parse failure, diagnose the
        offending line."""
        data = self._read_plain(scale, duplicates)
        if data is not None:
            return data
        while True:
            try:
                data = self._read_arrow(self.encoding, scale, duplicates)
                return data if data is not None else self._read(self.encoding, scale, duplicates)
            except _SplitMismatch:
                self.split_on_one_char = False
            except UnicodeDecodeError:
                if not self.encoding.startswith("utf-8"):
                    raise DataFormatError(
                        f"cannot decode the file as {self.encoding}", source=self.src
                    ) from None
                log.warning("%s is not valid UTF-8; reading it as latin-1", self.src)
                self.encoding = "latin-1"

    def _read_plain(self, scale, duplicates: str) -> RatingData | None:
        """The file read without pandas when it is small and plain (`mfrec.ratings.plaintext`); None
        when it is not, or when anything in it is wrong: the pandas path then names it."""
        from mfrec.ratings.plaintext import read_plain

        t_pos = self.positions[3] if len(self.positions) > 3 else None
        if (
            self.compression is not None
            or self.path.stat().st_size > PLAIN_MAX_BYTES
            # Timestamps that the sniffed lines show as dates go to pandas' date parser.
            or (t_pos is not None and self.dtypes[t_pos] != "float64")
        ):
            return None
        columns = read_plain(
            self.path.read_bytes(),
            sep=self.sep,
            n_fields=self.n_fields,
            positions=self.positions,
            header=self.header,
            encoding=self.encoding,
        )
        if columns is None or (scale is not None and outside_scale(columns.ratings, scale).any()):
            return None
        stamps = columns.timestamps
        data = assemble_ratings(
            columns.users,
            columns.items,
            narrow_ratings(columns.ratings),
            None if stamps is None else epoch_seconds(stamps),
            IdMap.from_distinct_strings(columns.user_ids),
            IdMap.from_distinct_strings(columns.item_ids),
            scale=scale,
            duplicates=duplicates,
            layout=self.layout,
            src=self.src,
            line_of=lambda rows: self._lines_of_rows(self.encoding, rows),
        )
        log.info("loaded %s", data)
        return data

    # -- pyarrow's CSV parser ------------------------------------------------------------

    def _read_arrow(self, encoding: str, scale, duplicates: str) -> RatingData | None:
        """The file parsed by pyarrow in pieces (`mfrec.ratings.arrowcsv`); None when pyarrow
        would not read it as pandas' parser does, or fails where no line is to blame."""
        try:
            if not USE_ARROW:
                return None
            from mfrec.ratings import arrowcsv
        except ImportError:
            return None
        plan = arrowcsv.arrow_plan(
            sep=self.sep,
            header=self.header,
            n_fields=self.n_fields,
            positions=self.positions,
            dtypes=self.dtypes,
            split_on_one_char=self.split_on_one_char,
            encoding=encoding,
            first_line=self.first_line,
        )
        if plan is None:
            return None
        umap, imap = arrowcsv.IdNumbering(), arrowcsv.IdNumbering()
        columns = ChunkColumns(self._expected_rows(), timestamps=plan.timestamp is not None)
        try:
            with closing(arrowcsv.read_pieces(self._open_binary, plan, umap, imap)) as pieces:
                for piece in pieces:
                    r = piece.ratings
                    if not np.isfinite(r).all() or (
                        scale is not None and outside_scale(r, scale).any()
                    ):
                        raise arrowcsv.PieceRejected(piece.rows_before, "bad rating", parse=False)
                    columns.append(piece.users, piece.items, narrow_ratings(r), piece.timestamps)
        except arrowcsv.ArrowDeclined:
            return None
        except arrowcsv.PieceRejected as exc:
            if exc.parse and self.split_on_one_char:
                raise _SplitMismatch from None
            found = self._bad_line(encoding, exc.rows_before, scale)
            # A line with quotes may be part of a field that spans lines, which pandas reads.
            if found is None or (exc.parse and '"' in found[1]):
                return None
            raise found[0] from None
        maps = umap.to_idmap(), imap.to_idmap()
        del umap, imap  # the numbering dicts
        return self._finish(columns, *maps, encoding, scale, duplicates)

    # -- pandas' C parser ---------------------------------------------------------------

    def _read(self, encoding: str, scale, duplicates: str) -> RatingData:
        import pandas as pd

        umap = GrowingIdMap()
        imap = GrowingIdMap()
        u_pos, i_pos, r_pos = self.positions[:3]
        t_pos = self.positions[3] if len(self.positions) > 3 else None
        columns = ChunkColumns(self._expected_rows(), timestamps=t_pos is not None)
        rows_done = 0
        chunks = pandas_chunks(
            self._open_text(encoding),
            sep=self.sep,
            header=self.header,
            dtypes=self.dtypes,
            split_on_one_char=self.split_on_one_char,
            rows=CHUNK_ROWS,
        )
        while True:
            try:
                frame = next(chunks)
            except StopIteration:
                break
            except (ValueError, pd.errors.ParserError) as exc:
                if self.split_on_one_char:
                    raise _SplitMismatch from None
                raise self._diagnose(encoding, rows_done, str(exc)) from None
            frame = frame[~blank_rows(frame)]
            if frame.isna().to_numpy().any():
                if self.split_on_one_char:
                    raise _SplitMismatch
                raise self._diagnose(encoding, rows_done, "missing fields")
            u_codes, i_codes = umap.add(frame[u_pos]), imap.add(frame[i_pos])
            if u_codes is None or i_codes is None:
                raise self._diagnose(encoding, rows_done, "empty ID")
            r = frame[r_pos].to_numpy(dtype=np.float64)
            if not np.isfinite(r).all() or (scale is not None and outside_scale(r, scale).any()):
                raise self._diagnose(encoding, rows_done, "bad rating", scale)
            stamps = None
            if t_pos is not None:
                try:
                    stamps = parse_timestamps(frame[t_pos])
                except ValueError:
                    raise self._diagnose(encoding, rows_done, "bad timestamp") from None
            columns.append(u_codes, i_codes, narrow_ratings(r), stamps)
            rows_done += len(frame)
        return self._finish(columns, umap.to_idmap(), imap.to_idmap(), encoding, scale, duplicates)

    def _finish(
        self, columns: ChunkColumns, umap: IdMap, imap: IdMap, encoding: str, scale, duplicates
    ) -> RatingData:
        if columns.n == 0:
            what = "has a header line but no ratings" if self.header else "has no ratings"
            raise DataFormatError(f"the file {what}", source=self.src)
        release_arrow_memory()  # before the duplicate check needs memory
        data = assemble_ratings(
            *columns.finish(),
            umap,
            imap,
            scale=scale,
            duplicates=duplicates,
            layout=self.layout,
            src=self.src,
            line_of=lambda rows: self._lines_of_rows(encoding, rows),
        )
        log.info("loaded %s", data)
        return data

    def _expected_rows(self) -> int:
        """About how many rows the file holds, from its size and the sniffed lines' length
        (a compressed file's text size is unknown: one chunk, the columns grow from there)."""
        if self.compression is not None:
            return CHUNK_ROWS
        size = self.path.stat().st_size
        return int(size / self.head_bytes_per_line * ROWS_MARGIN) + 1024

    # -- slow path: name the line -------------------------------------------------------

    def _data_lines(self, encoding: str) -> Iterator[tuple[int, str]]:
        """(physical line number, text) of each data line, as the fast path counts them."""
        with self._open_text(encoding) as fh:
            seen_header = not self.header
            for lineno, line in enumerate(fh, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                if not seen_header:
                    seen_header = True
                    continue
                yield lineno, line

    def _lines_of_rows(self, encoding: str, rows: Sequence[int]) -> list[int]:
        wanted = {r: None for r in rows}
        for k, (lineno, _) in enumerate(self._data_lines(encoding)):
            if k in wanted:
                wanted[k] = lineno
                if all(v is not None for v in wanted.values()):
                    break
        return [wanted[r] for r in rows]

    def _diagnose(
        self, encoding: str, start_row: int, fallback: str, scale=None
    ) -> DataFormatError:
        found = self._bad_line(encoding, start_row, scale)
        if found is not None:
            return found[0]
        return DataFormatError(f"cannot parse the file ({fallback})", source=self.src)

    def _bad_line(self, encoding: str, start_row: int, scale) -> tuple[DataFormatError, str] | None:
        """(what is wrong with the first bad data line from `start_row` on, that line), or None
        when every line looks right."""
        for k, (lineno, line) in enumerate(self._data_lines(encoding)):
            if k >= start_row:
                problem = self._line_problem(self._split(line), scale)
                if problem:
                    return DataFormatError(problem, source=self.src, line=lineno), line
        return None

    def _line_problem(self, fields: list[str], scale) -> str | None:
        if len(fields) != self.n_fields:
            return f"expected {self.n_fields} columns, found {len(fields)}"
        for pos, role in zip(self.positions[:2], ("user", "item"), strict=True):
            if not fields[pos].strip():
                return f"empty {role} ID"
        problem = rating_problem(fields[self.positions[2]].strip(), scale)
        if problem is None and len(self.positions) > 3:
            import pandas as pd

            stamp = fields[self.positions[3]]
            try:
                parse_timestamps(pd.Series([stamp]))
            except ValueError:
                return f"timestamp {stamp!r} is neither a number nor a date"
        return problem


class _SplitMismatch(Exception):
    """The fast split of a repeated-character separator met a line it cannot split."""


def _from_frame(frame: pd.DataFrame, cols, scale, duplicates: str, name: str) -> RatingData:
    import pandas as pd

    if len(frame.columns) == 0 or len(frame) == 0:
        raise DataFormatError("no ratings", source=name)
    names = [str(c) for c in frame.columns]
    positions = pick_columns(names, len(names), cols, name, None)
    sub = frame.iloc[:, positions]
    layout = Layout(sep=",", header=True, names=tuple(names[p] for p in positions))
    for role, k in (("user", 0), ("item", 1)):
        missing = sub.iloc[:, k].isna().to_numpy()
        if missing.any():
            row = int(np.argmax(missing))
            raise DataFormatError(f"row {row}: missing {role} ID", source=name)
    r = pd.to_numeric(sub.iloc[:, 2], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(r) | (outside_scale(r, scale) if scale is not None else False)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataFormatError(
            f"row {row}: " + (rating_problem(str(sub.iloc[row, 2]), scale) or "bad rating"),
            source=name,
        )
    stamps = None
    if len(positions) > 3:
        try:
            stamps = parse_timestamps(sub.iloc[:, 3])
        except ValueError:
            raise DataFormatError("timestamps are neither numbers nor dates", source=name) from None
    u, umap = IdMap.factorize(id_strings(sub.iloc[:, 0]))
    i, imap = IdMap.factorize(id_strings(sub.iloc[:, 1]))
    return assemble_ratings(
        u,
        i,
        r,
        stamps,
        umap,
        imap,
        scale=scale,
        duplicates=duplicates,
        layout=layout,
        src=name,
        line_of=None,
    )
