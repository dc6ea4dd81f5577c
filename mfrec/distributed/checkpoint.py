"""Checkpoints of a distributed run: the whole training state after an epoch, in one file.

``DIR/checkpoint.npz`` (format ``mfrec-checkpoint``, version 1) holds P, Q, the biases, the
optimizer state, the epoch, the history so far, the ID maps and the settings the run was
started with. It is written only from a complete, consistent epoch (every block done and
gathered) and atomically: a worker or the driver dying at any moment leaves the previous
checkpoint in place, never a half-written one. `--resume` reads it back and goes on with the
next epoch, on any number of workers (the state is stored in ID-map order, not by block).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfrec.errors import MfrecError
from mfrec.ratings.idmap import IdMap
from mfrec.training.optimizers import OptimizerState
from mfrec.training.state import Factors
from mfrec.utils.atomicfile import atomic_open

FILENAME = "checkpoint.npz"
FORMAT_NAME = "mfrec-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(MfrecError):
    """No usable checkpoint for ``--resume``: missing, corrupted, or from another run."""

    exit_code = 2


@dataclass(eq=False)
class Checkpoint:
    """The state after `epoch` epochs, and what identifies the run it belongs to.

    `settings` are the hyperparameters that must match for a resumed run to continue this
    one (solver, factors, learning rate, seed, ...), as plain JSON values.
    """

    epoch: int
    factors: Factors
    opt: OptimizerState
    history: pd.DataFrame
    user_map: IdMap
    item_map: IdMap
    settings: dict[str, Any]


def path_in(directory: str | os.PathLike[str]) -> Path:
    """Where the checkpoint of `directory` lives."""
    return Path(directory) / FILENAME


def save_checkpoint(directory: str | os.PathLike[str], ck: Checkpoint) -> Path:
    """Write `ck` to ``directory/checkpoint.npz`` atomically, replacing the previous one."""
    f = ck.factors
    arrays = {
        "format": np.array(FORMAT_NAME),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "epoch": np.array(ck.epoch, dtype=np.int64),
        "P": f.P,
        "Q": f.Q,
        "bu": f.bu,
        "bi": f.bi,
        "mu": np.array(f.mu, dtype=np.float64),
        "use_bias": np.array(f.use_bias),
        "opt_code": np.array(ck.opt.code, dtype=np.int64),
        "user_ids": ck.user_map.to_array(),
        "item_ids": ck.item_map.to_array(),
        "settings": np.array(json.dumps(ck.settings, sort_keys=True)),
        "history_columns": np.array(list(ck.history.columns), dtype=str),
    }
    for j, arr in enumerate(ck.opt.state):
        arrays[f"state/{j}"] = arr
    for j, arr in enumerate(ck.opt.steps):
        arrays[f"steps/{j}"] = arr
    for column in ck.history.columns:
        arrays[f"history/{column}"] = ck.history[column].to_numpy()
    target = path_in(directory)
    with atomic_open(target, "wb") as fh:
        np.savez(fh, **arrays)
    return target


def load_checkpoint(directory: str | os.PathLike[str]) -> Checkpoint:
    """Read the checkpoint of `directory`; CheckpointError if there is none or it is unreadable."""
    path = path_in(directory)
    if not path.exists():
        raise CheckpointError(f"--resume: no checkpoint in {directory} (expected {path})")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z.files or str(z["format"][()]) != FORMAT_NAME:
                raise CheckpointError(f"{path}: not an mfrec checkpoint")
            if int(z["format_version"][()]) > FORMAT_VERSION:
                raise CheckpointError(f"{path}: written by a newer mfrec; upgrade to resume")
            columns = [str(c) for c in z["history_columns"]]
            factors = Factors(
                z["P"], z["Q"], z["bu"], z["bi"], float(z["mu"][()]), bool(z["use_bias"][()])
            )
            opt = OptimizerState(
                int(z["opt_code"][()]),
                tuple(z[f"state/{j}"] for j in range(8)),
                (z["steps/0"], z["steps/1"]),
            )
            return Checkpoint(
                epoch=int(z["epoch"][()]),
                factors=factors,
                opt=opt,
                history=pd.DataFrame({c: z[f"history/{c}"] for c in columns}, columns=columns),
                user_map=IdMap(z["user_ids"]),
                item_map=IdMap(z["item_ids"]),
                settings=json.loads(str(z["settings"][()])),
            )
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint is unreadable ({exc})") from None


def check_resumable(
    ck: Checkpoint, settings: dict[str, Any], user_map: IdMap, item_map: IdMap, path: str
) -> None:
    """CheckpointError unless `ck` was written by a run of these settings on these IDs."""
    changed = sorted(
        k for k in settings.keys() | ck.settings.keys() if settings.get(k) != ck.settings.get(k)
    )
    if changed:
        diffs = ", ".join(f"{k}: {ck.settings.get(k)!r} -> {settings.get(k)!r}" for k in changed)
        raise CheckpointError(
            f"{path}: the checkpoint is from a run with other settings ({diffs}); "
            "resume with the same options, or start afresh without --resume"
        )
    if ck.user_map != user_map or ck.item_map != item_map:
        raise CheckpointError(
            f"{path}: the checkpoint is from other ratings (the users or items differ); "
            "resume on the same data, or start afresh without --resume"
        )
