"""Training on Dask (`mfrec.distributed`): ingest, DSGD, distributed bgd, checkpoints, CLI.

A LocalCluster of 2 single-threaded workers in this process serves most tests; one module
fixture starts `dask scheduler` and two `dask worker` processes on 127.0.0.1 for the CLI's
--scheduler and for a worker killed mid-run. Everything skips when Dask is not installed,
except the CLI's error for that case.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mfrec.cli import cli
from mfrec.model.estimator import MatrixFactorization
from mfrec.ratings.load import load_ratings
from mfrec.training.fitting import check_params

# A local Dask cluster takes seconds to start and compiles the distributed kernels: these
# run with the slow tests (make test-slow).
pytestmark = pytest.mark.slow

needs_dask = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("dask", "distributed", "pyarrow")),
    reason="needs mfrec[dask]",
)


DASK = [sys.executable, "-m", "dask"]


def run(*args, catch=True):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=catch)


@pytest.fixture(scope="module")
def frame():
    """About 1,200 ratings of 60 users on 40 items (rank 2 plus noise), string IDs."""
    rng = np.random.default_rng(7)
    users, items = np.nonzero(rng.random((60, 40)) < 0.5)
    order = rng.permutation(len(users))
    users, items = users[order], items[order]
    P, Q = rng.normal(size=(60, 2)), rng.normal(size=(40, 2))
    r = 3 + np.einsum("nk,nk->n", P[users], Q[items]) + rng.normal(0, 0.3, len(users))
    return pd.DataFrame(
        {
            "user": [f"u{u:03d}" for u in users],
            "item": [f"i{i}" for i in items],
            "rating": np.clip(np.round(r), 1, 5),
        }
    )


@pytest.fixture(scope="module")
def ratings_csv(frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    from mfrec.distributed.engine import connect

    with connect(n_workers=2, processes=False) as c:
        yield c


# -- ingest ----------------------------------------------------------------------------------


def _grid(client, source, *, d=3, seed=0, duplicates="last", scale=None):
    from mfrec.distributed.fit import LAYOUT_STREAM, _stream
    from mfrec.distributed.ingest import ingest, read_frame

    return ingest(
        client,
        read_frame(str(source)),
        source=str(source),
        d_rows=d,
        d_cols=d,
        rng=_stream(seed, LAYOUT_STREAM),
        dtype=np.dtype(np.float64),
        scale=scale,
        duplicates=duplicates,
    )


def _triples(client, grid):
    """Every rating held by the grid as (user ID, item ID, rating), sorted."""
    rows = []
    lay = grid.layout
    for a, stripe in enumerate(client.gather(grid.stripes)):
        for b, blk in enumerate(stripe.blocks):
            u = grid.user_map.ids[lay.user_members(a)[blk.users]]
            i = grid.item_map.ids[lay.item_members(b)[blk.items]]
            rows += zip(u, i, blk.ratings.tolist(), strict=True)
    return sorted(rows)


@needs_dask
def test_ingest_builds_the_local_id_maps_and_holds_every_rating_once(client, ratings_csv):
    local = load_ratings(ratings_csv)
    grid = _grid(client, ratings_csv)
    assert grid.user_map == local.user_map
    assert grid.item_map == local.item_map
    assert grid.n_ratings == len(local)
    assert grid.mu == pytest.approx(local.ratings.mean())
    assert grid.scale == local.scale
    expected = sorted(
        zip(
            local.user_map.ids[local.users],
            local.item_map.ids[local.items],
            local.ratings.tolist(),
            strict=True,
        )
    )
    assert _triples(client, grid) == expected
    # Every worker owns a share of the stripes.
    assert len(set(grid.owners)) == 2


@needs_dask
def test_ingest_reads_globs_of_csv_and_parquet_directories(client, frame, tmp_path):
    local = load_ratings(frame)
    parts = np.array_split(np.arange(len(frame)), 3)
    part1 = parts[1]
    for j, part in enumerate(parts):
        frame.iloc[part].to_csv(tmp_path / f"part{j}.csv", index=False)
        (tmp_path / "pq").mkdir(exist_ok=True)
        frame.iloc[part].to_parquet(tmp_path / "pq" / f"part{j}.parquet")
    for source in (tmp_path / "part*.csv", tmp_path / "pq", f"file://{tmp_path}/part1.csv"):
        grid = _grid(client, source)
        if str(source).endswith("part1.csv"):  # one of the three files, through a URL
            assert grid.n_ratings == len(frame.iloc[part1]) > 0
            continue
        assert grid.user_map == local.user_map, source
        assert grid.n_ratings == len(local)


@needs_dask
def test_ingest_resolves_duplicates_as_the_local_loader(client, tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("user,item,rating\na,x,1\nb,x,2\na,x,3\na,y,4\na,x,5\n")
    for policy, rating in (("last", 5.0), ("mean", 3.0)):
        grid = _grid(client, path, d=2, duplicates=policy)
        assert ("a", "x", rating) in _triples(client, grid)
        assert grid.n_ratings == 3
    from mfrec.errors import DataFormatError

    with pytest.raises(DataFormatError) as err:
        _grid(client, path, d=2, duplicates="error")
    assert str(err.value) == (
        f"{path}: user 'a' rated item 'x' twice; choose --duplicates last or mean"
    )


@needs_dask
def test_ingest_names_a_bad_rating(client, tmp_path):
    from mfrec.errors import DataFormatError

    path = tmp_path / "bad.csv"
    path.write_text("user,item,rating\na,x,1\nb,y,9\nc,z,\n")
    with pytest.raises(DataFormatError) as err:
        _grid(client, path, d=1, scale=(1, 5))
    assert str(err.value) == f"{path}: user 'b', item 'y': rating 9 is outside the scale 1..5"
    with pytest.raises(DataFormatError) as err:
        _grid(client, path, d=1)
    assert str(err.value) == f"{path}: user 'c', item 'z': rating is missing"


# -- DSGD ------------------------------------------------------------------------------------


@needs_dask
def test_block_scheduler_hands_out_each_block_once_without_conflicts():
    from mfrec.distributed.dsgd import BlockScheduler

    owners = ["w0", "w1", "w0", "w1", "w0"]
    sched = BlockScheduler(owners, 4, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(3):
        sched.start_epoch()
        running, seen = [], []
        while not sched.finished:
            for worker in ("w0", "w1"):
                block = sched.take(worker)
                if block is not None:
                    assert owners[block[0]] == worker
                    assert all(block[0] != a and block[1] != b for a, b in running)
                    running.append(block)
                    seen.append(block)
            # Never stuck: with nothing running, some worker can always start a block.
            assert running or sched.finished
            if running:
                sched.finish(running.pop(int(rng.integers(len(running)))))
        assert sorted(seen) == [(a, b) for a in range(5) for b in range(4)]


@pytest.fixture(scope="module")
def larger_csv(tmp_path_factory):
    """About 30,000 ratings: blocks large enough for local SGD's blocked kernel."""
    rng = np.random.default_rng(8)
    users, items = np.nonzero(rng.random((300, 200)) < 0.5)
    path = tmp_path_factory.mktemp("data") / "larger.csv"
    pd.DataFrame({"user": users, "item": items, "rating": rng.integers(1, 6, len(users))}).to_csv(
        path, index=False
    )
    return path


@needs_dask
@pytest.mark.parametrize(
    ("solver", "data", "d"),
    [("sgd", "ratings_csv", 3), ("minibatch", "ratings_csv", 3), ("sgd", "larger_csv", 2)],
)
def test_dsgd_on_the_cluster_equals_replaying_its_schedule(client, request, solver, data, d):
    from mfrec.distributed import dsgd
    from mfrec.distributed.fit import fit_dask
    from mfrec.distributed.grid import Side, sides_of
    from mfrec.training.blocks import grid_size
    from mfrec.training.optimizers import OptimizerState
    from mfrec.training.state import Factors

    source = request.getfixturevalue(data)
    # lr: the default (decaying from 0.08) is too large a step to lower J within 3 epochs on
    # larger_csv's pure-noise ratings, which the last assertion checks.
    model = MatrixFactorization(
        solver, factors=3, epochs=3, seed=5, dtype="float64", batch_size=7, lr=0.02
    )
    report = fit_dask(model, str(source), client=client, blocks=d)
    assert report.grid == (d, d)
    for epoch in report.schedule:
        assert sorted(epoch) == [(a, b) for a in range(d) for b in range(d)]

    # The same start and blocks, in this process: the ingest and the start depend on the seed.
    grid = _grid(client, source, d=d, seed=5)
    stripes = client.gather(grid.stripes)
    if data == "larger_csv":  # every block goes through SGD's blocked, cache-aware kernel
        assert all(grid_size(len(blk)) > 1 for stripe in stripes for blk in stripe.blocks)
    _, params = check_params(model.get_params())
    optimizer = "constant" if solver == "sgd" else "adam"
    start = Factors.initial(
        grid.n_users,
        grid.n_items,
        3,
        mu=grid.mu,
        use_bias=True,
        init_std=model.init_std,
        dtype=np.float64,
        rng=np.random.default_rng(5),
    )
    opt = OptimizerState.create(optimizer, start)
    user, item = sides_of(start, opt)
    users = [user.take(grid.layout.user_members(a)) for a in range(d)]
    items = [item.take(grid.layout.item_members(b)) for b in range(d)]
    job = dsgd.BlockJob(solver, params, optimizer, grid.mu, True, 5)
    users, items = dsgd.replay(stripes, users, items, report.schedule, job)

    P = Side.join(users, [grid.layout.user_members(a) for a in range(d)], grid.n_users)
    Q = Side.join(items, [grid.layout.item_members(b) for b in range(d)], grid.n_items)
    assert np.array_equal(model.user_factors_, P.X)
    assert np.array_equal(model.item_factors_, Q.X)
    assert np.array_equal(model.user_bias_, P.b)
    assert np.array_equal(model.item_bias_, Q.b)
    assert model.history_["objective"].iloc[-1] < model.history_["objective"].iloc[0]


@needs_dask
def test_dsgd_trains_as_well_as_local_sgd(client, ratings_csv):
    from mfrec.distributed.fit import fit_dask

    kw = dict(factors=3, epochs=8, seed=2, lr=0.02)
    distributed = MatrixFactorization("sgd", **kw)
    fit_dask(distributed, str(ratings_csv), client=client)
    local = MatrixFactorization("sgd", **kw).fit(load_ratings(ratings_csv))
    assert list(distributed.history_.columns) == list(local.history_.columns)
    # Same start; then another order over the ratings, to about the same place.
    assert distributed.history_["objective"].iloc[0] == pytest.approx(
        local.history_["objective"].iloc[0]
    )
    assert distributed.train_rmse_ == pytest.approx(local.train_rmse_, rel=0.05)


# -- bgd -------------------------------------------------------------------------------------


@needs_dask
def test_distributed_bgd_follows_local_bgd(client, ratings_csv):
    from mfrec.distributed.fit import fit_dask

    kw = dict(factors=4, epochs=6, seed=3, dtype="float64")
    distributed = MatrixFactorization("bgd", **kw)
    report = fit_dask(distributed, str(ratings_csv), client=client)
    local = MatrixFactorization("bgd", **kw).fit(load_ratings(ratings_csv))
    assert report.grid == (2, 1)
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        assert np.allclose(getattr(distributed, name), getattr(local, name), rtol=1e-9), name
    assert np.allclose(distributed.history_["objective"], local.history_["objective"], rtol=1e-9)
    assert np.allclose(distributed.history_["train_rmse"], local.history_["train_rmse"])
    assert list(distributed.history_["updates"]) == list(local.history_["updates"])
    assert distributed.global_mean_ == pytest.approx(local.global_mean_)
    # The same rated items per user (the order within a user may differ).
    assert np.array_equal(distributed.seen_indptr_, local.seen_indptr_)
    for u in range(0, len(local.seen_indptr_) - 1, 7):
        lo, hi = local.seen_indptr_[u], local.seen_indptr_[u + 1]
        assert sorted(distributed.seen_indices_[lo:hi]) == sorted(local.seen_indices_[lo:hi])


@needs_dask
def test_unsupported_settings_are_refused_before_any_work(client, ratings_csv):
    from mfrec.distributed.fit import fit_dask
    from mfrec.errors import ParameterError

    cases = [
        (MatrixFactorization("als"), {}, "solver='als': the dask engine runs sgd, minibatch, bgd"),
        (MatrixFactorization(validation=0.1), {}, "validation=0.1: not available on the dask"),
        (MatrixFactorization("bgd", line_search=True), {}, "line_search=True: not available"),
        (MatrixFactorization(), {"resume": True}, "resume=True: needs a checkpoint directory"),
        (MatrixFactorization(), {"checkpoint_every": 0}, "checkpoint_every=0: must be >= 1"),
    ]
    for model, kw, message in cases:
        with pytest.raises(ParameterError, match=message.replace("(", r"\(")):
            fit_dask(model, str(ratings_csv), client=client, **kw)


# -- checkpoints -----------------------------------------------------------------------------


@needs_dask
def test_resume_continues_from_the_checkpoint_and_refuses_other_runs(client, ratings_csv, tmp_path):
    from mfrec.distributed.checkpoint import CheckpointError, load_checkpoint
    from mfrec.distributed.fit import fit_dask

    ck = tmp_path / "ck"
    kw = dict(factors=3, seed=4, dtype="float64")
    first = MatrixFactorization("bgd", epochs=2, **kw)
    fit_dask(first, str(ratings_csv), client=client, checkpoint_dir=ck, checkpoint_every=2)
    saved = load_checkpoint(ck)
    assert saved.epoch == 2
    assert np.array_equal(saved.factors.P, first.user_factors_)

    resumed = MatrixFactorization("bgd", epochs=4, **kw)
    report = fit_dask(resumed, str(ratings_csv), client=client, checkpoint_dir=ck, resume=True)
    straight = MatrixFactorization("bgd", epochs=4, **kw)
    fit_dask(straight, str(ratings_csv), client=client)
    assert report.first_epoch == 2
    assert list(resumed.history_["epoch"]) == [0, 1, 2, 3, 4]
    assert np.allclose(resumed.user_factors_, straight.user_factors_, rtol=1e-12)
    assert load_checkpoint(ck).epoch == 4

    other = MatrixFactorization("bgd", epochs=4, **{**kw, "factors": 5})
    with pytest.raises(CheckpointError) as err:
        fit_dask(other, str(ratings_csv), client=client, checkpoint_dir=ck, resume=True)
    assert str(err.value) == (
        f"{ck / 'checkpoint.npz'}: the checkpoint is from a run with other settings "
        "(factors: 3 -> 5); resume with the same options, or start afresh without --resume"
    )
    with pytest.raises(CheckpointError) as err:
        fit_dask(other, str(ratings_csv), client=client, checkpoint_dir=tmp_path, resume=True)
    assert str(err.value) == (
        f"--resume: no checkpoint in {tmp_path} (expected {tmp_path / 'checkpoint.npz'})"
    )


# -- a cluster of processes, through the CLI -------------------------------------------------


@pytest.fixture(scope="module")
def process_cluster(tmp_path_factory):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, on free ports."""
    pytest.importorskip("distributed")
    tmp = tmp_path_factory.mktemp("cluster")
    info = tmp / "scheduler.json"
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    # --death-timeout: a worker whose scheduler is gone exits, whatever happened here.
    worker = ["--nthreads", "1", "--no-nanny", "--death-timeout", "20", *common]
    procs = [
        subprocess.Popen(
            [*DASK, "scheduler", "--port", "0", "--scheduler-file", str(info), *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        _wait_for(info.exists, "the scheduler to start")
        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [*DASK, "worker", address, *worker],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(address) as c:
            c.wait_for_workers(2, timeout=60)
            pids = c.run(os.getpid)
        yield address, pids
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for(condition, what, timeout=60.0):
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(0.1)


@needs_dask
def test_a_lost_worker_stops_the_run_and_resume_finishes_it(process_cluster, ratings_csv, tmp_path):
    from distributed import Client

    from mfrec.distributed.checkpoint import load_checkpoint
    from mfrec.distributed.engine import ClusterError
    from mfrec.distributed.fit import fit_dask

    address, pids = process_cluster
    # Through --scheduler: the model file predicts like any other.
    first = tmp_path / "first.npz"
    result = run(
        "train", ratings_csv, "-o", first, "--engine", "dask", "--scheduler", address,
        "--factors", 3, "--epochs", 2, "-q", catch=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("sgd: 2 epochs, train RMSE ")
    model = MatrixFactorization.load(first)
    assert model.predict(["u000"], ["i1"]).shape == (1,)

    # A worker killed after the checkpoint of epoch 2: epoch 3 cannot finish, no model.
    ck = tmp_path / "ck"
    victim = sorted(pids)[0]

    def kill_at_epoch_2(epoch, row):
        if epoch == 2:
            os.kill(pids[victim], signal.SIGKILL)

    killed = MatrixFactorization("sgd", factors=3, epochs=5, seed=0)
    with Client(address) as c, pytest.raises(ClusterError) as err:
        fit_dask(killed, str(ratings_csv), client=c, checkpoint_dir=ck, callback=kill_at_epoch_2)
    assert "epoch 3 did not finish and no model was written; run again with --resume" in str(
        err.value
    )
    assert not hasattr(killed, "user_factors_")
    assert load_checkpoint(ck).epoch == 2

    out = tmp_path / "resumed.npz"
    result = run(
        "train", ratings_csv, "-o", out, "--engine", "dask", "--scheduler", address,
        "--factors", 3, "--epochs", 5, "--checkpoint-dir", ck, "--resume", "-q", catch=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    model = MatrixFactorization.load(out)
    assert list(model.history_["epoch"]) == [0, 1, 2, 3, 4, 5]
    assert np.isfinite(model.user_factors_).all()
    assert model.train_rmse_ < model.history_["train_rmse"].iloc[0]
    assert np.isfinite(model.predict(["u000", "nobody"], ["i1", "i2"])).all()


@needs_dask
def test_an_unreachable_scheduler_is_named(ratings_csv, tmp_path, monkeypatch):
    from mfrec.distributed import engine

    monkeypatch.setattr(engine, "CONNECT_SECONDS", 0.5)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    result = run("train", ratings_csv, "-o", tmp_path / "m.npz", "--engine", "dask",
                 "--scheduler", address)  # fmt: skip
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot reach the Dask scheduler at {address}: ")
    assert not (tmp_path / "m.npz").exists()


# -- CLI errors ------------------------------------------------------------------------------


def test_engine_dask_without_dask_says_what_to_install(ratings_csv, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    result = run("train", ratings_csv, "-o", tmp_path / "m.npz", "--engine", "dask")
    assert result.exit_code == 2
    assert result.output == (
        "Error: the dask engine needs: pip install 'mfrec[dask]' (cannot import distributed)\n"
    )
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler: needs --engine dask"),
        (["--resume"], "--resume: needs --engine dask"),
        (["--engine", "dask", "--validation", "0.2"], "--validation: not available with"),
        (["--engine", "dask", "--resume"], "--resume: needs a checkpoint directory"),
        (["--engine", "dask", "--solver", "als"], "--solver 'als': the dask engine runs"),
    ],
)
def test_cli_cluster_options_are_checked(ratings_csv, tmp_path, args, message):
    if "--engine" in args:
        pytest.importorskip("distributed")
    result = run("train", ratings_csv, "-o", tmp_path / "m.npz", *args)
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {message}"), result.output
