"""mfrec: matrix-factorization recommender comparing full-batch, stochastic and mini-batch GD.

The public names below are imported on first use, so that `import mfrec` (and therefore
`mfrec --help`) does not pay for numpy, pandas or numba until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "DataFormatError": "mfrec.errors",
    "DatasetError": "mfrec.errors",
    "DivergenceError": "mfrec.errors",
    "MfrecError": "mfrec.errors",
    "ModelFileError": "mfrec.errors",
    "NotFittedError": "mfrec.errors",
    "UnknownItemError": "mfrec.errors",
    "UnknownUserError": "mfrec.errors",
    "ParameterError": "mfrec.errors",
    "MatrixFactorization": "mfrec.model.estimator",
    "IdMap": "mfrec.ratings.idmap",
    "Layout": "mfrec.ratings.ratingdata",
    "RatingData": "mfrec.ratings.ratingdata",
    "PRESETS": "mfrec.ratings.load",
    "load_ratings": "mfrec.ratings.load",
}

__all__ = [
    "PRESETS",
    "DataFormatError",
    "DatasetError",
    "DivergenceError",
    "IdMap",
    "Layout",
    "MatrixFactorization",
    "MfrecError",
    "ModelFileError",
    "NotFittedError",
    "ParameterError",
    "RatingData",
    "UnknownItemError",
    "UnknownUserError",
    "__version__",
    "load_ratings",
]

if TYPE_CHECKING:
    from mfrec.errors import (
        DataFormatError,
        DatasetError,
        DivergenceError,
        MfrecError,
        ModelFileError,
        NotFittedError,
        ParameterError,
        UnknownItemError,
        UnknownUserError,
    )
    from mfrec.model.estimator import MatrixFactorization
    from mfrec.ratings.idmap import IdMap
    from mfrec.ratings.load import PRESETS, load_ratings
    from mfrec.ratings.ratingdata import Layout, RatingData


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mfrec' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
