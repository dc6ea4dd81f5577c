"""The plain containers training works on: the parameters being trained (`Factors`), the
training arrays (`TrainSet`), the solvers' hyperparameters (`SolverParams`) and their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

# Defaults the estimator uses for every solver. Chosen on the MovieLens 100k splits u1..u5
# (base files for training, test files for scoring; see docs/math.md and
# benchmarks/tune_defaults.py): the regularisation has to suit the solvers that really
# minimise J (bgd, als), not only early-stopped sgd.
DEFAULT_FACTORS = 100
DEFAULT_REG = 0.1
DEFAULT_REG_BIAS = 0.05
DEFAULT_INIT_STD = 0.05
#: With ``decay``, lr_t = lr / (1 + DEFAULT_DECAY * t): sgd's default schedule (lr 0.08 falling
#: to about a tenth of it by epoch 20) beat a constant 0.02 on MovieLens 100k and on 10M
#: synthetic ratings alike, where the constant step was still far from converged at 10 epochs.
DEFAULT_DECAY = 0.4


#: Rows of starting factors drawn (in float64) at a time.
INIT_CHUNK_ROWS = 1 << 16


def _normal_rows(
    rng: np.random.Generator, std: float, n_rows: int, k: int, dtype: type[np.floating]
) -> NDArray[np.floating]:
    """``rng.normal(0, std, (n_rows, k)).astype(dtype)``, the same numbers, drawn in chunks of
    rows so that no float64 copy of the whole matrix exists (732 MB for 1M users, k = 64)."""
    out = np.empty((n_rows, k), dtype=dtype)
    for start in range(0, n_rows, INIT_CHUNK_ROWS):
        stop = min(start + INIT_CHUNK_ROWS, n_rows)
        out[start:stop] = rng.normal(0.0, std, size=(stop - start, k))
    return out


@dataclass
class Factors:
    """The parameters of r̂(u,i) = mu + bu[u] + bi[i] + P[u]·Q[i]; solvers update them in place.

    With ``use_bias=False`` mu, bu and bi stay zero and are never updated.
    """

    P: NDArray[np.floating]
    Q: NDArray[np.floating]
    bu: NDArray[np.floating]
    bi: NDArray[np.floating]
    mu: float
    use_bias: bool = True

    def __post_init__(self) -> None:
        # The vector kernels read a row of P or Q as consecutive memory and take views of
        # C arrays; a strided view would be read wrongly rather than refused.
        for name in ("P", "Q"):
            X = getattr(self, name)
            if X.ndim != 2 or not X.flags.c_contiguous:
                raise ValueError(f"Factors: {name} must be a C-contiguous 2-D array")

    @classmethod
    def initial(
        cls,
        n_users: int,
        n_items: int,
        factors: int,
        *,
        mu: float,
        use_bias: bool,
        init_std: float,
        dtype: type[np.floating],
        rng: np.random.Generator,
    ) -> Factors:
        """Starting point shared by every solver: P, Q ~ N(0, init_std^2), biases 0.

        P is drawn before Q from the same generator, so one seed gives every solver the same
        start (what `compare` relies on). mu is the mean training rating (0 without biases).
        """
        P = _normal_rows(rng, init_std, n_users, factors, dtype)
        Q = _normal_rows(rng, init_std, n_items, factors, dtype)
        return cls(
            P,
            Q,
            np.zeros(n_users, dtype=dtype),
            np.zeros(n_items, dtype=dtype),
            float(mu) if use_bias else 0.0,
            use_bias,
        )

    def copy(self) -> Factors:
        """A deep copy (the trainer keeps one of the best epoch for early stopping)."""
        return Factors(
            self.P.copy(), self.Q.copy(), self.bu.copy(), self.bi.copy(), self.mu, self.use_bias
        )


class Csr(NamedTuple):
    """The ratings grouped by row (user or item): row x holds positions ``indptr[x]:indptr[x+1]``.

    ``cols`` are the other side's indices, ``vals`` the ratings and ``order`` the positions of
    those ratings in the `TrainSet` arrays (``vals == ratings[order]``).
    """

    indptr: NDArray[np.int64]
    cols: NDArray[np.int32]
    vals: NDArray[np.floating]
    order: NDArray[np.int64]

    @property
    def counts(self) -> NDArray[np.int64]:
        """Ratings per row."""
        return np.diff(self.indptr)


@dataclass
class TrainSet:
    """Training ratings as contiguous arrays in the training dtype; no raw IDs, no pandas."""

    users: NDArray[np.int32]
    items: NDArray[np.int32]
    ratings: NDArray[np.floating]
    n_users: int
    n_items: int
    _cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.ratings)

    def counts(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Ratings per user and per item (cached). Evaluating J needs only these: no grouped
        copies of the ratings, which cost gigabytes at 100M ratings."""
        if "counts" not in self._cache:
            from mfrec.kernels.group import row_counts  # numba: imported when training

            self._cache["counts"] = (
                row_counts(self.users, self.n_users),
                row_counts(self.items, self.n_items),
            )
        return self._cache["counts"]

    def by_user(self) -> Csr:
        """The ratings grouped by user (built once, then cached)."""
        return self._grouped("by_user", self.users, self.items, self.n_users)

    def by_item(self) -> Csr:
        """The ratings grouped by item (built once, then cached)."""
        return self._grouped("by_item", self.items, self.users, self.n_items)

    def _grouped(self, key: str, rows: NDArray, cols: NDArray, n_rows: int) -> Csr:
        if key not in self._cache:
            order = np.argsort(rows, kind="stable")
            indptr = np.zeros(n_rows + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
            self._cache[key] = Csr(
                indptr,
                np.ascontiguousarray(cols[order], dtype=np.int32),
                self.ratings[order],
                order,
            )
        return self._cache[key]


@dataclass(frozen=True)
class SolverParams:
    """Hyperparameters every solver receives; a solver ignores what does not apply to it.

    lr: base learning rate (None: the solver's own default).
    reg: lambda on |p_u|^2 and |q_i|^2; reg_bias: lambda on b_u^2 and b_i^2.
    optimizer: constant | decay | adagrad | momentum | adam (None: the solver's own default).
    decay: for ``decay``, lr_t = lr / (1 + decay * t) with t the epoch index from 0.
    momentum: beta for ``momentum`` (and beta1 for ``adam``).
    batch_size: ratings per mini-batch (minibatch only).
    line_search: backtracking line search on J (bgd only).
    threads: threads for the parallel kernels (None: all cores). sgd, bgd and als give the
    same result whatever the count.
    """

    lr: float | None = None
    reg: float = DEFAULT_REG
    reg_bias: float = DEFAULT_REG_BIAS
    optimizer: str | None = None
    decay: float = DEFAULT_DECAY
    momentum: float = 0.9
    batch_size: int = 1024
    line_search: bool = False
    threads: int | None = None
