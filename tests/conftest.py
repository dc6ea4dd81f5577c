"""Shared test configuration: where the (never committed) MovieLens 100k copy lives."""

from __future__ import annotations

import os
from pathlib import Path


def _ml100k_dir() -> Path:
    # MFREC_ML100K points at another copy; by default the workplace keeps it beside the repo.
    env = os.environ.get("MFREC_ML100K")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-100k"


ML100K = _ml100k_dir()
