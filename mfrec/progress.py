"""A one-line progress bar on stderr, shown only when someone is watching a terminal."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO


def _count(value: float) -> str:
    return f"{value:g}"


class ProgressBar:
    """Redraw ``label [####....]  40% 4/10 status`` in place as work advances.

    Silent unless `enabled` and the stream is a terminal, so pipes, logs and tests stay clean.
    Redraws are throttled to one per `min_interval` seconds, except the final one.

    Parameters
    ----------
    total
        Amount of work when known (epochs, bytes); None shows only the count.
    label
        Shown first on the line.
    fmt
        Formats the done and total amounts (e.g. as megabytes).
    """

    width = 20

    def __init__(
        self,
        total: float | None,
        label: str = "",
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        fmt: Callable[[float], str] = _count,
        min_interval: float = 0.1,
    ):
        self.stream = sys.stderr if stream is None else stream
        self.total = total
        self.label = label
        self.fmt = fmt
        self.min_interval = min_interval
        self.done: float = 0
        self.enabled = bool(enabled) and _is_terminal(self.stream)
        self._last_draw = float("-inf")
        self._drawn = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def update(self, advance: float = 1, status: str = "") -> None:
        """Add `advance` to the work done and redraw with `status` at the end of the line."""
        self.done += advance
        if not self.enabled:
            return
        now = time.monotonic()
        finished = self.total is not None and self.done >= self.total
        if finished or now - self._last_draw >= self.min_interval:
            self._last_draw = now
            self._draw(status)

    def close(self) -> None:
        """End the line so later output starts on a fresh one."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def render(self, status: str = "") -> str:
        """The line as it would be drawn now (without the carriage return)."""
        parts = [self.label] if self.label else []
        if self.total:
            frac = min(max(self.done / self.total, 0.0), 1.0)
            filled = round(frac * self.width)
            parts.append(f"[{'#' * filled}{'.' * (self.width - filled)}] {frac:4.0%}")
            parts.append(f"{self.fmt(self.done)}/{self.fmt(self.total)}")
        else:
            parts.append(self.fmt(self.done))
        if status:
            parts.append(status)
        return " ".join(parts)

    def _draw(self, status: str) -> None:
        columns = shutil.get_terminal_size(fallback=(80, 24)).columns
        line = self.render(status)[: max(columns - 1, 1)]
        # Pad over the remains of a longer previous line.
        self.stream.write("\r" + line.ljust(max(columns - 1, 1)))
        self.stream.flush()
        self._drawn = True


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False
