"""Load a ratings file or DataFrame into RatingData: integer indices, ID maps and the scale.

A small, plain text file is split with numpy (`mfrec.ratings.plaintext`): importing pandas would
take
longer than reading it. Anything else, and anything the plain reader declines, goes to pandas'
C parser, read in chunks whose IDs are numbered as they arrive, so peak memory stays near the
final arrays. Anything that parser rejects is handed to a slow, line-by-line diagnosis whose
only job is to name the line and say what is wrong with it.
"""

from __future__ import annotations

import bz2
import csv
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from mfrec.errors import DataFormatError
from mfrec.ratings.idmap import IdMap
from mfrec.ratings.ratingdata import Layout, RatingData

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

Column = str | int
DUPLICATE_POLICIES = ("last", "mean", "error")
ROLES = ("user", "item", "rating", "timestamp")
# Header names recognised for each role when columns are not given (compared lower-case,
# without "_", "-" and spaces).
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
CHUNK_ROWS = 1 << 20
#: Headroom on the rows a file's size suggests: lines a little shorter than the sniffed ones
#: then need no reallocation (unused capacity is never touched, so it costs no memory).
ROWS_MARGIN = 1.05
SNIFF_BYTES = 1 << 16
#: Plain text files up to this size are split with numpy (`mfrec.ratings.plaintext`), without paying
#: for pandas' import: 5x faster than pandas on 4 MB, 2x on 16 MB, 1.3x on 32 MB (MovieLens 1M
#: is 24 MB). About 64 MB pandas' C parser catches up, and needs less memory.
PLAIN_MAX_BYTES = 32 << 20
#: Up to this many ratings (more than a `PLAIN_MAX_BYTES` file holds), duplicate pairs are
#: found by a stable sort of their keys, with numpy alone; above it by the compiled counting
#: sort and pandas' hashing, which need less memory (the same answers either way).
SORT_MAX_ROWS = 8 << 20


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
    sep = p.sep if sep is None else _normalize_sep(sep)
    header = p.header if header is None else header
    cols = p.columns if columns is None else _parse_columns(columns)

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


def _normalize_sep(sep: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "space": " ", "whitespace": " "}
    sep = named.get(sep.lower(), sep)
    if sep == "":
        raise DataFormatError("sep='': the separator cannot be empty")
    return " " if sep.isspace() and sep != "\t" else sep


def _parse_columns(columns: Sequence[Column] | str) -> tuple[Column, ...]:
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


def _norm_name(name: str) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def _pick_columns(
    names: list[str] | None, n_fields: int, cols: tuple[Column, ...] | None, src: str, rows
) -> list[int]:
    """Turn the requested columns into 0-based positions: [user, item, rating(, timestamp)]."""
    if cols is not None:
        positions = []
        for c in cols:
            if isinstance(c, int):
                if c > n_fields:
                    raise DataFormatError(
                        f"column {c} requested but lines have only {n_fields} columns",
                        source=src,
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
    if names is not None:
        normalized = [_norm_name(n) for n in names]
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
    if n_fields >= 4 and rows and all(_is_number(r[3]) for r in rows if len(r) > 3):
        positions.append(3)
    return positions


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _TextReader:
    """Reads one delimited text file; knows its encoding, separator, header and columns."""

    def __init__(self, path: Path, sep, header, cols, encoding: str | None):
        self.path = path
        self.src = str(path)
        self.compression, self.member = _compression(path)
        head = self._head_bytes()
        self.head_bytes_per_line = len(head) / max(head.count(b"\n"), 1)
        if not head.strip():
            raise DataFormatError("the file is empty", source=self.src)
        if _looks_binary(head):
            raise DataFormatError(
                "this is not a text ratings file (it contains binary data)", source=self.src
            )
        self.encoding = encoding or _guess_encoding(head)
        if self.encoding == "latin-1" and encoding is None:
            log.warning("%s is not valid UTF-8; reading it as latin-1", self.src)
        text = head.decode(self.encoding, errors="replace")
        lines = text.splitlines()
        if len(head) == SNIFF_BYTES and len(lines) > 1:
            lines.pop()  # the sample may end inside this line
        lines = [ln for ln in lines if ln.strip()]
        self.sep = sep or _sniff_sep(lines, self.src)
        first = self._split(lines[0])
        if header is None:
            header = _looks_like_header(first, cols)
        self.header = header
        names = [f.strip().strip('"') for f in first] if header else None
        sample = [self._split(ln) for ln in lines[1 if header else 0 :][:50]]
        self.n_fields = len(first) if header or not sample else _mode([len(f) for f in sample])
        # "::" is one character repeated: splitting on ":" and dropping the empty fields
        # between keeps the fast C parser. An ID holding ":" changes the field count, which
        # the parser reports; the read is then redone with the (slower) python engine.
        single = self.sep[0]
        self.split_on_one_char = (
            len(self.sep) > 1
            and set(self.sep) == {single}
            and all(ln.count(single) == len(self.sep) * (self.n_fields - 1) for ln in lines)
        )
        self.positions = _pick_columns(names, self.n_fields, cols, self.src, sample)
        # Numeric columns are parsed by the C parser itself: far faster than converting strings.
        self.dtypes = {j: str for j in range(self.n_fields)}
        self.dtypes[self.positions[2]] = "float64"
        if len(self.positions) > 3 and all(
            _is_number(r[self.positions[3]]) for r in sample if len(r) == self.n_fields
        ):
            self.dtypes[self.positions[3]] = "float64"
        chosen = [names[p] for p in self.positions] if names else list(ROLES)
        self.layout = Layout(
            sep=self.sep, header=bool(header), names=tuple(chosen[: len(self.positions)])
        )

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
        if self.sep == " ":
            if '"' not in line:
                return line.split()
            return [
                q.replace('""', '"') if q else bare for q, bare in _QUOTED_OR_BARE.findall(line)
            ]
        if len(self.sep) == 1:
            return next(csv.reader([line], delimiter=self.sep, skipinitialspace=True), [])
        return line.split(self.sep)

    # -- fast path ----------------------------------------------------------------------

    def read(self, scale: tuple[float, float] | None, duplicates: str) -> RatingData:
        """Parse the whole file (a small plain one without pandas); on any parse failure,
        diagnose the offending line."""
        data = self._read_plain(scale, duplicates)
        if data is not None:
            return data
        try:
            return self._read(self.encoding, scale, duplicates)
        except _SplitMismatch:
            self.split_on_one_char = False
            return self.read(scale, duplicates)
        except UnicodeDecodeError:
            if self.encoding.startswith("utf-8"):
                log.warning("%s is not valid UTF-8; reading it as latin-1", self.src)
                self.encoding = "latin-1"
                return self._read(self.encoding, scale, duplicates)
            raise DataFormatError(
                f"cannot decode the file as {self.encoding}", source=self.src
            ) from None

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
        if columns is None or (scale is not None and _outside(columns.ratings, scale).any()):
            return None
        stamps = columns.timestamps
        data = _assemble(
            columns.users,
            columns.items,
            _narrow(columns.ratings),
            None if stamps is None else _epoch_seconds(stamps),
            IdMap._from_distinct_strings(columns.user_ids),
            IdMap._from_distinct_strings(columns.item_ids),
            scale,
            duplicates,
            self.layout,
            self.src,
            line_of=lambda rows: self._lines_of_rows(self.encoding, rows),
        )
        log.info("loaded %s", data)
        return data

    # -- pandas' C parser ---------------------------------------------------------------

    def _chunks(self, encoding: str) -> Iterator[pd.DataFrame]:
        import pandas as pd

        n = self.n_fields
        kw: dict = dict(
            header=None,
            skiprows=1 if self.header else 0,
            keep_default_na=False,
            na_values={},
            skip_blank_lines=True,
            chunksize=CHUNK_ROWS,
            engine="c",
            dtype=self.dtypes,
            names=list(range(n)),
        )
        if self.sep == " ":
            kw["sep"] = r"\s+"
        elif len(self.sep) == 1:
            kw.update(sep=self.sep, skipinitialspace=True)
        elif self.split_on_one_char:
            kw.update(sep=self.sep[0], names=list(range(2 * n - 1)))
            kw["dtype"] = {2 * j: t for j, t in self.dtypes.items()}
            kw["usecols"] = [2 * j for j in range(n)]
        else:
            kw.update(sep=re.escape(self.sep), engine="python")
        with self._open_text(encoding) as fh:
            for frame in pd.read_csv(fh, **kw):
                if "usecols" in kw:
                    frame.columns = range(n)
                yield frame

    def _read(self, encoding: str, scale, duplicates: str) -> RatingData:
        import pandas as pd

        umap = _GrowingMap()
        imap = _GrowingMap()
        u_pos, i_pos, r_pos = self.positions[:3]
        t_pos = self.positions[3] if len(self.positions) > 3 else None
        columns = _Columns(self._expected_rows(), timestamps=t_pos is not None)
        rows_done = 0
        chunks = self._chunks(encoding)
        while True:
            try:
                frame = next(chunks)
            except StopIteration:
                break
            except (ValueError, pd.errors.ParserError) as exc:
                if self.split_on_one_char:
                    raise _SplitMismatch from None
                raise self._diagnose(encoding, rows_done, str(exc)) from None
            frame = frame[~_blank_rows(frame)]
            if frame.isna().to_numpy().any():
                if self.split_on_one_char:
                    raise _SplitMismatch
                raise self._diagnose(encoding, rows_done, "missing fields")
            u_codes, i_codes = umap.add(frame[u_pos]), imap.add(frame[i_pos])
            if u_codes is None or i_codes is None:
                raise self._diagnose(encoding, rows_done, "empty ID")
            r = frame[r_pos].to_numpy(dtype=np.float64)
            if not np.isfinite(r).all() or (scale is not None and _outside(r, scale).any()):
                raise self._diagnose(encoding, rows_done, "bad rating", scale)
            stamps = None
            if t_pos is not None:
                try:
                    stamps = _parse_timestamps(frame[t_pos])
                except ValueError:
                    raise self._diagnose(encoding, rows_done, "bad timestamp") from None
            columns.append(u_codes, i_codes, _narrow(r), stamps)
            rows_done += len(frame)
        if rows_done == 0:
            what = "has a header line but no ratings" if self.header else "has no ratings"
            raise DataFormatError(f"the file {what}", source=self.src)
        data = _assemble(
            *columns.finish(),
            umap.to_idmap(),
            imap.to_idmap(),
            scale,
            duplicates,
            self.layout,
            self.src,
            line_of=lambda rows: self._lines_of_rows(encoding, rows),
        )
        _release_arrow_memory()
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
        import pandas as pd

        u_pos, i_pos, r_pos = self.positions[:3]
        t_pos = self.positions[3] if len(self.positions) > 3 else None
        for k, (lineno, line) in enumerate(self._data_lines(encoding)):
            if k < start_row:
                continue
            fields = self._split(line)
            if len(fields) != self.n_fields:
                return DataFormatError(
                    f"expected {self.n_fields} columns, found {len(fields)}",
                    source=self.src,
                    line=lineno,
                )
            for pos, role in ((u_pos, "user"), (i_pos, "item")):
                if not fields[pos].strip():
                    return DataFormatError(f"empty {role} ID", source=self.src, line=lineno)
            problem = _rating_problem(fields[r_pos].strip(), scale)
            if problem:
                return DataFormatError(problem, source=self.src, line=lineno)
            if t_pos is not None:
                try:
                    _parse_timestamps(pd.Series([fields[t_pos]]))
                except ValueError:
                    return DataFormatError(
                        f"timestamp {fields[t_pos]!r} is neither a number nor a date",
                        source=self.src,
                        line=lineno,
                    )
        return DataFormatError(f"cannot parse the file ({fallback})", source=self.src)


def _blank_rows(frame: pd.DataFrame) -> NDArray[np.bool_]:
    """Lines holding only whitespace: pandas keeps them as rows, the diagnosis skips them."""
    rest_missing = frame.iloc[:, 1:].isna().all(axis=1).to_numpy()
    if not rest_missing.any():
        return rest_missing
    return rest_missing & (frame.iloc[:, 0].fillna("").str.strip() == "").to_numpy()


def _rating_problem(text: str, scale) -> str | None:
    try:
        value = float(text)
    except ValueError:
        return f"rating {text!r} is not a number" if text else "rating is missing"
    if math.isnan(value):
        return f"rating {text!r} is not a number (NaN)"
    if math.isinf(value):
        return f"rating {text!r} is infinite"
    if scale is not None and _outside(np.array([value]), scale)[0]:
        return f"rating {text} is outside the scale {scale[0]:g}..{scale[1]:g}"
    return None


def _outside(r: NDArray[np.float64], scale: tuple[float, float]) -> NDArray[np.bool_]:
    return (r < scale[0]) | (r > scale[1])


def _parse_timestamps(col: pd.Series) -> NDArray[np.int64]:
    """Numbers (epoch seconds or any integer clock) as int64; otherwise dates, as epoch seconds."""
    import pandas as pd

    nums = col if pd.api.types.is_float_dtype(col) else pd.to_numeric(col, errors="coerce")
    if not nums.isna().any():
        return _epoch_seconds(nums.to_numpy(dtype=np.float64))
    dates = pd.to_datetime(col, errors="raise", utc=True, format="mixed")
    seconds = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.int64)


def _epoch_seconds(numbers: NDArray[np.float64]) -> NDArray[np.int64]:
    """Numeric timestamps as whole int64 seconds (or ticks of whatever clock they count)."""
    return np.floor(numbers).astype(np.int64)


class _SplitMismatch(Exception):
    """The fast split of a repeated-character separator met a line it cannot split."""


_QUOTED_OR_BARE = re.compile(r'"((?:[^"]|"")*)"|(\S+)')


class _GrowingMap:
    """Numbers IDs chunk by chunk in order of first appearance (pandas hashing, no Python loop
    per rating)."""

    def __init__(self):
        import pandas as pd

        self.index = pd.Index([], dtype=object)

    def add(self, ids: pd.Series) -> NDArray[np.int32] | None:
        """Indices of `ids`, numbering new ones; None when an ID is empty."""
        import pandas as pd

        codes, uniques = pd.factorize(ids, sort=False)
        # Surrounding whitespace is not part of an ID; stripping the few distinct values is
        # much cheaper than stripping every row.
        stripped = pd.Index(uniques).str.strip()
        if (stripped == "").any():
            return None
        if not stripped.equals(pd.Index(uniques)):
            merged, stripped = pd.factorize(stripped, sort=False)
            codes = merged[codes]
        uniques = stripped
        pos = self.index.get_indexer(uniques)
        new = pos < 0
        if new.any():
            pos[new] = len(self.index) + np.arange(int(new.sum()))
            self.index = self.index.append(pd.Index(np.asarray(uniques[new], dtype=object)))
        return pos.astype(np.int32)[codes]

    def to_idmap(self) -> IdMap:
        return IdMap(self.index.to_numpy(dtype=object))


def _compression(path: Path) -> tuple[str | None, str | None]:
    """Detect compression from the magic bytes, not the name; for zip, pick the one member."""
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


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    control = sum(1 for b in head[:4096] if b < 32 and b not in (9, 10, 13))
    return control > 0.01 * min(len(head), 4096)


def _guess_encoding(head: bytes) -> str:
    # Cut at most 3 bytes of a multi-byte character that the sample may end inside.
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
            return "utf-8-sig"
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:
                break
    return "latin-1"


def _sniff_sep(lines: list[str], src: str) -> str:
    # A separator must appear on every sampled line: one malformed line should be reported as
    # such, not make the separator undetectable. Too few columns is reported by the caller.
    sample = lines[:50]
    for cand in ("::", "\t", ",", ";", "|"):
        if min(ln.count(cand) for ln in sample) >= 1:
            return cand
    if _mode([len(ln.split()) for ln in sample]) >= 2:
        return " "
    raise DataFormatError(
        "cannot tell the column separator from the first lines; give --sep", source=src
    )


def _mode(values: list[int]) -> int:
    return max(set(values), key=values.count)


def _looks_like_header(first: list[str], cols) -> bool:
    if cols is not None and any(isinstance(c, str) for c in cols):
        return True
    r_pos = cols[2] - 1 if cols is not None else 2
    return r_pos < len(first) and not _is_number(first[r_pos].strip())


def _from_frame(frame: pd.DataFrame, cols, scale, duplicates: str, name: str) -> RatingData:
    import pandas as pd

    if len(frame.columns) == 0 or len(frame) == 0:
        raise DataFormatError("no ratings", source=name)
    names = [str(c) for c in frame.columns]
    positions = _pick_columns(names, len(names), cols, name, None)
    sub = frame.iloc[:, positions]
    layout = Layout(sep=",", header=True, names=tuple(names[p] for p in positions))
    for role, k in (("user", 0), ("item", 1)):
        missing = sub.iloc[:, k].isna().to_numpy()
        if missing.any():
            row = int(np.argmax(missing))
            raise DataFormatError(f"row {row}: missing {role} ID", source=name)
    r = pd.to_numeric(sub.iloc[:, 2], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(r) | (_outside(r, scale) if scale is not None else False)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataFormatError(
            f"row {row}: " + (_rating_problem(str(sub.iloc[row, 2]), scale) or "bad rating"),
            source=name,
        )
    stamps = None
    if len(positions) > 3:
        try:
            stamps = _parse_timestamps(sub.iloc[:, 3])
        except ValueError:
            raise DataFormatError("timestamps are neither numbers nor dates", source=name) from None
    u, umap = IdMap.factorize(_id_strings(sub.iloc[:, 0]))
    i, imap = IdMap.factorize(_id_strings(sub.iloc[:, 1]))
    return _assemble(u, i, r, stamps, umap, imap, scale, duplicates, layout, name, line_of=None)


def _id_strings(col: pd.Series) -> NDArray[np.object_]:
    """IDs as strings; whole-number floats (pandas' NaN-padded ints) lose the ``.0``."""
    import pandas as pd

    if pd.api.types.is_float_dtype(col) and (col % 1 == 0).all():
        col = col.astype(np.int64)
    return col.astype(str).str.strip().to_numpy(dtype=object)


def _release_arrow_memory() -> None:
    """Hand back the memory Arrow's pool kept for reuse after the parse.

    pandas holds the ID columns as Arrow strings; the pool keeps a chunk's worth of freed
    blocks (about 100 MB with 1M-row chunks) for the next allocation, which never comes.
    """
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()


class _Columns:
    """The parsed columns, written chunk by chunk into arrays that are allocated once.

    Keeping the chunks and concatenating them at the end needs the final arrays twice. These
    arrays are allocated for the expected rows up front (pages never written cost no memory),
    grow by half when the guess was short, and are trimmed in place at the end. Ratings stay
    float32 while every chunk is exact in float32 (`_narrow`), as concatenating would give.
    """

    def __init__(self, capacity: int, timestamps: bool):
        self.n = 0
        self.users = np.empty(capacity, np.int32)
        self.items = np.empty(capacity, np.int32)
        self.ratings = np.empty(capacity, np.float32)
        self.stamps = np.empty(capacity, np.int64) if timestamps else None

    def append(self, users, items, ratings, stamps) -> None:
        """Add one chunk's rows."""
        end = self.n + len(users)
        if end > len(self.users):
            self._reallocate(max(end, len(self.users) * 3 // 2), self.ratings.dtype)
        if ratings.dtype == np.float64 and self.ratings.dtype == np.float32:
            self._reallocate(len(self.users), np.float64)
        self.users[self.n : end] = users
        self.items[self.n : end] = items
        self.ratings[self.n : end] = ratings
        if self.stamps is not None:
            self.stamps[self.n : end] = stamps
        self.n = end

    def _reallocate(self, capacity: int, ratings_dtype: type[np.floating]) -> None:
        # One column at a time, so that at most one column exists twice.
        for name in ("users", "items", "ratings", "stamps"):
            old = getattr(self, name)
            if old is None:
                continue
            new = np.empty(capacity, ratings_dtype if name == "ratings" else old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def finish(self) -> tuple[NDArray, NDArray, NDArray, NDArray | None]:
        """(users, items, ratings, timestamps or None), trimmed to the rows read."""
        out = []
        for name in ("users", "items", "ratings", "stamps"):
            column = getattr(self, name)
            setattr(self, name, None)
            if column is not None:
                # In place (realloc shrinks without copying); nothing else refers to it.
                column.resize(self.n, refcheck=False)
            out.append(column)
        return tuple(out)


def _narrow(ratings: NDArray[np.floating]) -> NDArray[np.floating]:
    """float32 when that is exact (1-5, half stars, 1-10 ...): half the memory; else float64."""
    narrow = ratings.astype(np.float32)
    return narrow if np.array_equal(narrow, ratings) else ratings.astype(np.float64, copy=False)


def _pair_keys(users: NDArray, items: NDArray, n_items: int) -> NDArray[np.int64]:
    key = users.astype(np.int64)
    key *= max(n_items, 1)
    key += items
    return key


def _has_duplicates(users: NDArray, items: NDArray, n_users: int, n_items: int) -> bool:
    # Each user's items grouped by a counting sort: one int32 per rating, where sorting
    # (user, item) keys needs an int64 per rating, or a hash table far more.
    from mfrec.kernels.group import group_by_row, has_repeats

    indptr, grouped = group_by_row(users, items, n_users)
    return has_repeats(indptr, grouped, n_items)


def _assemble(
    users,
    items,
    ratings,
    stamps,
    umap,
    imap,
    scale,
    duplicates,
    layout,
    src,
    line_of,
) -> RatingData:
    """RatingData from parsed columns, duplicates resolved (small data is checked by sorting,
    which needs neither pandas nor the compiled kernels: `SORT_MAX_ROWS`)."""
    if len(users) <= SORT_MAX_ROWS:
        key = _pair_keys(users, items, len(imap))
        dup = _duplicated(key, keep=False)
        found = dup.any()
    else:
        found = _has_duplicates(users, items, len(umap), len(imap))
        if found:
            key = _pair_keys(users, items, len(imap))
            dup = _duplicated(key, keep=False)
    if found:
        users, items, ratings, stamps = _resolve_duplicates(
            key,
            dup,
            users,
            items,
            ratings,
            stamps,
            umap,
            imap,
            duplicates,
            src,
            line_of,
        )
    if scale is None:
        scale = (float(ratings.min()), float(ratings.max()))
    return RatingData(
        users=np.ascontiguousarray(users, dtype=np.int32),
        items=np.ascontiguousarray(items, dtype=np.int32),
        ratings=np.ascontiguousarray(ratings),
        user_map=umap,
        item_map=imap,
        scale=scale,
        timestamps=stamps,
        layout=layout,
        source=src,
    )


def _resolve_duplicates(key, dup, users, items, ratings, stamps, umap, imap, policy, src, line_of):
    if policy == "error":
        rows = np.flatnonzero(dup)
        first = rows[0]
        second = rows[1:][key[rows[1:]] == key[first]][0]
        u, i = umap.to_ids([users[first]])[0], imap.to_ids([items[first]])[0]
        if line_of is not None:
            a, b = line_of([int(first), int(second)])
            where = f"lines {a} and {b}"
        else:
            where = f"rows {first} and {second}"
        raise DataFormatError(
            f"user {u!r} rated item {i!r} twice ({where}); choose --duplicates last or mean",
            source=src,
        )
    if policy == "last":
        keep = ~_duplicated(key, keep="last")
        sel = np.flatnonzero(keep)
        return users[sel], items[sel], ratings[sel], None if stamps is None else stamps[sel]
    codes, n_pairs = _factorize_keys(key)
    counts = np.bincount(codes)
    mean = np.bincount(codes, weights=ratings) / counts
    first = np.full(n_pairs, len(key), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(key)))
    new_stamps = None
    if stamps is not None:
        new_stamps = np.full(n_pairs, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(new_stamps, codes, stamps)
    return users[first], items[first], mean, new_stamps


# pandas hashes the keys, in O(n), for big data; small data (`SORT_MAX_ROWS`) is sorted
# instead, with the same answers, where importing pandas would take longer than the sort.


def _duplicated(key: NDArray[np.int64], keep: str | bool) -> NDArray[np.bool_]:
    """``pd.Series(key).duplicated(keep=keep)`` for keep ``"last"`` or False."""
    if len(key) > SORT_MAX_ROWS:
        import pandas as pd

        return pd.Series(key).duplicated(keep=keep).to_numpy()
    order, new_group, group = _sorted_groups(key)
    if keep is False:
        repeated = (np.bincount(group) > 1)[group]
    else:
        # The stable sort keeps each pair's rows in file order: the last is before a new group.
        repeated = ~np.append(new_group[1:], True)
    out = np.empty(len(key), dtype=bool)
    out[order] = repeated
    return out


def _factorize_keys(key: NDArray[np.int64]) -> tuple[NDArray[np.intp], int]:
    """``pd.factorize(key, sort=False)``: codes in order of first appearance, and their count."""
    if len(key) > SORT_MAX_ROWS:
        import pandas as pd

        codes, uniques = pd.factorize(key, sort=False)
        return codes, len(uniques)
    order, new_group, group = _sorted_groups(key)
    first_rows = order[new_group]  # the stable sort puts each pair's first row first
    code_of_group = np.empty(len(first_rows), dtype=np.intp)
    code_of_group[np.argsort(first_rows)] = np.arange(len(first_rows))
    codes = np.empty(len(key), dtype=np.intp)
    codes[order] = code_of_group[group]
    return codes, len(first_rows)


def _sorted_groups(key: NDArray[np.int64]) -> tuple[NDArray[np.intp], NDArray[np.bool_], NDArray]:
    """(stable sort order of `key`, whether each sorted key starts a new group, its group)."""
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    new_group = np.empty(len(key), dtype=bool)
    new_group[:1] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=new_group[1:])
    return order, new_group, np.cumsum(new_group) - 1
