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
    "MatrixFactorization": "mfrec.model",
    "IdMap": "mfrec.idmap",
    "Layout": "mfrec.data",
    "RatingData": "mfrec.data",
    "PRESETS": "mfrec.load",
    "load_ratings": "mfrec.load",
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
    from mfrec.data import Layout, RatingData
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
    from mfrec.idmap import IdMap
    from mfrec.load import PRESETS, load_ratings
    from mfrec.model import MatrixFactorization


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mfrec' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
