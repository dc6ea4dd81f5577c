"""Kernels that import numba only when they first run compiled by it.

numba's import and its start-up on the first call of a cached kernel cost ~0.4 s, more than a
whole small fit. Kernel modules therefore decorate with `njit` from here: it returns a `Kernel`
that calls `mfrec.kernels.native`'s ahead-of-time build when one is in use, and otherwise
compiles the function with ``numba.njit`` on first call, as the decorator would have. Kernel
modules import `prange` from here too, and name the numba intrinsics they call with `lazy`, so
that importing them imports no numba.

When a kernel compiles, its module's `prange` and `lazy` names are replaced by numba's own
objects. A `Kernel` called from compiled code is typed as numba's dispatcher (or, while
`serial` is on, a dispatcher of the same function with ``parallel`` off, which is what the
ahead-of-time build compiles).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mfrec.kernels import native


def prange(*args: int) -> range:
    """numba's ``prange`` in compiled code (bound when the kernel is compiled); ``range`` here."""
    return range(*args)


_state = threading.local()
_bound = False


@contextmanager
def serial() -> Iterator[None]:
    """While on, kernels called from compiled code are typed as their serial dispatchers."""
    _state.serial = True
    try:
        yield
    finally:
        _state.serial = False


class Kernel:
    """A function compiled by numba on first use, with ``numba.njit(**options)``."""

    def __init__(self, py_func: Callable[..., Any], options: dict[str, Any]):
        self.py_func = py_func
        self.options = options
        self.__name__ = py_func.__name__
        self.__qualname__ = py_func.__qualname__
        self.__module__ = py_func.__module__
        self.__doc__ = py_func.__doc__
        self.__wrapped__ = py_func
        self._jit: Any = None
        self._serial: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        built = None if kwargs else native.lookup(self, args)
        if built is not None:
            return built(*args)
        return self.dispatcher(*args, **kwargs)

    @property
    def dispatcher(self) -> Any:
        """numba's dispatcher of the function, with its options (created on first use)."""
        if self._jit is None:
            self._jit = _compile(self.py_func, self.options)
        return self._jit

    @property
    def serial_dispatcher(self) -> Any:
        """A dispatcher of the same function with ``parallel`` off and no cache (``prange``
        runs as ``range``): what `mfrec.kernels.native` compiles ahead of time."""
        if self._serial is None:
            options = {k: v for k, v in self.options.items() if k not in ("parallel", "cache")}
            self._serial = _compile(self.py_func, options)
        return self._serial

    def current(self) -> Any:
        """The dispatcher compiled code calls: the serial one while `serial` is on."""
        return self.serial_dispatcher if getattr(_state, "serial", False) else self.dispatcher

    def __getattr__(self, name: str) -> Any:
        # Introspection (signatures, inspect_llvm, ...) goes to numba's dispatcher.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.dispatcher, name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_import, (self.__module__, self.__qualname__))

    def __repr__(self) -> str:
        return f"<Kernel {self.__module__}.{self.__qualname__}>"


def njit(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """``numba.njit`` that defers numba's import and compilation to the first call."""
    if func is not None:
        return Kernel(func, options)
    return lambda f: Kernel(f, options)


class Lazy:
    """A numba object (an intrinsic) defined in a module that imports numba: imported when a
    kernel that names it is compiled."""

    def __init__(self, module: str, name: str):
        self.module = module
        self.name = name

    def resolve(self) -> Any:
        """The object itself (its module imported)."""
        return getattr(importlib.import_module(self.module), self.name)


def lazy(module: str, *names: str) -> tuple[Lazy, ...]:
    """`Lazy` handles on `names` in `module`, in order."""
    return tuple(Lazy(module, name) for name in names)


def _import(module: str, qualname: str) -> Any:
    return getattr(importlib.import_module(module), qualname)


def _compile(py_func: Callable[..., Any], options: dict[str, Any]) -> Any:
    import numba

    register_with_numba()
    # numba reads the kernel's names from its module when it compiles: there `prange` and
    # the `Lazy` handles become numba's own objects, for good (no pure-Python caller uses them).
    names = py_func.__globals__
    for name, value in list(names.items()):
        if value is prange:
            names[name] = numba.prange
        elif isinstance(value, Lazy):
            names[name] = value.resolve()
    return numba.njit(**options)(py_func)


def register_with_numba() -> None:
    """Teach numba's typing that a `Kernel` in compiled code is its current dispatcher (once;
    numba calls this through the ``numba_extensions`` entry point before it compiles)."""
    global _bound
    if _bound:
        return
    from numba.extending import typeof_impl

    @typeof_impl.register(Kernel)
    def _typeof_kernel(val: Kernel, c: Any) -> Any:
        return val.current()._numba_type_

    _bound = True
