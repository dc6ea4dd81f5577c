"""mfrec: matrix-factorization recommender comparing full-batch, stochastic and mini-batch GD.

The public Python API is imported from here (``from mfrec import MatrixFactorization,
load_ratings, compare``); docs/architecture.md says which package holds what. The names are
imported on first use, so that `import mfrec` (and therefore `mfrec --help`) does not pay for
numpy, pandas or numba until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "MfrecError": "mfrec.errors",
    "DataFormatError": "mfrec.errors",
    "DatasetError": "mfrec.errors",
    "DivergenceError": "mfrec.errors",
    "ModelFileError": "mfrec.errors",
    "NotFittedError": "mfrec.errors",
    "ParameterError": "mfrec.errors",
    "UnknownItemError": "mfrec.errors",
    "UnknownUserError": "mfrec.errors",
    "RatingData": "mfrec.ratings.ratingdata",
    "Layout": "mfrec.ratings.ratingdata",
    "IdMap": "mfrec.ratings.idmap",
    "PRESETS": "mfrec.ratings.load",
    "load_ratings": "mfrec.ratings.load",
    "read_pairs": "mfrec.ratings.pairs",
    "write_ratings": "mfrec.ratings.write",
    "split": "mfrec.ratings.split",
    "kfold": "mfrec.ratings.split",
    "synthesize": "mfrec.ratings.synth",
    "MatrixFactorization": "mfrec.model.estimator",
    "evaluate": "mfrec.model.evaluate",
    "Evaluation": "mfrec.model.evaluate",
    "rmse": "mfrec.model.metrics",
    "mae": "mfrec.model.metrics",
    "precision_at_k": "mfrec.model.metrics",
    "recall_at_k": "mfrec.model.metrics",
    "ndcg_at_k": "mfrec.model.metrics",
    "map_at_k": "mfrec.model.metrics",
    "hit_rate": "mfrec.model.metrics",
    "coverage": "mfrec.model.metrics",
    "compare": "mfrec.experiments.compare",
    "Comparison": "mfrec.experiments.compare",
    "cross_validate": "mfrec.experiments.cv",
    "CVResult": "mfrec.experiments.cv",
    "tune": "mfrec.experiments.tune",
    "TuneResult": "mfrec.experiments.tune",
}

__all__ = [
    "PRESETS",
    "CVResult",
    "Comparison",
    "DataFormatError",
    "DatasetError",
    "DivergenceError",
    "Evaluation",
    "IdMap",
    "Layout",
    "MatrixFactorization",
    "MfrecError",
    "ModelFileError",
    "NotFittedError",
    "ParameterError",
    "RatingData",
    "TuneResult",
    "UnknownItemError",
    "UnknownUserError",
    "__version__",
    "compare",
    "coverage",
    "cross_validate",
    "evaluate",
    "hit_rate",
    "kfold",
    "load_ratings",
    "mae",
    "map_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "read_pairs",
    "recall_at_k",
    "rmse",
    "split",
    "synthesize",
    "tune",
    "write_ratings",
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
    from mfrec.experiments.compare import Comparison, compare
    from mfrec.experiments.cv import CVResult, cross_validate
    from mfrec.experiments.tune import TuneResult, tune
    from mfrec.model.estimator import MatrixFactorization
    from mfrec.model.evaluate import Evaluation, evaluate
    from mfrec.model.metrics import (
        coverage,
        hit_rate,
        mae,
        map_at_k,
        ndcg_at_k,
        precision_at_k,
        recall_at_k,
        rmse,
    )
    from mfrec.ratings.idmap import IdMap
    from mfrec.ratings.load import PRESETS, load_ratings
    from mfrec.ratings.pairs import read_pairs
    from mfrec.ratings.ratingdata import Layout, RatingData
    from mfrec.ratings.split import kfold, split
    from mfrec.ratings.synth import synthesize
    from mfrec.ratings.write import write_ratings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mfrec' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
