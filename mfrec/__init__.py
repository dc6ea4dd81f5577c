"""mfrec: matrix-factorization recommender comparing full-batch, stochastic and mini-batch GD."""

from __future__ import annotations

from mfrec.data import Layout, RatingData
from mfrec.errors import (
    DataFormatError,
    DatasetError,
    DivergenceError,
    MfrecError,
    ModelFileError,
    NotFittedError,
    UnknownItemError,
    UnknownUserError,
)
from mfrec.idmap import IdMap

__version__ = "0.1.0"

__all__ = [
    "DataFormatError",
    "DatasetError",
    "DivergenceError",
    "IdMap",
    "Layout",
    "MfrecError",
    "ModelFileError",
    "NotFittedError",
    "RatingData",
    "UnknownItemError",
    "UnknownUserError",
    "__version__",
]
