"""Kernels compiled ahead of time, so that a small fit starts without numba.

A process that runs numba kernels pays ~0.4 s before the first one runs (numba's import and
its start-up on loading a cached kernel); a fit on MovieLens 100k takes a tenth of that. While
`use` is on, `lookup` gives each kernel call a Python extension module compiled for the
argument types by ``numba.pycc`` from the kernel's serial dispatcher (``parallel`` off,
everything else as numba's JIT would compile it) and cached on disk: importing one takes a
millisecond and imports no numba. A call whose module is not cached yet builds it (numba is
imported then, once), so the first run costs about what numba's first JIT compile costs.

The built code is the JIT's code run on one thread: every parallel kernel of mfrec gives the
same result on any number of threads, so it gives the JIT's result bit for bit (tested).
`worthwhile` decides when the trade pays: numba not imported yet, and a fit small enough that
threads would save less time than numba's start-up costs.

Modules live in ``$MFREC_NATIVE_DIR``, else ``$NUMBA_CACHE_DIR/mfrec-native``, else
``$XDG_CACHE_HOME/mfrec/native`` (``~/.cache/mfrec/native``), in a folder named by a hash of
the mfrec sources, the numba and Python versions and the processor (`build_id`), so a change
of any of them builds anew; folders of other builds left alone for `KEEP_DAYS` go when a new
one starts. A machine that cannot build them (no C compiler, or a numba without ``pycc``)
leaves a note in its folder and runs numba's JIT from then on.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import shutil
import sys
import sysconfig
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mfrec.kernels.jit import Kernel

logger = logging.getLogger(__name__)

#: One thread's seconds per rating visit and factor (+16 for the cost of the visit itself):
#: the sgd kernel takes ~20 ns a rating at k=100 (benchmarks/RESULTS.md).
SECONDS_PER_UNIT = 1.7e-10
#: What numba costs a process before its first kernel runs (import and start-up), seconds.
NUMBA_START = 0.4

#: Builds of other mfrec sources (another version, another checkout) untouched for this many
#: days are removed when a new one starts.
KEEP_DAYS = 30
#: Every built module has this name (files differ): pycc's C support objects are compiled
#: for one module name, so one name lets every build reuse them.
MODULE_NAME = "mfrec_kernel"

_active = False
_loaded: dict[tuple[Kernel, str], Callable[..., Any]] = {}


@contextmanager
def use(on: bool = True) -> Iterator[None]:
    """Run kernel calls on the built modules inside the block when `on` (a block already
    using them keeps doing so)."""
    global _active
    before = _active
    _active = before or on
    try:
        yield
    finally:
        _active = before


def active() -> bool:
    """Whether kernel calls run on the built modules (single-threaded) right now."""
    return _active


def worthwhile(ratings: int, epochs: int, factors: int, threads: int | None) -> bool:
    """Whether a fit of this size should run on the built kernels (one thread): numba is not
    imported yet, what `threads` threads (None: all cores) would save is less than numba's
    start-up (`NUMBA_START`), building is possible here, and ``MFREC_NATIVE`` is not ``0``."""
    if os.environ.get("MFREC_NATIVE", "") == "0" or "numba" in sys.modules:
        return False
    cores = int(os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count() or 1)
    threads = cores if threads is None else max(1, min(threads, cores))
    one_thread = ratings * epochs * (factors + 16) * SECONDS_PER_UNIT
    if one_thread * (1 - 1 / threads) >= NUMBA_START:
        return False
    return not _unavailable_note().exists()


def lookup(kernel: Kernel, args: tuple[Any, ...]) -> Callable[..., Any] | None:
    """The built module's entry point for `kernel` on these arguments (building it if needed),
    or None when `use` is off or the arguments are not plain arrays and scalars."""
    if not _active:
        return None
    key = signature_key(args)
    if key is None:
        return None
    entry = _loaded.get((kernel, key))
    if entry is None:
        entry = _load_or_build(kernel, args, key)
        if entry is not None:
            _loaded[(kernel, key)] = entry
    return entry


def signature_key(args: tuple[Any, ...]) -> str | None:
    """The argument types as numba would type them (dtype, dimensions, layout, writable,
    aligned; scalar kinds), as text; None for anything else."""
    parts = []
    for a in args:
        if isinstance(a, np.ndarray):
            f = a.flags
            layout = "C" if f.c_contiguous else "F" if f.f_contiguous else "A"
            flags = ("" if f.writeable else "r") + ("" if f.aligned else "u")
            parts.append(f"{a.dtype.str}{a.ndim}{layout}{flags}")
        elif isinstance(a, (bool, np.bool_)):
            parts.append("?")
        elif isinstance(a, np.generic):
            parts.append(a.dtype.str)
        elif isinstance(a, int):
            # numba types a Python int as int64, or uint64 when it does not fit.
            parts.append("i8" if -(2**63) <= a < 2**63 else "u8")
        elif isinstance(a, float):
            parts.append("f8")
        else:
            return None
    return ",".join(parts)


def native_dir() -> Path:
    """Where the built modules are kept."""
    if os.environ.get("MFREC_NATIVE_DIR"):
        return Path(os.environ["MFREC_NATIVE_DIR"]).expanduser()
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]).expanduser() / "mfrec-native"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mfrec" / "native"


def build_dir() -> Path:
    """The folder of the modules built from these sources, numba and processor (`build_id`)."""
    return native_dir() / build_id()[:20]


def module_path(kernel: Kernel, key: str) -> Path:
    """The file of `kernel`'s module built for arguments of `signature_key` `key`."""
    digest = hashlib.sha1(f"{kernel.__module__}.{kernel.__qualname__}|{key}".encode())
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    return build_dir() / f"{kernel.__name__.strip('_')}-{digest.hexdigest()[:20]}{suffix}"


def _load_or_build(kernel: Kernel, args: tuple[Any, ...], key: str) -> Callable[..., Any] | None:
    path = module_path(kernel, key)
    if not path.exists():
        try:
            _build(kernel, args, path)
        except Exception as exc:  # any failure: numba's JIT runs instead
            _note_unavailable(exc)
            return None
    try:
        loader = importlib.machinery.ExtensionFileLoader(MODULE_NAME, str(path))
        spec = importlib.util.spec_from_file_location(MODULE_NAME, path, loader=loader)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        loader.exec_module(module)
    except ImportError as exc:
        # A damaged or foreign file: the next run builds it again.
        logger.warning("cannot load %s (%s): removed, using numba's JIT", path.name, exc)
        path.unlink(missing_ok=True)
        return None
    return module.run


def _build(kernel: Kernel, args: tuple[Any, ...], path: Path) -> None:
    """Compile `kernel`'s serial dispatcher for the types of `args` into extension `path`."""
    # The folder first: where it cannot be written, failing costs no compilation.
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        _prune(path.parent)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-") as tmp:
        from numba import typeof

        from mfrec.kernels.jit import serial

        params = ", ".join(f"a{n}" for n in range(len(args)))
        # A wrapper, compiled with pycc's own options, that calls the kernel: the kernel
        # keeps its decorator's options (fastmath), so the code is the JIT's.
        scope: dict[str, Any] = {"target": kernel.serial_dispatcher}
        exec(f"def run({params}):\n    return target({params})\n", scope)
        with serial():
            cc = _compiler_class()(MODULE_NAME)
            cc.output_dir = tmp
            cc.target_cpu = "host"
            cc.export("run", tuple(typeof(a) for a in args))(scope["run"])
            cc.compile()
        os.replace(Path(tmp) / f"{MODULE_NAME}{sysconfig.get_config_var('EXT_SUFFIX')}", path)
    logger.info("built %s for %s", kernel.__qualname__, path.name)


@functools.cache
def build_id() -> str:
    """A digest of what the built code depends on: mfrec's sources, numba's and llvmlite's
    installed files, the Python ABI and the processor (computed once per process)."""
    h = hashlib.sha1(sysconfig.get_config_var("EXT_SUFFIX").encode())
    package = Path(__file__).resolve().parent.parent
    for source in sorted(package.rglob("*.py")):
        h.update(source.relative_to(package).as_posix().encode())
        h.update(source.read_bytes())
    for dependency in ("numba", "llvmlite"):
        spec = importlib.util.find_spec(dependency)
        if spec is not None and spec.origin:
            stat = os.stat(spec.origin)
            h.update(f"{dependency}:{spec.origin}:{stat.st_mtime_ns}".encode())
    h.update(_processor().encode())
    return h.hexdigest()


def _processor() -> str:
    # "host" code uses every instruction this processor has: another one may lack some.
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            lines = [
                ln for ln in fh.read(1 << 16).splitlines() if ln.startswith(("model name", "flags"))
            ]
        return "\n".join(lines[:2])
    except OSError:
        import platform

        return f"{platform.machine()} {platform.processor()}"


def _prune(current: Path) -> None:
    """Remove the builds of other sources or versions left unchanged for `KEEP_DAYS`."""
    old = time.time() - KEEP_DAYS * 86400
    for other in current.parent.iterdir():
        if other != current and other.is_dir() and other.stat().st_mtime < old:
            shutil.rmtree(other, ignore_errors=True)


def _unavailable_note() -> Path:
    return build_dir() / "unavailable.txt"


def _note_unavailable(exc: Exception) -> None:
    logger.warning("ahead-of-time kernels unavailable here, using numba's JIT: %s", exc)
    note = _unavailable_note()
    try:
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text(f"{type(exc).__name__}: {exc}\n")
    except OSError:
        pass


@functools.cache
def _compiler_class() -> type:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's deprecation notice
        from numba.pycc import CC

    class Compiler(CC):
        """pycc's compiler, with its C support objects compiled once per build id."""

        def _compile_mixins(self, workdir: str) -> list[str]:
            cached = build_dir() / "support"
            if not cached.exists():
                with tempfile.TemporaryDirectory(dir=cached.parent, prefix=".support-") as tmp:
                    staged = Path(tmp) / "objects"
                    staged.mkdir()
                    for n, obj in enumerate(super()._compile_mixins(workdir)):
                        shutil.copy(obj, staged / f"{n:02d}-{Path(obj).name}")
                    try:
                        os.replace(staged, cached)
                    except OSError:
                        if not cached.exists():  # another process won the race otherwise
                            raise
            return [str(p) for p in sorted(cached.iterdir())]

    return Compiler
