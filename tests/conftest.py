"""Shared test configuration: where the (never committed) MovieLens 100k copy lives."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mfrec.training.state import TrainSet


def _ml100k_dir() -> Path:
    # MFREC_ML100K points at another copy; by default the workplace keeps it beside the repo.
    env = os.environ.get("MFREC_ML100K")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-100k"


ML100K = _ml100k_dir()

NOISE = 0.1

#: Both float dtypes, float64 with the slow tests: it compiles a second specialization of
#: every kernel it reaches, the biggest part of a first run's time.
DTYPES_SLOW64 = [np.float32, pytest.param(np.float64, marks=pytest.mark.slow, id="float64")]


def planted(dtype=np.float32, seed=0, n_users=200, n_items=150, rank=3, density=0.4):
    """Ratings mu + b_u + b_i + p_u·q_i + N(0, NOISE²) from known factors; 80/20 split."""
    rng = np.random.default_rng(seed)
    P = rng.normal(0, 0.5, (n_users, rank))
    Q = rng.normal(0, 0.5, (n_items, rank))
    bu = rng.normal(0, 0.3, n_users)
    bi = rng.normal(0, 0.3, n_items)
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    r = 3.0 + bu[u] + bi[i] + np.einsum("nk,nk->n", P[u], Q[i]) + rng.normal(0, NOISE, len(u))
    test = rng.random(len(u)) < 0.2

    def part(mask):
        return TrainSet(
            u[mask].astype(np.int32),
            i[mask].astype(np.int32),
            r[mask].astype(dtype),
            n_users,
            n_items,
        )

    return part(~test), part(test)
