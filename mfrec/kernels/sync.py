"""Atomic operations on int64 arrays for numba kernels (numba has none on the CPU).

They let the threads of one parallel region hand work to each other without a barrier:

    fetch_add(a, i, v)       a[i] += v atomically; returns the value before
    load_acquire(a, i)       a[i], and every write made before the matching release is visible
    store_release(a, i, v)   a[i] = v, after every write this thread made before it
    yield_thread()           let another thread run (sched_yield; SwitchToThread on Windows)
"""

from __future__ import annotations

import sys

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _is_int_vector(ty: types.Type) -> bool:
    return (
        isinstance(ty, types.Array)
        and ty.ndim == 1
        and ty.layout == "C"
        and ty.dtype == types.int64
        and ty.mutable
    )


def _pointer(context, builder, sig, args):
    """Pointer to a[i] for the intrinsics' (a, i, ...) arguments."""
    aryty = sig.args[0]
    arr = context.make_array(aryty)(context, builder, args[0])
    index = context.cast(builder, args[1], sig.args[1], types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, arr, [index])


@intrinsic
def fetch_add(typingctx, a, i, v):
    """Atomically add `v` to a[i]; return the previous value."""
    if not (_is_int_vector(a) and isinstance(i, types.Integer) and isinstance(v, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig, args)
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, value, "acq_rel")

    return types.int64(a, i, v), codegen


@intrinsic
def load_acquire(typingctx, a, i):
    """a[i] with acquire ordering."""
    if not (_is_int_vector(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig, args)
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(a, i), codegen


@intrinsic
def store_release(typingctx, a, i, v):
    """a[i] = v with release ordering."""
    if not (_is_int_vector(a) and isinstance(i, types.Integer) and isinstance(v, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig, args)
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(value, ptr, "release", 8)
        return context.get_dummy_value()

    return types.none(a, i, v), codegen


#: The C function that gives the processor to another runnable thread.
_YIELD = "SwitchToThread" if sys.platform == "win32" else "sched_yield"


@intrinsic
def yield_thread(typingctx):
    """Let the OS run another thread (a waiting worker must not spin away a busy machine)."""

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        builder.call(cgutils.get_or_insert_function(builder.module, fnty, _YIELD), [])
        return context.get_dummy_value()

    return types.none(), codegen
