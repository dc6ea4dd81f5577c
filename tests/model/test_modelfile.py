"""Model files: round trip, refusal of bad files with a clear message, atomic saves."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec.errors import ModelFileError
from mfrec.model.modelfile import FORMAT_VERSION, SavedModel, load_model, save_model
from mfrec.ratings.idmap import IdMap
from mfrec.training.fitting import FittedState
from mfrec.training.trainer import History


def saved(dtype=np.float32, history=None) -> SavedModel:
    rng = np.random.default_rng(0)
    if history is None:
        history = {
            "epoch": [0, 1],
            "objective": [1.5, 1.2],
            "seconds": [0.0, 0.1],
            "updates": [0, 9],
        }
    return SavedModel(
        FittedState(
            user_factors=rng.normal(size=(4, 2)).astype(dtype),
            item_factors=rng.normal(size=(3, 2)).astype(dtype),
            user_bias=rng.normal(size=4).astype(dtype),
            item_bias=rng.normal(size=3).astype(dtype),
            global_mean=3.25,
            user_map=IdMap(["007", "7", "u x", "ü"]),
            item_map=IdMap(["10", "010", "a,b"]),
            scale=(0.5, 5.0),
            seen_indptr=np.array([0, 2, 3, 3, 5], dtype=np.int64),
            seen_indices=np.array([0, 1, 2, 0, 2], dtype=np.int32),
            history=History.of(pd.DataFrame(history)),
            seed=12345678901234,
            best_epoch=1,
            stop_reason="epochs",
        ),
        use_bias=True,
        hyperparameters={"solver": "sgd", "lr": None, "factors": 2, "validation": 0.1},
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_keeps_everything(tmp_path, dtype):
    original = saved(dtype)
    path = save_model(tmp_path / "m.npz", original)
    back = load_model(path)
    a, b = original.state, back.state
    for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    for name in ("seen_indptr", "seen_indices"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    assert b.user_map == a.user_map
    assert b.user_map.index("007") == 0
    assert b.user_map.index("7") == 1
    assert b.item_map.to_ids([0, 1, 2]).tolist() == ["10", "010", "a,b"]
    assert (b.global_mean, back.use_bias, b.scale) == (3.25, True, (0.5, 5.0))
    assert back.hyperparameters == original.hyperparameters
    pd.testing.assert_frame_equal(b.history.to_frame(), a.history.to_frame())
    assert (b.seed, b.best_epoch, b.stop_reason) == (12345678901234, 1, "epochs")
    assert back.mfrec_version == mfrec.__version__


def test_saves_exactly_at_the_given_path_without_pickle(tmp_path):
    path = save_model(tmp_path / "model.bin", saved())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]
    with np.load(path, allow_pickle=False) as archive:
        assert str(archive["format"]) == "mfrec-model"
        assert int(archive["format_version"]) == FORMAT_VERSION
        assert json.loads(str(archive["hyperparameters"]))["solver"] == "sgd"


def test_empty_history_and_maps_round_trip(tmp_path):
    model = saved(history={"epoch": np.array([], dtype=np.int64)})
    back = load_model(save_model(tmp_path / "m.npz", model)).state.history.to_frame()
    assert list(back.columns) == ["epoch"]
    assert len(back) == 0


def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = save_model(tmp_path / "m.npz", saved())
    before = path.read_bytes()

    def half_write(file, **arrays):
        file.write(b"PK\x03\x04 half of an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", half_write)
    changed = saved()
    changed.state.global_mean = 1.0
    with pytest.raises(OSError, match="No space left"):
        save_model(path, changed)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert load_model(path).state.global_mean == 3.25


def test_interrupted_save_leaves_no_file(tmp_path, monkeypatch):
    def interrupted(file, **arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_model(tmp_path / "m.npz", saved())
    assert list(tmp_path.iterdir()) == []


def test_truncated_file(tmp_path):
    path = save_model(tmp_path / "m.npz", saved())
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == f"{path}: not an mfrec model file (truncated, or not an .npz archive)"


def test_ratings_file_given_as_model(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,rating\n1,2,3\n")
    with pytest.raises(ModelFileError, match=r"ratings\.csv: not an mfrec model file \(truncated"):
        load_model(path)


def test_empty_file(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"m\.npz: not an mfrec model file \(truncated"):
        load_model(path)


def test_foreign_npz(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"{path}: not an mfrec model file (an .npz archive without the 'mfrec-model' format marker)"
    )


def test_single_npy_array(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.ones(3))
    with pytest.raises(ModelFileError, match=r"a\.npy: not an mfrec model file \(a single \.npy"):
        load_model(path)


def rewrite(path, **changes):
    """Rewrite the archive at `path` with some arrays replaced (None: removed)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_newer_format_version(tmp_path):
    path = save_model(tmp_path / "m.npz", saved())
    rewrite(path, format_version=np.array(FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"{path}: model format version {FORMAT_VERSION + 1} is newer than this mfrec reads "
        f"({FORMAT_VERSION}): upgrade mfrec to load it"
    )


def test_missing_arrays(tmp_path):
    path = save_model(tmp_path / "m.npz", saved())
    rewrite(path, Q=None, **{"history/objective": None})
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == f"{path}: model file is corrupted (missing Q, history/objective)"


def test_inconsistent_shapes(tmp_path):
    path = save_model(tmp_path / "m.npz", saved())
    rewrite(path, user_ids=np.array(["a", "b"]))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"{path}: model file is corrupted (2 user IDs but P has shape (4, 2), bu (4,))"
    )


def test_damaged_bytes_inside_the_archive(tmp_path):
    path = save_model(tmp_path / "m.npz", saved())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("P.npy")
    # Flip bytes inside P's data (past the local header and the .npy header).
    start = info.header_offset + 30 + len(info.filename) + 128
    data[start : start + 8] = bytes(255 - b for b in data[start : start + 8])
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"m\.npz: model file is corrupted \(Bad CRC-32"):
        load_model(path)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.npz")
