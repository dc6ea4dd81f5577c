"""Exceptions raised by mfrec; the CLI turns each into a one-line error and an exit code."""

from __future__ import annotations

from typing import Any


class MfrecError(Exception):
    """Base class of every error mfrec raises on purpose."""

    #: Exit status the CLI uses: 2 for bad usage or bad data, 1 for other failures.
    exit_code = 1


class DataFormatError(MfrecError, ValueError):
    """A ratings file or frame cannot be read: names the file, the line and what is wrong."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        self.source = source
        self.line = line
        self.reason = message
        where = ""
        if source is not None:
            where = f"{source}" + (f", line {line}" if line is not None else "") + ": "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(where + message)


class DatasetError(MfrecError):
    """A public dataset cannot be fetched, verified or found in the cache."""

    exit_code = 1


class UnknownDatasetError(DatasetError):
    """A dataset name that mfrec does not know."""

    exit_code = 2


class UnknownUserError(MfrecError, KeyError):
    """A user ID the model never saw in training."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownItemError(UnknownUserError):
    """An item ID the model never saw in training."""


class NotFittedError(MfrecError, AttributeError):
    """A method that needs a trained model was called before `fit`."""

    exit_code = 1


class DivergenceError(MfrecError, ArithmeticError):
    """Training blew up (NaN, inf or an exploding objective).

    `history` holds the training history up to the last finite epoch (a DataFrame), so a
    caller such as `compare` can still plot how the run got there.
    """

    exit_code = 1

    def __init__(self, message: str, history: object = None):
        super().__init__(message)
        # The trainer passes a mfrec.training.trainer.History: its DataFrame (and pandas) only when
        # read.
        self._history = history

    @property
    def history(self) -> Any:
        """The history as given, or as a DataFrame if it was given as a `History`."""
        to_frame = getattr(self._history, "to_frame", None)
        return self._history if to_frame is None else to_frame()


class ModelFileError(MfrecError):
    """A model file is truncated, foreign or written by a newer mfrec."""

    exit_code = 2


class ParameterError(MfrecError, ValueError):
    """A hyperparameter outside its allowed range: names the parameter, its value and the range.

    `param`, `value` and `reason` stay available so the CLI can name its own option instead.
    """

    exit_code = 2

    def __init__(self, param: str, value: object, reason: str):
        self.param = param
        self.value = value
        self.reason = reason
        # Numpy scalars print as plain numbers (1.5, not np.float64(1.5)).
        shown = value.item() if getattr(value, "ndim", None) == 0 else value
        super().__init__(f"{param}={shown!r}: {reason}")

    def __reduce__(self):
        # Rebuild from the three arguments, so the error survives pickling (process pools).
        return type(self), (self.param, self.value, self.reason)
