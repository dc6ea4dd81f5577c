"""What a process pays before its first kernel runs, and the note shown when kernels compile.

The kernels are compiled by numba on a machine's first run and cached on disk (``cache=True``:
in ``__pycache__`` beside the modules, or in ``$NUMBA_CACHE_DIR``); later runs load them.
Either way, the first kernel a process calls makes numba load its own implementations, which
costs more than a fit of MovieLens 100k. Part of that is a probe for a BLAS: numba imports
scipy.linalg (0.13-0.2 s on a 2-core VM) to choose how its np.convolve and np.correlate will
multiply, though mfrec's kernels call no BLAS. `load_numba` loads the implementations with that
probe deferred to the first compiled function that asks for it.

`announce_compilation` prints a note when a kernel starts compiling (numba's ``numba:compile``
event fires on a cache miss only), so that a first run's wait is explained before it starts.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

#: Measured on a 2-core VM (benchmarks/RESULTS.md): a default fit compiles its kernels in
#: 15-26 s, depending on the solver.
COMPILE_NOTE = (
    "compiling the training kernels (first run on this machine, about 20 s; later runs reuse them)"
)

_BLAS = "scipy.linalg.cython_blas"


class DeferredBlasCheck:
    """Stands for numba's ``_HAVE_BLAS`` flag: whether a BLAS is available, found out (by
    numba's own check) the first time numba asks, then remembered."""

    def __init__(self, check: Callable[[], bool]):
        self._check = check
        self._value: bool | None = None

    def __bool__(self) -> bool:
        if self._value is None:
            self._value = bool(self._check())
        return self._value


def load_numba() -> None:
    """Import numba's array functions (which numba imports before its first compilation or
    cache load) with their BLAS probe deferred (module docstring). Nothing is deferred when
    they or scipy.linalg are imported already."""
    if "numba.np.arraymath" in sys.modules or _BLAS in sys.modules:
        return
    # None in sys.modules makes the import fail: numba's probe finds no BLAS, for now.
    sys.modules[_BLAS] = None  # type: ignore[assignment]
    try:
        arraymath = importlib.import_module("numba.np.arraymath")
    finally:
        if sys.modules.get(_BLAS, 0) is None:
            del sys.modules[_BLAS]
    if getattr(arraymath, "_HAVE_BLAS", None) is False:
        check = getattr(arraymath, "_check_blas", None)
        # A numba without the check it ran at import: probe now, as it would have.
        arraymath._HAVE_BLAS = DeferredBlasCheck(check) if callable(check) else _probe_blas()


def _probe_blas() -> bool:
    try:
        importlib.import_module(_BLAS)
    except ImportError:
        return False
    return True


@contextmanager
def announce_compilation(
    note: str | None = COMPILE_NOTE, stream: TextIO | None = None
) -> Iterator[None]:
    """Write `note` on `stream` (stderr) once, when the first function compiles inside the
    block (not when one loads from numba's cache); `note` None: nothing."""
    if note is None:
        yield
        return
    from numba.core import event

    class FirstCompile(event.Listener):
        said = False

        def on_start(self, ev: Any) -> None:
            if not self.said:
                self.said = True
                out = sys.stderr if stream is None else stream
                print(note, file=out, flush=True)

        def on_end(self, ev: Any) -> None:
            pass

    with event.install_listener("numba:compile", FirstCompile()):
        yield
