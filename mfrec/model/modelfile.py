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
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mfrec.errors import ModelFileError
from mfrec.ratings.idmap import IdMap
from mfrec.utils.atomicfile import atomic_open

if TYPE_CHECKING:
    import pandas as pd

    from mfrec.training.trainer import History

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
    """The contents of a model file, independent of the estimator that wrote it.

    `history` may be given as a DataFrame or a `mfrec.training.trainer.History`. It is kept as the
    History in `history_data`; reading `history` gives the DataFrame, built on first access.
    """

    P: NDArray[np.floating]
    Q: NDArray[np.floating]
    bu: NDArray[np.floating]
    bi: NDArray[np.floating]
    mu: float
    use_bias: bool
    user_map: IdMap
    item_map: IdMap
    scale: tuple[float, float]
    seen_indptr: NDArray[np.int64]
    seen_indices: NDArray[np.int32]
    hyperparameters: dict[str, Any]
    history: pd.DataFrame | History
    seed: int
    best_epoch: int
    stop_reason: str
    mfrec_version: str = field(default="")
    history_data: History = field(init=False, repr=False)


def _history_frame(self: SavedModel) -> pd.DataFrame:
    return self.history_data.to_frame()


def _set_history(self: SavedModel, history: pd.DataFrame | History) -> None:
    from mfrec.training.trainer import History

    self.history_data = History.of(history)


# A property, so that neither saving nor loading builds the DataFrame (or imports pandas).
# Attached after @dataclass, which would take one in the class body for the field's default;
# the generated __init__ stores `history=` through the setter.
SavedModel.history = property(  # type: ignore[assignment,method-assign]
    _history_frame, _set_history, doc="The history as a DataFrame (built on first access)."
)


def save_model(path: str | os.PathLike[str], model: SavedModel) -> Path:
    """Write `model` to `path` atomically: an interrupted save leaves any old file intact.

    The file is written exactly at `path` (no ``.npz`` is appended). Returns the path.
    """
    from mfrec import __version__

    path = Path(path)
    arrays: dict[str, NDArray] = {
        "format": np.array(FORMAT_NAME),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "mfrec_version": np.array(model.mfrec_version or __version__),
        "P": np.ascontiguousarray(model.P),
        "Q": np.ascontiguousarray(model.Q),
        "bu": np.ascontiguousarray(model.bu),
        "bi": np.ascontiguousarray(model.bi),
        "mu": np.array(model.mu, dtype=np.float64),
        "use_bias": np.array(model.use_bias, dtype=np.bool_),
        "user_ids": model.user_map.to_array(),
        "item_ids": model.item_map.to_array(),
        "scale": np.asarray(model.scale, dtype=np.float64),
        "seen_indptr": np.asarray(model.seen_indptr, dtype=np.int64),
        "seen_indices": np.asarray(model.seen_indices, dtype=np.int32),
        "hyperparameters": np.array(json.dumps(model.hyperparameters, sort_keys=True)),
        "seed": np.array(model.seed, dtype=np.int64),
        "best_epoch": np.array(model.best_epoch, dtype=np.int64),
        "stop_reason": np.array(model.stop_reason),
        "history_columns": np.array(list(model.history_data.columns), dtype=str),
    }
    for column, values in model.history_data.columns.items():
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

    history = History({c: archive[f"history/{c}"] for c in columns})
    model = SavedModel(
        P=archive["P"],
        Q=archive["Q"],
        bu=archive["bu"],
        bi=archive["bi"],
        mu=float(archive["mu"][()]),
        use_bias=bool(archive["use_bias"][()]),
        user_map=IdMap(archive["user_ids"]),
        item_map=IdMap(archive["item_ids"]),
        scale=(float(archive["scale"][0]), float(archive["scale"][1])),
        seen_indptr=archive["seen_indptr"],
        seen_indices=archive["seen_indices"],
        hyperparameters=json.loads(str(archive["hyperparameters"][()])),
        history=history,
        seed=int(archive["seed"][()]),
        best_epoch=int(archive["best_epoch"][()]),
        stop_reason=str(archive["stop_reason"][()]),
        mfrec_version=str(archive["mfrec_version"][()]),
    )
    _check_shapes(model)
    return model


def _check_shapes(m: SavedModel) -> None:
    n_users, n_items = len(m.user_map), len(m.item_map)
    if m.P.ndim != 2 or m.Q.ndim != 2 or m.P.shape[1] != m.Q.shape[1]:
        raise ValueError(f"factor matrices of shapes {m.P.shape} and {m.Q.shape} do not match")
    if m.P.shape[0] != n_users or m.bu.shape != (n_users,):
        raise ValueError(f"{n_users} user IDs but P has shape {m.P.shape}, bu {m.bu.shape}")
    if m.Q.shape[0] != n_items or m.bi.shape != (n_items,):
        raise ValueError(f"{n_items} item IDs but Q has shape {m.Q.shape}, bi {m.bi.shape}")
    if m.seen_indptr.shape != (n_users + 1,) or m.seen_indptr[-1] != len(m.seen_indices):
        raise ValueError("the seen-items index does not match the users")
