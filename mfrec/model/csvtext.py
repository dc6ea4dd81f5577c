"""Columns as CSV, byte for byte what pandas' ``DataFrame.to_csv`` writes, several times faster
for the million-row outputs of `mfrec predict` and `mfrec recommend --all-users`.

pandas formats each float through a Python function with a missing-value check per value and
hands every row to the csv module. Here a chunk of a column is formatted by one library call
(``%`` formatting or ``repr`` mapped over a list of floats), fields are quoted only where the
csv module would quote them (pandas' default ``QUOTE_MINIMAL``; the csv module itself decides)
and lines are joined with ``str.join``. Columns this does not cover exactly (anything but
floats, integers and strings; floats that pandas would switch to its scientific display format)
are written by pandas itself, so the output never differs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Rows formatted at a time: the text of one chunk is held at once, not the whole output.
CHUNK_ROWS = 100_000
#: Characters that can make the csv module quote a field (Python 3.11 quotes ``,`` ``"`` and
#: ``\n``; later versions ``\r`` too): fields holding one are passed to the csv module.
QUOTE_CANDIDATES = (",", '"', "\n", "\r")


def write_csv(
    write: Callable[[str], Any],
    columns: Mapping[str, ArrayLike],
    *,
    header: bool = True,
    float_format: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> None:
    """Write `columns` (name -> 1-D array, all of one length) as CSV text through `write`, in
    chunks, exactly as ``DataFrame(columns).to_csv(index=False, header=header,
    float_format=float_format, lineterminator="\\n")`` would."""
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    # One column goes to pandas: the csv module quotes a row made of one empty field.
    if len(arrays) < 2 or not all(_fast_column(a, float_format) for a in arrays.values()):
        import pandas as pd

        write(
            pd.DataFrame(arrays).to_csv(
                index=False, header=header, float_format=float_format, lineterminator="\n"
            )
        )
        return
    n = len(next(iter(arrays.values())))
    if any(len(a) != n for a in arrays.values()):
        raise ValueError("write_csv: columns of different lengths")
    if header:
        write(",".join(csv_fields([str(name) for name in arrays])) + "\n")
    for start in range(0, n, chunk_rows):
        chunk = [_fields(a[start : start + chunk_rows], float_format) for a in arrays.values()]
        write(csv_lines(chunk))


def _fast_column(values: NDArray, float_format: str | None) -> bool:
    """Whether `_fields` writes this column as pandas does."""
    kind = values.dtype.kind
    if values.ndim != 1:
        return False
    if kind == "f":  # float64: pandas writes a float32 column with float32's own repr
        return values.dtype == np.float64 and (
            float_format is None or not _pandas_switches_format(values)
        )
    if kind == "O":  # str only (pandas writes None and NaN as empty fields)
        return set(map(type, values.tolist())) <= {str}
    return kind in "iuU"


def _fields(values: NDArray, float_format: str | None) -> list[str]:
    kind = values.dtype.kind
    if kind == "f":
        return float_fields(values, float_format)
    if kind in "iu":
        return _int_fields(values)
    return csv_fields(values.tolist())


def _int_fields(values: NDArray[np.integer]) -> list[str]:
    """Integers as text; a narrow range (ranks, counts) through a table of its texts."""
    if len(values) == 0:
        return []
    low, high = int(values.min()), int(values.max())
    if high - low >= 4 * len(values) or high - low > 1 << 16:
        return list(map(str, values.tolist()))
    texts = np.array(list(map(str, range(low, high + 1))), dtype=object)
    wide = values.astype(np.int64) if values.dtype.itemsize < 8 else values
    return texts[wide - wide.min()].tolist()  # exact: the differences are small


def csv_fields(values: list[str]) -> list[str]:
    """Strings as CSV fields: quoted, with quotes doubled, exactly where pandas' writer (the csv
    module with ``QUOTE_MINIMAL``) quotes them; the others unchanged."""
    joined = "".join(values)
    if not any(c in joined for c in QUOTE_CANDIDATES):
        return values
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def field(value: str) -> str:
        if not any(c in value for c in QUOTE_CANDIDATES):
            return value
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([value])  # never empty here, so quoted only when a character needs it
        return buffer.getvalue()[:-1]

    return [field(v) for v in values]


def float_fields(values: NDArray[np.floating], float_format: str | None = None) -> list[str]:
    """Floats as ``to_csv`` writes them outside its scientific display switch: NaN as an
    empty field; others as ``float_format % value``, or without a format as numpy's ``str``
    of a float64 (the shortest repr: ``1.0``, ``0.0001``, ``1e-05``)."""
    values = np.asarray(values, dtype=np.float64)
    formatter = float.__repr__ if float_format is None else float_format.__mod__
    texts = list(map(formatter, values.tolist()))
    for k in np.flatnonzero(np.isnan(values)).tolist():
        texts[k] = ""
    return texts


def _pandas_switches_format(values: NDArray[np.floating]) -> bool:
    """Whether pandas may write a column with `float_format` in its scientific display
    format instead: it does, chunk by chunk, for a chunk holding a nonzero value below
    10**-precision, or a value above 1e6 and a long text (pandas' FloatArrayFormatter).
    This errs towards yes."""
    import pandas as pd

    magnitude = np.abs(values[~np.isnan(values)])
    small = 10.0 ** -int(pd.get_option("display.precision"))
    return bool(((magnitude < small) & (magnitude > 0)).any() or (magnitude > 1e6).any())


def csv_lines(columns: Sequence[Sequence[str]]) -> str:
    """Lines of CSV from columns of fields (already formatted and quoted), each line ending in
    ``\\n``; "" for no rows."""
    text = "\n".join(map(",".join, zip(*columns, strict=True)))
    return text + "\n" if columns and len(columns[0]) else ""
