"""Reading ratings on the cluster and shuffling them once into the block grid.

1. `read_frame`: a file, a directory or a glob of CSV or Parquet files, local or at any URL
   Dask can read, becomes a Dask DataFrame (user, item, rating). The layout (separator,
   header, columns) is detected on the first file's head exactly as the local loader does.
2. `ingest`: the frame is cleaned and kept in the workers' memory; each partition lists its
   distinct user and item IDs in order of first appearance and the lists are merged pairwise
   on the cluster, so only the distinct IDs ever reach this process, never all the raw IDs.
   The ID maps come out as the local loader's (same IDs, same order).
3. The IDs are numbered in a random order (`grid.Layout`), every rating is tagged with its
   user stripe, and one Dask shuffle puts each user stripe in its own partition. Each stripe
   is then split by item stripe into blocks on the worker that will train it (`grid.Stripe`),
   with repeated (user, item) pairs resolved as the local loader does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from mfrec.distributed import engine
from mfrec.distributed.grid import Layout, Stripe
from mfrec.errors import DataFormatError
from mfrec.ratings.idmap import IdMap
from mfrec.training.state import TrainSet

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client, Future

    from mfrec.ratings.sniff import TextFormat

logger = logging.getLogger(__name__)

#: Bytes of CSV per partition: large enough that per-task overhead does not matter.
BLOCKSIZE = "64MB"
#: Partitions whose distinct-ID lists one merge task combines.
MERGE_FAN_IN = 8
#: pos = partition << POS_SHIFT | row: the rating's place in the input, for duplicates="last".
POS_SHIFT = 40
_PARQUET_SUFFIXES = (".parquet", ".pq")
#: The dtype of IDs on the workers.
ARROW_STRINGS = pd.ArrowDtype(pa.large_string())


@dataclass
class Grid:
    """The training data on the cluster, and what this process knows about it.

    ``stripes[a]`` is a future of user stripe a's `Stripe`, held by worker ``owners[a]``.
    `mu` and `mean_square` are the mean rating and the mean squared rating (in the training
    dtype, summed in float64).
    """

    stripes: list[Future]
    owners: list[str]
    layout: Layout
    user_map: IdMap
    item_map: IdMap
    n_ratings: int
    mu: float
    mean_square: float
    scale: tuple[float, float]
    source: str

    @property
    def n_users(self) -> int:
        """Users in the ID map."""
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        """Items in the ID map."""
        return len(self.item_map)


def read_frame(
    source: str,
    *,
    preset: str = "auto",
    sep: str | None = None,
    header: bool | None = None,
    columns: Any = None,
    encoding: str | None = None,
    blocksize: str | int = BLOCKSIZE,
) -> dd.DataFrame:
    """The ratings at `source` as a Dask DataFrame with columns user, item (str), rating.

    `preset`, `sep`, `header`, `columns` and `encoding` mean what they mean to
    `mfrec.ratings.load.load_ratings`; whatever is left unset is detected on the first file.
    """
    import dask.dataframe as dd

    from mfrec.ratings.load import PRESETS
    from mfrec.ratings.sniff import normalize_sep, parse_columns, pick_columns

    engine.require_dask()
    if preset not in PRESETS:
        raise DataFormatError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    sep = p.sep if sep is None else normalize_sep(sep)
    header = p.header if header is None else header
    cols = p.columns if columns is None else parse_columns(columns)
    fs, paths = _expand(source)
    if _is_parquet(fs, paths[0]):
        import pyarrow.parquet as pq

        with fs.open(paths[0], "rb") as fh:
            names = [str(c) for c in pq.ParquetFile(fh).schema_arrow.names]
        picked = pick_columns(names, len(names), cols, source, None)
        frame = dd.read_parquet(_urls(fs, paths), columns=[names[j] for j in picked[:3]])
        return frame.rename(
            columns=dict(zip(frame.columns, ("user", "item", "rating"), strict=True))
        )
    found, encoding = _sniff(fs, paths[0], sep, header, cols, encoding)
    positions = found.positions[:3]
    kw: dict[str, Any] = dict(
        header=0 if found.header else None,
        names=list(range(found.n_fields)),
        usecols=positions,
        dtype={positions[0]: str, positions[1]: str, positions[2]: "float64"},
        keep_default_na=False,
        na_values={positions[2]: [""]},
        encoding=encoding,
        blocksize=blocksize,
        storage_options=fs.storage_options or None,
    )
    if found.sep == " ":
        kw["sep"] = r"\s+"
    elif len(found.sep) == 1:
        kw.update(sep=found.sep, skipinitialspace=True)
    else:
        kw.update(sep=found.sep, engine="python")
    frame = dd.read_csv(_urls(fs, paths), **kw)
    return frame.rename(columns=dict(zip(positions, ("user", "item", "rating"), strict=True)))[
        ["user", "item", "rating"]
    ]


def ingest(
    client: Client,
    frame: dd.DataFrame,
    *,
    source: str,
    d_rows: int,
    d_cols: int,
    rng: np.random.Generator,
    dtype: np.dtype,
    scale: tuple[float, float] | None = None,
    duplicates: str = "last",
) -> Grid:
    """Number the IDs, shuffle the ratings into a `d_rows` x `d_cols` grid and build stripes.

    Raises DataFormatError for missing IDs, ratings that are not finite numbers or lie outside
    `scale`, a repeated pair with ``duplicates="error"``, or no ratings at all.
    """
    from distributed import futures_of

    from mfrec.ratings.load import DUPLICATE_POLICIES

    if duplicates not in DUPLICATE_POLICIES:
        raise DataFormatError(
            f"duplicates={duplicates!r}: must be one of {', '.join(DUPLICATE_POLICIES)}"
        )
    clock = time.perf_counter()
    clean, (n_rows, low, high) = _read_clean(client, frame, source, scale)
    if n_rows == 0:
        raise DataFormatError("no ratings", source=source)
    if scale is None:
        scale = (low, high)
    logger.info("%s: %d rows read and checked in %.1f s", source, n_rows, _since(clock))
    clock = time.perf_counter()
    parts = futures_of(clean)
    user_map = IdMap(_distinct(client, parts, "user"))
    item_map = IdMap(_distinct(client, parts, "item"))
    logger.info(
        "ID maps of %d users and %d items in %.1f s", len(user_map), len(item_map), _since(clock)
    )
    clock = time.perf_counter()
    d_rows = max(1, min(d_rows, len(user_map)))
    d_cols = max(1, min(d_cols, len(item_map)))
    layout = Layout.random(len(user_map), len(item_map), d_rows, d_cols, rng)
    pieces = _shuffle(client, clean, user_map, item_map, layout)
    del clean, parts  # frees the raw ratings on the workers
    logger.info("shuffled into %d user stripes in %.1f s", d_rows, _since(clock))
    clock = time.perf_counter()
    owners = _owners(client, pieces)
    stripes = [
        client.submit(
            build_stripe,
            piece,
            a,
            len(layout.user_members(a)),
            d_cols,
            len(item_map),
            np.dtype(dtype).name,
            duplicates,
            workers=[owners[a]],
            allow_other_workers=False,
            pure=False,
        )
        for a, piece in enumerate(pieces)
    ]
    summaries = [
        client.submit(_stripe_summary, s, workers=[w]) for s, w in zip(stripes, owners, strict=True)
    ]
    sums = engine.gather(client, summaries, owners, lambda: "while building the blocks")
    del pieces  # the stripes hold the ratings now
    logger.info("%d x %d blocks built in %.1f s", d_rows, d_cols, _since(clock))
    for a, (_, _, _, dup) in enumerate(sums):
        if dup is not None:
            u = user_map.ids[layout.user_members(a)[dup[0]]]
            i = item_map.ids[layout.item_order[dup[1]]]
            raise DataFormatError(
                f"user {u!r} rated item {i!r} twice; choose --duplicates last or mean",
                source=source,
            )
    n_ratings = sum(s[0] for s in sums)
    return Grid(
        stripes=stripes,
        owners=owners,
        layout=layout,
        user_map=user_map,
        item_map=item_map,
        n_ratings=n_ratings,
        mu=sum(s[1] for s in sums) / n_ratings,
        mean_square=sum(s[2] for s in sums) / n_ratings,
        scale=(float(scale[0]), float(scale[1])),
        source=source,
    )


def _since(clock: float) -> float:
    return time.perf_counter() - clock


def _read_clean(
    client: Client, frame: dd.DataFrame, source: str, scale: tuple[float, float] | None
) -> tuple[dd.DataFrame, tuple[int, float, float]]:
    """The cleaned ratings, kept in the workers' memory, and (rows, lowest, highest rating)."""
    from distributed import futures_of, wait

    meta = pd.DataFrame(
        {
            "user": pd.Series(dtype=ARROW_STRINGS),
            "item": pd.Series(dtype=ARROW_STRINGS),
            "rating": pd.Series(dtype="float64"),
            "pos": pd.Series(dtype="int64"),
        }
    )
    clean = frame.map_partitions(_clean, source, scale, meta=meta).persist()
    try:
        wait(clean)
        summary = client.gather(client.map(_summary, futures_of(clean), pure=False))
    except DataFormatError:
        raise
    except (ValueError, TypeError) as exc:  # a field that does not parse as a rating
        raise DataFormatError(f"cannot read the ratings ({exc})", source=source) from None
    rated = [s for s in summary if s[0]]
    n_rows = sum(s[0] for s in rated)
    if not rated:
        return clean, (0, np.nan, np.nan)
    return clean, (n_rows, min(s[1] for s in rated), max(s[2] for s in rated))


def _shuffle(
    client: Client, clean: dd.DataFrame, user_map: IdMap, item_map: IdMap, layout: Layout
) -> list[Future]:
    """Dask's shuffle of the ratings by user stripe: partition a holds user stripe a."""
    from distributed import futures_of, wait

    by_rank = [
        pa.array(ids.ids[order], type=pa.large_string())
        for ids, order in ((user_map, layout.user_order), (item_map, layout.item_order))
    ]
    user_rank, item_rank = (client.scatter(ids, broadcast=True) for ids in by_rank)
    meta = pd.DataFrame(
        {
            "stripe": pd.Series(dtype="int32"),
            "u": pd.Series(dtype="int32"),
            "i": pd.Series(dtype="int32"),
            "rating": pd.Series(dtype="float64"),
            "pos": pd.Series(dtype="int64"),
        }
    )
    d = layout.d_rows
    tagged = clean.map_partitions(_tag, user_rank, item_rank, d, meta=meta)
    shuffled = tagged.set_index("stripe", divisions=[*range(d), d - 1]).persist()
    wait(shuffled)
    return futures_of(shuffled)


# -- reading -------------------------------------------------------------------------------


def _expand(source: str) -> tuple[Any, list[str]]:
    """The filesystem and the data files of `source` (a file, a directory or a glob)."""
    from fsspec.core import get_fs_token_paths

    try:
        fs, _, paths = get_fs_token_paths(source)
    except (OSError, ValueError, ImportError) as exc:
        raise DataFormatError(f"cannot open ({exc})", source=source) from None
    files: list[str] = []
    for path in paths:
        if fs.isdir(path):
            files.extend(
                sorted(
                    f
                    for f in fs.find(path)
                    if not Path(f).name.startswith((".", "_")) and fs.isfile(f)
                )
            )
        elif fs.exists(path):
            files.append(path)
    if not files:
        raise DataFormatError("no such file, or no files match", source=source)
    return fs, files


def _urls(fs: Any, paths: list[str]) -> list[str]:
    return [fs.unstrip_protocol(p) for p in paths]


def _is_parquet(fs: Any, path: str) -> bool:
    if path.lower().endswith(_PARQUET_SUFFIXES):
        return True
    with fs.open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _sniff(fs: Any, path: str, sep, header, cols, encoding: str | None) -> tuple[TextFormat, str]:
    """The local loader's layout detection, run on the (decompressed) head of `path`: the
    layout, and the encoding to read the files with."""
    from mfrec.ratings.sniff import SNIFF_BYTES, decode_head, sniff_layout

    src = fs.unstrip_protocol(path)
    with fs.open(path, "rb", compression="infer") as fh:
        head = fh.read(SNIFF_BYTES)
    text, found_encoding = decode_head(head, encoding, src)
    if found_encoding == "latin-1" and encoding is None:
        logger.warning("%s is not valid UTF-8; reading it as latin-1", src)
    found = sniff_layout(
        text, truncated=len(head) == SNIFF_BYTES, sep=sep, header=header, cols=cols, src=src
    )
    return found, found_encoding


# -- on the workers --------------------------------------------------------------------------


def _clean(
    part: pd.DataFrame,
    source: str,
    scale: tuple[float, float] | None,
    partition_info: dict | None = None,
) -> pd.DataFrame:
    """IDs as stripped strings, ratings checked, and each row's place in the input.

    The IDs stay Arrow strings (`ARROW_STRINGS`): compact, and hashed in C++ by `_distinct_ids`
    and `_tag`, where Python string objects would take several times the memory.
    """
    from mfrec.ratings.checks import id_strings, rating_problem

    number = partition_info["number"] if partition_info else 0
    out = {}
    for role in ("user", "item"):
        col = part[role]
        missing = col.isna().to_numpy()
        if missing.any():
            raise DataFormatError(f"a rating without a {role} ID", source=source)
        if not pd.api.types.is_string_dtype(col):  # numbers (Parquet): as the local loader
            col = pd.Series(id_strings(col), dtype=object)
        out[role] = col.astype(ARROW_STRINGS).str.strip().array
    r = pd.to_numeric(part["rating"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(r)
    if scale is not None:
        bad |= (r < scale[0]) | (r > scale[1])
    if bad.any():
        j = int(np.argmax(bad))
        # The text is parsed already: a missing rating arrives as NaN.
        problem = rating_problem("" if np.isnan(r[j]) else f"{r[j]:g}", scale)
        raise DataFormatError(
            f"user {out['user'][j]!r}, item {out['item'][j]!r}: {problem}", source=source
        )
    out["rating"] = r
    out["pos"] = (np.int64(number) << POS_SHIFT) + np.arange(len(part), dtype=np.int64)
    return pd.DataFrame(out)


def _summary(part: pd.DataFrame) -> tuple[int, float, float]:
    r = part["rating"].to_numpy()
    if len(r) == 0:
        return 0, np.inf, -np.inf
    return len(r), float(r.min()), float(r.max())


def _arrow(values: pd.Series) -> pa.Array:
    return pa.array(values.array).cast(pa.large_string())


def _distinct_ids(part: pd.DataFrame, role: str) -> pa.Array:
    """A partition's distinct IDs, in order of first appearance."""
    return pc.unique(_arrow(part[role]))


def _merge_ids(*lists: pa.Array) -> pa.Array:
    """The distinct IDs of consecutive partitions, in order of first appearance."""
    return pc.unique(pa.chunked_array(lists, type=pa.large_string()))


def _distinct(client: Client, parts: list[Future], role: str) -> NDArray[np.object_]:
    level = client.map(_distinct_ids, parts, role=role, pure=False)
    while len(level) > 1:
        level = [
            client.submit(_merge_ids, *level[j : j + MERGE_FAN_IN], pure=False)
            for j in range(0, len(level), MERGE_FAN_IN)
        ]
    return level[0].result().to_numpy(zero_copy_only=False)


def _tag(part: pd.DataFrame, user_rank: pa.Array, item_rank: pa.Array, d_rows: int) -> pd.DataFrame:
    """Each rating's user stripe, local user row and item rank (`*_rank`: IDs by rank)."""
    # int32 like the grid's indices: the shuffle moves 20 bytes per rating, not 40.
    ru = pc.index_in(_arrow(part["user"]), value_set=user_rank).to_numpy().astype(np.int32)
    ri = pc.index_in(_arrow(part["item"]), value_set=item_rank).to_numpy().astype(np.int32)
    return pd.DataFrame(
        {
            "stripe": ru % d_rows,
            "u": ru // d_rows,
            "i": ri,
            "rating": part["rating"].to_numpy(),
            "pos": part["pos"].to_numpy(),
        }
    )


def _owners(client: Client, pieces: list[Future]) -> list[str]:
    """A worker per stripe: where the shuffle left it, unless that worker has its share."""
    holders = client.who_has(pieces)
    pool = sorted(engine.workers(client))
    quota = -(-len(pieces) // len(pool))
    load = dict.fromkeys(pool, 0)
    owners = []
    for piece in pieces:
        held = [w for w in holders.get(piece.key, ()) if w in load and load[w] < quota]
        owner = held[0] if held else min(pool, key=lambda w: load[w])
        load[owner] += 1
        owners.append(owner)
    return owners


def build_stripe(
    part: pd.DataFrame,
    index: int,
    n_users: int,
    d_cols: int,
    n_items: int,
    dtype: str,
    duplicates: str,
) -> Stripe:
    """Stripe `index` from its shuffled ratings: duplicates resolved, split by item stripe.

    Ratings keep their input order within a block (the shuffle does not keep it), so that the
    blocks, and the training that runs on them, depend on the data and the seed alone.
    """
    from mfrec.ratings.checks import pair_keys, resolve_duplicates

    order = np.argsort(part["pos"].to_numpy(), kind="stable")
    users = part["u"].to_numpy()[order]
    ranks = part["i"].to_numpy()[order]
    ratings = part["rating"].to_numpy()[order]
    key = pair_keys(users, ranks, n_items)
    dup = pd.Series(key).duplicated(keep=False).to_numpy()
    first_duplicate = None
    if dup.any():
        if duplicates == "error":
            j = int(np.argmax(dup))
            first_duplicate = (int(users[j]), int(ranks[j]))
        else:
            users, ranks, ratings, _ = resolve_duplicates(
                key, dup, users, ranks, ratings, None, None, None, duplicates, None, None
            )
    cols = ranks % d_cols
    by_col = np.argsort(cols, kind="stable")
    bounds = np.searchsorted(cols[by_col], np.arange(d_cols + 1))
    values = ratings.astype(dtype)
    blocks = []
    for b in range(d_cols):
        sel = by_col[bounds[b] : bounds[b + 1]]
        blocks.append(
            TrainSet(
                np.ascontiguousarray(users[sel], dtype=np.int32),
                np.ascontiguousarray(ranks[sel] // d_cols, dtype=np.int32),
                np.ascontiguousarray(values[sel]),
                n_users,
                len(range(b, n_items, d_cols)),
            )
        )
    wide = values.astype(np.float64)
    return Stripe(index, n_users, blocks, float(wide.sum()), float(wide @ wide), first_duplicate)


def _stripe_summary(stripe: Stripe) -> tuple[int, float, float, tuple[int, int] | None]:
    return stripe.n_ratings, stripe.rating_sum, stripe.square_sum, stripe.first_duplicate
