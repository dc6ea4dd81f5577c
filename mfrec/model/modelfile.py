"""Model files: one ``.npz`` archive (never pickled) holding everything a trained model needs.

Layout (format ``mfrec-model``, version 1): arrays ``P``, ``Q``, ``bu``, ``bi``; 0-d scalars
``mu``, ``use_bias``, ``seed``, ``best_epoch``, ``stop_reason``; ``user_ids`` and ``item_ids``
(unicode arrays, position = index); ``scale`` (min, max); ``seen_indptr`` / ``seen_indices``
(CSR of the items each user rated in training); ``hyperparameters`` (a JSON string);
``history_columns`` and one ``history/<column>`` array per history column; ``format``,
``format_version`` and ``mfrec_version``.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mfrec.errors import ModelFileError
from mfrec.ratings.idmap import IdMap
from mfrec.training.fitting import FittedState
from mfrec.utils.atomicfile import atomic_open

FORMAT_NAME = "mfrec-model"
FORMAT_VERSION = 1

_ARRAYS = ("P", "Q", "bu", "bi", "user_ids", "item_ids", "scale", "seen_indptr", "seen_indices")
_SCALARS = (
    "mu",
    "use_bias",
    "seed",
    "best_epoch",
    "stop_reason",
    "hyperparameters",
    "mfrec_version",
)


@dataclass(eq=False)
class SavedModel:
    """The contents of a model file, independent of the estimator that wrote it: what the fit
    produced, whether biases are used, and the constructor parameters (JSON values)."""

    state: FittedState
    use_bias: bool
    hyperparameters: dict[str, Any]
    mfrec_version: str = field(default="")


def save_model(path: str | os.PathLike[str], model: SavedModel) -> Path:
    """Write `model` to `path` atomically: an interrupted save leaves any old file intact.

    The file is written exactly at `path` (no ``.npz`` is appended). Returns the path.
    """
    from mfrec import __version__

    path = Path(path)
    s = model.state
    arrays: dict[str, NDArray] = {
        "format": np.array(FORMAT_NAME),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "mfrec_version": np.array(model.mfrec_version or __version__),
        "P": np.ascontiguousarray(s.user_factors),
        "Q": np.ascontiguousarray(s.item_factors),
        "bu": np.ascontiguousarray(s.user_bias),
        "bi": np.ascontiguousarray(s.item_bias),
        "mu": np.array(s.global_mean, dtype=np.float64),
        "use_bias": np.array(model.use_bias, dtype=np.bool_),
        "user_ids": s.user_map.to_array(),
        "item_ids": s.item_map.to_array(),
        "scale": np.asarray(s.scale, dtype=np.float64),
        "seen_indptr": np.asarray(s.seen_indptr, dtype=np.int64),
        "seen_indices": np.asarray(s.seen_indices, dtype=np.int32),
        "hyperparameters": np.array(json.dumps(model.hyperparameters, sort_keys=True)),
        "seed": np.array(s.seed, dtype=np.int64),
        "best_epoch": np.array(s.best_epoch, dtype=np.int64),
        "stop_reason": np.array(s.stop_reason),
        "history_columns": np.array(list(s.history.columns), dtype=str),
    }
    for column, values in s.history.columns.items():
        arrays[f"history/{column}"] = values
    # Given a file object, numpy writes exactly there (it appends ".npz" only to names).
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_model(path: str | os.PathLike[str]) -> SavedModel:
    """Read a model file written by `save_model`.

    Raises
    ------
    ModelFileError
        The file is truncated or corrupted, is not an mfrec model, or was written in a newer
        format version than this mfrec reads. A missing file raises FileNotFoundError.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ModelFileError(
            f"{path}: not an mfrec model file (truncated, or not an .npz archive)"
        ) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path}: not an mfrec model file (a single .npy array)")
    with archive:
        try:
            return _read(path, archive)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, TypeError) as exc:
            raise ModelFileError(f"{path}: model file is corrupted ({exc})") from exc


def _read(path: Path, archive: np.lib.npyio.NpzFile) -> SavedModel:
    if "format" not in archive.files or str(archive["format"][()]) != FORMAT_NAME:
        raise ModelFileError(
            f"{path}: not an mfrec model file (an .npz archive without the "
            f"{FORMAT_NAME!r} format marker)"
        )
    version = int(archive["format_version"][()])
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {version} is newer than this mfrec reads "
            f"({FORMAT_VERSION}): upgrade mfrec to load it"
        )
    columns = []
    if "history_columns" in archive:
        columns = [str(c) for c in archive["history_columns"]]
    required = (*_ARRAYS, *_SCALARS, "history_columns", *(f"history/{c}" for c in columns))
    missing = [key for key in required if key not in archive]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    from mfrec.training.trainer import History

    model = SavedModel(
        state=FittedState(
            user_factors=archive["P"],
            item_factors=archive["Q"],
            user_bias=archive["bu"],
            item_bias=archive["bi"],
            global_mean=float(archive["mu"][()]),
            user_map=IdMap(archive["user_ids"]),
            item_map=IdMap(archive["item_ids"]),
            scale=(float(archive["scale"][0]), float(archive["scale"][1])),
            seen_indptr=archive["seen_indptr"],
            seen_indices=archive["seen_indices"],
            history=History({c: archive[f"history/{c}"] for c in columns}),
            seed=int(archive["seed"][()]),
            best_epoch=int(archive["best_epoch"][()]),
            stop_reason=str(archive["stop_reason"][()]),
        ),
        use_bias=bool(archive["use_bias"][()]),
        hyperparameters=json.loads(str(archive["hyperparameters"][()])),
        mfrec_version=str(archive["mfrec_version"][()]),
    )
    _check_shapes(model)
    return model


def _check_shapes(model: SavedModel) -> None:
    m = model.state
    P, Q, bu, bi = m.user_factors, m.item_factors, m.user_bias, m.item_bias
    n_users, n_items = len(m.user_map), len(m.item_map)
    if P.ndim != 2 or Q.ndim != 2 or P.shape[1] != Q.shape[1]:
        raise ValueError(f"factor matrices of shapes {P.shape} and {Q.shape} do not match")
    if P.shape[0] != n_users or bu.shape != (n_users,):
        raise ValueError(f"{n_users} user IDs but P has shape {P.shape}, bu {bu.shape}")
    if Q.shape[0] != n_items or bi.shape != (n_items,):
        raise ValueError(f"{n_items} item IDs but Q has shape {Q.shape}, bi {bi.shape}")
    if m.seen_indptr.shape != (n_users + 1,) or m.seen_indptr[-1] != len(m.seen_indices):
        raise ValueError("the seen-items index does not match the users")
