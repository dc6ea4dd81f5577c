"""MatrixFactorization: the scikit-learn style estimator around the trainer.

``MatrixFactorization(solver="sgd", factors=50).fit(data)`` trains through
`mfrec.training.fitting.fit` and keeps the result in attributes ending in ``_``. The estimator
is where a model is used: `predict` works on raw IDs, `recommend` and `similar_items` go
through `mfrec.model.recommend`, `save` / `load` through `mfrec.model.modelfile`.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mfrec.errors import ModelFileError, ParameterError
from mfrec.ratings.idmap import IdMap
from mfrec.ratings.ratingdata import RatingData
from mfrec.training import fitting
from mfrec.training.fitting import FittedState, dtype_name
from mfrec.training.state import (
    DEFAULT_INIT_STD,
    DEFAULT_REG,
    DEFAULT_REG_BIAS,
    Factors,
    SolverParams,
)
from mfrec.utils.validation import check_fitted

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

_PARAM_DEFAULTS = SolverParams()


class MatrixFactorization:
    """Biased matrix factorization r̂(u,i) = mu + b_u + b_i + p_u·q_i, trained by one solver.

    Parameters left at None take the solver's own default (`epochs`, `lr`, `optimizer`) or
    the package default (`factors`). Parameters are checked when `fit` starts.

    Parameters
    ----------
    solver
        One of `mfrec.training.solvers.SOLVERS`: ``sgd``, ``bgd``, ``minibatch`` or ``als``.
    factors
        Latent dimensions k (default 100).
    epochs
        Passes over the training data; with `patience`, the most that will run.
    lr, optimizer, decay, momentum, batch_size, line_search
        Step size and its schedule; see `mfrec.training.state.SolverParams`.
    reg, reg_bias
        L2 penalties on the factors and on the biases.
    use_bias
        Learn mu, b_u and b_i; without them r̂ = p_u·q_i.
    init_std
        Standard deviation of the normal draw of the starting factors.
    dtype
        ``float32`` (default) or ``float64`` for the factors and the arithmetic.
    validation
        A fraction in (0, 1) of the ratings to hold out at random, or a RatingData, scored
        after every epoch (`fit(data, validation=...)` overrides it).
    patience
        Early stopping: stop when validation RMSE has not improved for this many epochs and
        keep the best epoch's factors.
    seed
        int, numpy Generator or None (fresh entropy); the seed used is kept in `seed_`.
    progress
        Show a progress bar on stderr when it is a terminal.
    threads
        Threads for the parallel kernels; None uses all cores. sgd, bgd and als give the same
        model whatever the count.

    Attributes
    ----------
    user_factors_, item_factors_, user_bias_, item_bias_ : arrays
        P (n_users x k), Q (n_items x k), b_u, b_i; indices follow `user_map_` / `item_map_`.
    global_mean_ : float
        Mean training rating: mu when `use_bias`, and the fallback for unknown IDs.
    user_map_, item_map_ : IdMap
        Raw IDs of the users and items seen in training.
    scale_ : (float, float)
        Rating scale; predictions are clipped to it.
    seen_indptr_, seen_indices_ : arrays
        CSR of the items each user rated in training (``seen_indices_[seen_indptr_[u]:
        seen_indptr_[u + 1]]``), the ratings a recommendation leaves out.
    history_ : DataFrame
        One row per epoch, see `mfrec.training.trainer` (built from `history_data_` on first
        access).
    history_data_ : mfrec.training.trainer.History
        The same history as numpy columns.
    best_epoch_, n_epochs_, stop_reason_ : int, int, str
        The epoch whose factors were kept, the epochs run, and why training stopped.
    train_rmse_, validation_rmse_ : float
        RMSE of the kept factors on the training and validation sets (NaN without validation).
    seed_ : int
        The seed that reproduces this fit.
    """

    def __init__(
        self,
        solver: str = "sgd",
        *,
        factors: int | None = None,
        epochs: int | None = None,
        lr: float | None = None,
        reg: float = DEFAULT_REG,
        reg_bias: float = DEFAULT_REG_BIAS,
        batch_size: int = _PARAM_DEFAULTS.batch_size,
        optimizer: str | None = None,
        decay: float = _PARAM_DEFAULTS.decay,
        momentum: float = _PARAM_DEFAULTS.momentum,
        line_search: bool = False,
        use_bias: bool = True,
        init_std: float = DEFAULT_INIT_STD,
        dtype: str = "float32",
        validation: float | RatingData | None = None,
        patience: int | None = None,
        seed: int | np.random.Generator | None = None,
        progress: bool = False,
        threads: int | None = None,
    ):
        self.solver = solver
        self.factors = factors
        self.epochs = epochs
        self.lr = lr
        self.reg = reg
        self.reg_bias = reg_bias
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.decay = decay
        self.momentum = momentum
        self.line_search = line_search
        self.use_bias = use_bias
        self.init_std = init_std
        self.dtype = dtype
        self.validation = validation
        self.patience = patience
        self.seed = seed
        self.progress = progress
        self.threads = threads

    # -- parameters ----------------------------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters as a dict (`deep` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> MatrixFactorization:
        """Set constructor parameters by name; they take effect at the next `fit`."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ParameterError(
                    name, value, f"no such parameter; valid ones: {', '.join(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if not _same(value, defaults[name])
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    # -- training ------------------------------------------------------------------------------

    def fit(
        self, data: RatingData, validation: float | RatingData | None = None
    ) -> MatrixFactorization:
        """Train on `data`; `validation` (a fraction or RatingData) overrides the parameter.

        Validation ratings whose user or item is not in the training part are left out of the
        validation RMSE (the model has no factors for them).
        """
        return self.set_fitted(fitting.fit(self.get_params(), data, validation))

    def set_fitted(self, state: FittedState) -> MatrixFactorization:
        """Install what a fit produced (`fit`, `load`, `from_factors` and the Dask fit call
        this); the attributes are the state's fields with a trailing ``_``."""
        from mfrec.training.trainer import History

        for name in state.__dataclass_fields__:
            if name != "history":  # history_ is the DataFrame view of history_data_
                setattr(self, name + "_", getattr(state, name))
        self.history_data_ = History.of(state.history)
        best = self.history_data_.row(self.best_epoch_)
        self.n_epochs_ = int(self.history_data_.columns["epoch"][-1])
        self.train_rmse_ = float(best["train_rmse"])
        self.validation_rmse_ = float(best.get("validation_rmse", math.nan))
        return self

    def fitted_state(self) -> FittedState:
        """What `set_fitted` installed, as one `FittedState` (sharing the arrays)."""
        check_fitted(self)
        fields = {
            name: getattr(self, name + "_")
            for name in FittedState.__dataclass_fields__
            if name != "history"
        }
        return FittedState(**fields, history=self.history_data_)

    @property
    def history_(self) -> pd.DataFrame:
        """One row per epoch, see `mfrec.training.trainer` (a DataFrame built on first access)."""
        check_fitted(self)
        return self.history_data_.to_frame()

    def to_factors(self) -> Factors:
        """The fitted parameters as the solvers' `Factors` (sharing the arrays)."""
        check_fitted(self)
        return Factors(
            self.user_factors_,
            self.item_factors_,
            self.user_bias_,
            self.item_bias_,
            self.global_mean_ if self.use_bias else 0.0,
            bool(self.use_bias),
        )

    # -- use -----------------------------------------------------------------------------------

    def predict(
        self,
        users: ArrayLike,
        items: ArrayLike,
        *,
        clip: bool = True,
        return_known: bool = False,
    ) -> NDArray[np.float64] | tuple[NDArray[np.float64], NDArray[np.str_]]:
        """Predicted ratings for pairs of raw user and item IDs (compared as strings).

        An unknown user or item has no factors: its prediction falls back to the global mean
        plus whichever bias is known. `clip` bounds predictions to the rating scale. With
        `return_known`, also returns what the model knew of each pair: ``both``, ``user``,
        ``item`` or ``none`` (see `known_labels`).
        """
        check_fitted(self)
        u = self.user_map_.indices(_as_ids(users))
        i = self.item_map_.indices(_as_ids(items))
        if len(u) != len(i):
            raise ValueError(f"predict: {len(u)} users but {len(i)} items")
        pred = self.predict_indices(u, i, clip=clip)
        return (pred, known_labels(u, i)) if return_known else pred

    def predict_indices(
        self, users: NDArray[np.integer], items: NDArray[np.integer], *, clip: bool = True
    ) -> NDArray[np.float64]:
        """`predict` on indices of `user_map_` / `item_map_`, -1 standing for an unknown ID."""
        check_fitted(self)
        u, i = np.asarray(users), np.asarray(items)
        both = (u >= 0) & (i >= 0)
        pred = np.empty(len(u), dtype=np.float64)
        from mfrec.kernels.startup import load_numba
        from mfrec.training import objective

        load_numba()  # before the first kernel: numba's start without its BLAS probe

        pred[both] = objective.predict(self.to_factors(), u[both], i[both])
        # Fallback without factors: the mean plus whichever bias is known.
        only_u = (u >= 0) & ~both
        only_i = (i >= 0) & ~both
        pred[~both] = self.global_mean_
        if self.use_bias:
            pred[only_u] += self.user_bias_[u[only_u]]
            pred[only_i] += self.item_bias_[i[only_i]]
        if clip:
            np.clip(pred, self.scale_[0], self.scale_[1], out=pred)
        return pred

    def recommend(
        self,
        users: ArrayLike | str | None,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        cold_start: str = "error",
        memory_budget: int | None = None,
    ) -> tuple[NDArray[np.object_], NDArray[np.float64]]:
        """The top-k items for raw user IDs, best first: (item IDs, predicted ratings).

        One ID gives 1-D arrays, as long as that user's list. Several IDs (or None: every
        user, in the order of `user_map_`) give 2-D arrays with one row per user and
        min(k, n_items) columns, padded with None / NaN for a user with fewer candidate items.
        `exclude_seen` leaves out the items the user rated in training. An unknown user raises
        UnknownUserError unless ``cold_start="popular"`` (the most-rated items). Ties rank the
        lower item index first. `memory_budget` caps the bytes of scores held at once (see
        `mfrec.model.recommend`). Scores are unclipped r̂ (clipping would only create ties).
        """
        from mfrec.model.recommend import DEFAULT_MEMORY_BUDGET, iter_recommendations

        single = isinstance(users, str) or (users is not None and np.ndim(users) == 0)
        blocks = list(
            iter_recommendations(
                self,
                [users] if single else users,
                k,
                exclude_seen=exclude_seen,
                cold_start=cold_start,
                memory_budget=memory_budget or DEFAULT_MEMORY_BUDGET,
            )
        )
        width = min(k, len(self.item_map_))
        ids = np.concatenate([b.items for b in blocks]) if blocks else np.empty((0, width), object)
        scores = np.concatenate([b.scores for b in blocks]) if blocks else np.empty((0, width))
        return _one_row(ids, scores) if single else (ids, scores)

    def similar_items(
        self, items: ArrayLike | str, k: int = 10, *, memory_budget: int | None = None
    ) -> tuple[NDArray[np.object_], NDArray[np.float64]]:
        """The k items whose factor vectors have the highest cosine similarity with each raw
        item ID: (item IDs, similarities), shaped as in `recommend`. An unknown ID raises
        UnknownItemError."""
        from mfrec.model.recommend import DEFAULT_MEMORY_BUDGET
        from mfrec.model.recommend import similar_items as similar

        single = isinstance(items, str) or np.ndim(items) == 0
        ids, scores = similar(
            self,
            [items] if single else items,
            k,
            memory_budget=memory_budget or DEFAULT_MEMORY_BUDGET,
        )
        return _one_row(ids, scores) if single else (ids, scores)

    def describe(self) -> dict[str, Any]:
        """What the model is, as plain values: solver, hyperparameters, data sizes, and the
        history's figures at the last epoch (``final``) and at the kept one (``best``)."""
        check_fitted(self)
        n_users, n_items = len(self.user_map_), len(self.item_map_)
        n_ratings = len(self.seen_indices_)
        history = self.history_data_.columns
        figures = [c for c in ("objective", "train_rmse", "validation_rmse") if c in history]
        best = self.history_data_.row(self.best_epoch_)
        return {
            "solver": self.solver,
            "factors": int(self.user_factors_.shape[1]),
            "dtype": self.user_factors_.dtype.name,
            "use_bias": bool(self.use_bias),
            "users": n_users,
            "items": n_items,
            "ratings": n_ratings,
            "density": n_ratings / (n_users * n_items) if n_users and n_items else 0.0,
            "scale": [float(x) for x in self.scale_],
            "global_mean": float(self.global_mean_),
            "epochs": self.n_epochs_,
            "best_epoch": int(self.best_epoch_),
            "stop_reason": self.stop_reason_,
            "seconds": float(history["seconds"][-1]) if "seconds" in history else None,
            "final": {c: float(history[c][-1]) for c in figures},
            "best": {c: float(best[c]) for c in figures},
            "seed": int(self.seed_),
            "hyperparameters": self._saved_params(),
        }

    @classmethod
    def from_factors(
        cls,
        user_factors: ArrayLike,
        item_factors: ArrayLike,
        user_ids: ArrayLike,
        item_ids: ArrayLike,
        *,
        scale: tuple[float, float],
        user_bias: ArrayLike | None = None,
        item_bias: ArrayLike | None = None,
        global_mean: float = 0.0,
        seen: tuple[ArrayLike, ArrayLike] | None = None,
        **params: Any,
    ) -> MatrixFactorization:
        """A fitted model made from given factors, without training (factors trained
        elsewhere, tests, benchmarks).

        Without biases the model predicts p_u·q_i (``use_bias=False``). `seen` is the CSR
        (indptr, indices) of the items each user rated, which recommendations leave out;
        none by default. `params` are constructor parameters, kept for the record.
        """
        from mfrec.training.trainer import History

        P = np.ascontiguousarray(user_factors)
        Q = np.ascontiguousarray(item_factors)
        user_map, item_map = IdMap(_as_ids(user_ids)), IdMap(_as_ids(item_ids))
        if P.ndim != 2 or Q.ndim != 2 or P.shape[1] != Q.shape[1]:
            raise ParameterError("item_factors", Q.shape, f"does not match user_factors {P.shape}")
        if (len(P), len(Q)) != (len(user_map), len(item_map)):
            raise ParameterError(
                "user_ids",
                len(user_map),
                f"{len(user_map)} user and {len(item_map)} item IDs for factors of "
                f"{len(P)} users and {len(Q)} items",
            )
        use_bias = user_bias is not None or item_bias is not None
        bu = np.zeros(len(P), P.dtype) if user_bias is None else np.asarray(user_bias, P.dtype)
        bi = np.zeros(len(Q), P.dtype) if item_bias is None else np.asarray(item_bias, P.dtype)
        if seen is None:
            seen = (np.zeros(len(P) + 1, dtype=np.int64), np.zeros(0, dtype=np.int32))
        model = cls(**{"factors": P.shape[1], "dtype": P.dtype.name, **params}, use_bias=use_bias)
        model.set_fitted(
            FittedState(
                user_factors=P,
                item_factors=Q,
                user_bias=bu,
                item_bias=bi,
                global_mean=float(global_mean),
                user_map=user_map,
                item_map=item_map,
                scale=(float(scale[0]), float(scale[1])),
                seen_indptr=np.asarray(seen[0], dtype=np.int64),
                seen_indices=np.asarray(seen[1], dtype=np.int32),
                history=History(
                    {"epoch": np.zeros(1, np.int64), "train_rmse": np.full(1, math.nan)}
                ),
                best_epoch=0,
                stop_reason="from_factors",
                seed=0,
            )
        )
        return model

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted model to `path` (an ``.npz`` archive, written atomically)."""
        from mfrec.model.modelfile import SavedModel, save_model

        check_fitted(self)
        save_model(
            path,
            SavedModel(
                self.fitted_state(), bool(self.use_bias), hyperparameters=self._saved_params()
            ),
        )

    def _saved_params(self) -> dict[str, Any]:
        """The constructor parameters as JSON-able values."""
        hyper = self.get_params()
        # Objects that JSON cannot hold: the data set and the generator are not part of the
        # model; seed_ reproduces the fit.
        if isinstance(hyper["validation"], RatingData):
            hyper["validation"] = None
        if isinstance(hyper["seed"], np.random.Generator):
            hyper["seed"] = None
        hyper["dtype"] = dtype_name(hyper["dtype"])
        return _plain(hyper)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MatrixFactorization:
        """Read a model written by `save`; raises ModelFileError on a bad file."""
        from mfrec.model.modelfile import load_model

        saved = load_model(path)
        try:
            model = cls(**saved.hyperparameters)
        except TypeError as exc:
            raise ModelFileError(f"{path}: unexpected hyperparameters ({exc})") from exc
        return model.set_fitted(saved.state)


# -- helpers ---------------------------------------------------------------------------------


def _same(a: object, b: object) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return a is b


#: What a model knows of a (user, item) pair, by (user known) * 2 + (item known).
KNOWN = ("none", "item", "user", "both")


def known_labels(users: NDArray[np.integer], items: NDArray[np.integer]) -> NDArray[np.str_]:
    """Per pair of indices (-1: unknown), which side the model knows: a value of `KNOWN`."""
    code = (np.asarray(users) >= 0) * 2 + (np.asarray(items) >= 0)
    return np.asarray(KNOWN)[code]


def _one_row(
    ids: NDArray[np.object_], scores: NDArray[np.float64]
) -> tuple[NDArray[np.object_], NDArray[np.float64]]:
    """The first row of padded (ids, scores), without its padding."""
    n = int(np.count_nonzero(ids[0] != None))  # noqa: E711 (elementwise on an object array)
    return ids[0, :n], scores[0, :n]


def _as_ids(values: ArrayLike) -> NDArray[np.str_] | NDArray[np.object_]:
    """Raw IDs as strings, flat: an object array of ``str`` as it is (what ``astype(str)``
    would copy it to, unless an ID ends in NUL, which numpy's strings drop), anything else
    through ``astype(str)``."""
    arr = np.asarray(values)
    if arr.dtype == object and arr.size:
        flat = arr.ravel()
        strings = flat.tolist()
        if set(map(type, strings)) == {str} and "\x00" not in "".join(strings):
            return flat
    return arr.astype(str).ravel()


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Numpy scalars as Python ones, so the parameters serialize to JSON."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}
