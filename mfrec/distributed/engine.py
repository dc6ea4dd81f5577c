"""The cluster: connecting to one (or starting a LocalCluster), watching its workers, and
reading its transfer counters.

Dask is imported here, lazily: `require_dask` turns a missing install into a one-line error.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

from mfrec.errors import MfrecError, ParameterError

if TYPE_CHECKING:
    from distributed import Client, Future

logger = logging.getLogger(__name__)

#: How often (seconds) a wait on the cluster checks that the workers holding data are alive.
POLL_SECONDS = 0.5
#: How long to try reaching a scheduler given by address.
CONNECT_SECONDS = 10
INSTALL_HINT = "the dask engine needs: pip install 'mfrec[dask]'"


class DaskUnavailableError(MfrecError):
    """``--engine dask`` without Dask installed."""

    exit_code = 2


class ClusterError(MfrecError):
    """The cluster cannot be reached, or lost a worker (and with it data) during training."""

    exit_code = 1


def require_dask() -> None:
    """Import dask.dataframe and distributed, or raise DaskUnavailableError saying what to do."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise DaskUnavailableError(f"{INSTALL_HINT} (cannot import {exc.name})") from None


@contextlib.contextmanager
def connect(
    scheduler: str | None = None,
    n_workers: int | None = None,
    *,
    processes: bool = True,
) -> Iterator[Client]:
    """A Client of the scheduler at `scheduler`, or of a new LocalCluster, closed on exit.

    The LocalCluster has `n_workers` workers (default: one per core) of one thread each: the
    kernels are single-threaded, and one thread per worker keeps one block per worker.
    `processes=False` runs the workers as threads of this process (for tests).
    """
    require_dask()
    from distributed import Client, LocalCluster

    if scheduler is not None and n_workers is not None:
        raise ParameterError("n_workers", n_workers, "sizes a local cluster: not with a scheduler")
    if n_workers is not None and n_workers < 1:
        raise ParameterError("n_workers", n_workers, "must be >= 1")
    # The P2P shuffle logs every shuffle's start and end as a warning: routine, not a problem.
    logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
    if scheduler is None:
        n = n_workers or os.cpu_count() or 1
        with (
            LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(scheduler, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    with client:
        if not client.nthreads():
            client.wait_for_workers(1, timeout=30)
        yield client


def workers(client: Client) -> dict[str, int]:
    """Address -> threads of every worker the scheduler knows now (asks the scheduler)."""
    return dict(client.nthreads())


def outgoing_bytes(client: Client) -> int:
    """Bytes the workers have served to other workers and to clients so far.

    Dask's own counter (``Worker.transfer_outgoing_bytes_total``): every block of Q that moves
    between workers and every result gathered by this process passes through it. A worker that
    does not answer counts 0 (losing it is noticed, and reported, where its data is needed).
    """
    counts = client.run(_worker_outgoing_bytes, on_error="return")
    return sum(n for n in counts.values() if isinstance(n, int))


def _worker_outgoing_bytes(dask_worker: Any) -> int:
    return int(dask_worker.transfer_outgoing_bytes_total)


def wait_first(
    client: Client, futures: Iterable[Future], needed: Sequence[str], what: Callable[[], str]
) -> list[Future]:
    """Wait until at least one of `futures` is finished; return the finished ones.

    While waiting, checks every POLL_SECONDS that the workers in `needed` (those holding the
    training data) are still there: a lost worker took its ratings and factor rows with it, so
    training cannot go on, and ClusterError says so (`what()` names the epoch and checkpoint).
    A task that failed raises here too, as ClusterError unless it raised an MfrecError.
    """
    from distributed import wait

    pending = list(futures)
    while True:
        try:
            finished = wait(pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            finished = set()
        except CancelledError as exc:  # Dask gave up on a task whose inputs were lost
            raise lost(client, needed, what, exc) from None
        if finished:
            for fut in finished:
                check(fut, what)
            return [f for f in pending if f in finished]
        if set(needed) - set(workers(client)):
            raise lost(client, needed, what, None)


def lost(
    client: Client, needed: Sequence[str], what: Callable[[], str], exc: Exception | None
) -> ClusterError:
    """The error for data lost with a worker: names the workers gone, else Dask's reason."""
    gone = sorted(set(needed) - set(workers(client)))
    if gone:
        return ClusterError(f"worker {', '.join(gone)} left the cluster: {what()}")
    return ClusterError(f"training data was lost on the cluster ({exc}): {what()}")


def check(fut: Future, what: Callable[[], str]) -> None:
    """Raise the error of a finished future: its own MfrecError, else ClusterError."""
    if fut.status == "finished":
        return
    exc = fut.exception() if fut.status == "error" else None
    if isinstance(exc, MfrecError):
        raise exc
    reason = f"{type(exc).__name__}: {exc}" if exc is not None else f"task {fut.status}"
    raise ClusterError(f"a training task failed ({reason}): {what()}")


def gather(client: Client, futures: Any, needed: Sequence[str], what: Callable[[], str]) -> Any:
    """`client.gather` that turns a lost worker or a failed task into ClusterError."""
    flat = list(futures) if isinstance(futures, list | tuple) else [futures]
    remaining = list(flat)
    while remaining:
        done = set(wait_first(client, remaining, needed, what))
        remaining = [f for f in remaining if f not in done]
    try:
        return client.gather(futures)
    except (CancelledError, OSError) as exc:  # lost between finishing and being fetched
        raise lost(client, needed, what, exc) from None
