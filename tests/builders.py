"""Small models and solvers that tests in several folders build on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfrec.model.estimator import MatrixFactorization
from mfrec.training.solvers.base import Solver

# Scores p_u·q_i of the tiny model (items a b c d e; e has a zero vector):
#   u1:  a 2  b 1  c 0  d 1  e 0        seen in training: a
#   u2:  a 0  b 1  c 3  d 0  e 0        seen: c, b
#   007: a 2  b 2  c 3  d 1  e 0        seen: nothing
USERS = ["u1", "u2", "007"]
ITEMS = ["a", "b", "c", "d", "e"]
P = [[1, 0], [0, 1], [1, 1]]
Q = [[2, 0], [1, 1], [0, 3], [1, 0], [0, 0]]
SEEN = ([0, 1, 3, 3], [0, 2, 1])


def tiny_model(**biases) -> MatrixFactorization:
    """The model above (scale 0..5, mean 3); `biases` adds user_bias / item_bias."""
    return MatrixFactorization.from_factors(
        np.array(P, dtype=np.float32),
        np.array(Q, dtype=np.float32),
        USERS,
        ITEMS,
        scale=(0.0, 5.0),
        global_mean=3.0,
        seen=SEEN,
        **biases,
    )


def random_model(seed: int, n_users=60, n_items=45, factors=4) -> MatrixFactorization:
    rng = np.random.default_rng(seed)
    # Rounded factors make ties common, which is where orders could differ.
    counts = rng.integers(0, n_items, n_users)
    counts[0] = n_items  # a user who rated everything gets an empty list
    indptr = np.concatenate([[0], np.cumsum(counts)])
    seen = np.concatenate([rng.choice(n_items, c, replace=False) for c in counts])
    return MatrixFactorization.from_factors(
        rng.integers(-2, 3, (n_users, factors)).astype(np.float64),
        rng.integers(-2, 3, (n_items, factors)).astype(np.float64),
        [f"u{u}" for u in range(n_users)],
        [f"i{i}" for i in range(n_items)],
        scale=(1.0, 5.0),
        item_bias=rng.integers(-1, 2, n_items) / 2,
        user_bias=np.zeros(n_users),
        seen=(indptr, seen),
    )


class Exploding(Solver):
    """Multiplies the factors by 10 each epoch: J grows without bound but stays finite."""

    name = "exploding"
    default_lr = 0.25
    default_epochs = 10

    def run_epoch(self, epoch: int) -> int:
        self.factors.P *= 10
        self.factors.Q *= 10
        return 1


def write(tmp_path: Path, content: str | bytes, name: str = "r.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def fields_of(data) -> dict:
    """Everything a RatingData holds, in a form where equal means identical (bytes, types)."""

    def array(a):
        return None if a is None else (a.dtype.str, a.shape, a.tobytes(), a.flags.c_contiguous)

    return {
        "users": array(data.users),
        "items": array(data.items),
        "ratings": array(data.ratings),
        "timestamps": array(data.timestamps),
        "user_ids": [(type(x), x) for x in data.user_map.ids],
        "item_ids": [(type(x), x) for x in data.item_map.ids],
        "scale": repr(data.scale),
        "layout": data.layout,
        "source": data.source,
    }
