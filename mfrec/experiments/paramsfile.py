"""Params files: estimator parameters as a JSON object, as ``mfrec tune --best-params`` writes
them and ``mfrec train --params`` (or `MatrixFactorization(**read_params(path))`) reads them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from mfrec.errors import DataFormatError
from mfrec.model.estimator import MatrixFactorization
from mfrec.utils.atomicfile import atomic_open

#: Parameters a params file cannot set: a data set, and a display setting.
NOT_IN_PARAMS_FILE = ("validation", "progress")


def write_params(path: str | os.PathLike[str], params: Mapping[str, Any]) -> None:
    """Write estimator parameters as a JSON object (atomically), as `read_params` reads."""
    with atomic_open(path) as fh:
        json.dump({k: _plain(v) for k, v in params.items()}, fh, indent=2)
        fh.write("\n")


def read_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON object of estimator parameters, as `write_params` writes them.

    Raises
    ------
    DataFormatError
        Not JSON, not an object, or a key that is not an estimator parameter a file can set.
    """
    source = os.fspath(path)
    with open(path, encoding="utf-8") as fh:
        try:
            params = json.load(fh)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"not valid JSON: {exc.msg}", source=source, line=exc.lineno
            ) from None
    if not isinstance(params, dict):
        raise DataFormatError("expected a JSON object of parameters", source=source)
    valid = [p for p in MatrixFactorization().get_params() if p not in NOT_IN_PARAMS_FILE]
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise DataFormatError(
            f"unknown parameter {unknown[0]!r}; valid ones: {', '.join(valid)}", source=source
        )
    return params


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
