"""Numbers and tables as text, for the CLI and the reports (one home for every table)."""

from __future__ import annotations

from collections.abc import Sequence


def number(x: float) -> str:
    """A number without a needless ``.0`` (4 significant digits otherwise)."""
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def fixed(value: float | None, digits: int = 4) -> str:
    """`value` with `digits` decimals, or ``n/a`` for None."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def label_row(label: str, value: str, width: int = 14, indent: str = "") -> str:
    """One ``label  value`` line, labels padded to `width`."""
    return f"{indent}{label:<{width}}{value}"


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as aligned text: the first column left-aligned, the others right."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if c == 0 else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    """A table with a header and a rule; `align` has one ``l`` or ``r`` per column."""
    widths = [max(len(r[k]) for r in [headers, *rows]) for k in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if a == "r" else cell.ljust(w)
            for cell, w, a in zip(cells, widths, align, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    """The same table in Markdown (``r`` columns right-aligned)."""
    rule = ["---:" if a == "r" else "---" for a in align]
    # A lone * (a mark in a cell) must not start emphasis.
    body = [[cell.replace("*", "\\*") for cell in cells] for cells in rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [headers, rule, *body])
