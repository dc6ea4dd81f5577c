"""Whole-row vector operations for the SGD kernels, written as numba intrinsics.

LLVM's loop vectoriser turns ``for f in range(k)`` into a 64-wide unrolled body followed by an
8-wide and a scalar remainder; for k = 100 most of the time goes into those remainders and into
loads that straddle cache lines. These intrinsics instead emit one loop of full vectors of
`VECTOR_BYTES` (16 float32 or 8 float64 lanes). They are fastest on rows whose length is a
multiple of `lanes` (`padded_width`), which leaves no element-by-element tail; the SGD solver
keeps padded, 64-byte aligned working copies of P and Q (`mfrec.training.solvers.sgd.WorkingCopy`).
Padding columns must be zero: every operation keeps them at zero, so they add nothing to a dot
product. `row_dot`, `row_step` and `row_step_dot` also take the rest of a row in narrower
vectors, so the sgd kernel runs on the first `active_width` columns of its padded rows: whole
vectors on aligned rows, and no work on columns it does not need.

Operations, for 2-D float arrays X, Y of the same dtype and row length whose rows are
contiguous (C-contiguous, or the first columns of one: ``X[:, :w]``)::

    row_dot(X, x, Y, y)                  -> X[x]·Y[y]
    row_step(X, x, Y, y, a, g)           X[x], Y[y] <- a X[x] + g Y[y], a Y[y] + g X[x]
    row_step_dot(X, x, Y, y, a, g, x2, y2) the step, and returns X[x2]·Y[y2] from the same loop
                                         (x2 != x and y2 != y, so the step does not touch them)
    prefetch_row(X, x)                   ask the cache for the lines of X[x]
    gather_axpy(Y, y, X, cols, base, w, lo, hi)   Y[y] += Σ_m w[m] X[base + cols[m]]  (bgd)
    scatter_axpy(Y, cols, base, X, x, w, lo, hi)  Y[base + cols[m]] += w[m] X[x], each m (bgd)
    row_scale(Y, y, a, X, x)             Y[y] <- a X[x]                    (minibatch)
    row_axpy(Y, y, a, X, x)              Y[y] += a X[x]                    (minibatch)

The right-hand sides of `row_step` use the values from before the step. Sums run over two
accumulators (even and odd vectors), then a fixed halving tree, so results are deterministic.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from mfrec.kernels.layout import TAIL_LANES, VECTOR_BYTES, lanes

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_I8P = ir.IntType(8).as_pointer()


def _is_matrix(ty: types.Type) -> bool:
    # "A": the rows of a column slice X[:, :w] of a C array are contiguous too (their callers
    # pass nothing else; the layout cannot say so).
    return (
        isinstance(ty, types.Array)
        and ty.ndim == 2
        and ty.layout in ("C", "A")
        and isinstance(ty.dtype, types.Float)
    )


class _Rows:
    """LLVM values for whole-vector access to rows of one matrix."""

    def __init__(self, context, builder, aryty, ary):
        self.builder = builder
        arr = context.make_array(aryty)(context, builder, ary)
        self.arr, self.aryty, self.context = arr, aryty, context
        self.k = builder.extract_value(arr.shape, 1)
        self.ety = context.get_value_type(aryty.dtype)
        self.itemsize = aryty.dtype.bitwidth // 8
        self.vty = ir.VectorType(self.ety, lanes(self.itemsize))

    def row(self, index):
        b = self.builder
        index = b.sext(index, _I64) if index.type.width < 64 else index
        zero = ir.Constant(_I64, 0)
        return cgutils.get_item_pointer(self.context, b, self.aryty, self.arr, [index, zero])

    def vptr(self, row, offset, vty=None):
        vty = self.vty if vty is None else vty
        return self.builder.bitcast(self.builder.gep(row, [offset]), vty.as_pointer())

    def load(self, row, offset, vty=None):
        return self.builder.load(self.vptr(row, offset, vty), align=self.itemsize)

    def store(self, value, row, offset):
        self.builder.store(value, self.vptr(row, offset, value.type), align=self.itemsize)

    def splat(self, scalar, vty=None):
        vty = self.vty if vty is None else vty
        b = self.builder
        v = b.insert_element(ir.Constant(vty, None), scalar, ir.Constant(_I32, 0))
        return b.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, vty.count), None))


def _fma(builder, a, b, c):
    vty = a.type
    name = f"llvm.fma.v{vty.count}{vty.element.intrinsic_name}"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3), name)
    return builder.call(fn, [a, b, c])


def _halve(builder, v):
    """The sum of the low and the high half of vector v (one level of a fixed tree)."""
    half = v.type.count // 2
    lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, half), list(range(half))))
    hi = builder.shuffle_vector(
        v, v, ir.Constant(ir.VectorType(_I32, half), list(range(half, 2 * half)))
    )
    return builder.fadd(lo, hi)


def _hsum(builder, v):
    while v.type.count > 1:
        v = _halve(builder, v)
    return builder.extract_element(v, ir.Constant(_I32, 0))


def _row_loop(m: _Rows, step_rows=None, dot_rows=None):
    """One pass over the row: the step on `step_rows` (x, y, a, g) and the dot product of
    `dot_rows` (x2, y2); returns the dot product (or None).

    Whole vectors first (two at a time), then the remainder of the row in vectors of half,
    a quarter, ... of the width while at least `TAIL_LANES` elements are left, then one element
    at a time: a row of 104 float32 is 6 vectors of 16 and one of 8 (`active_width`). The dot
    product sums the two whole-vector accumulators, then halves the vector level by level,
    adding each tail vector at the level of its width, so rows without a tail add nothing
    beyond the plain halving tree."""
    b = m.builder
    width = m.vty.count
    accs = None
    if dot_rows is not None:
        accs = [cgutils.alloca_once_value(b, ir.Constant(m.vty, None)) for _ in range(2)]
        total = cgutils.alloca_once(b, m.ety)
    if step_rows is not None:
        x, y, a, g = step_rows

    def step(offset, vty):
        xv, yv = m.load(x, offset, vty), m.load(y, offset, vty)
        av, gv = m.splat(a, vty), m.splat(g, vty)
        m.store(_fma(b, gv, yv, b.fmul(av, xv)), x, offset)
        m.store(_fma(b, gv, xv, b.fmul(av, yv)), y, offset)

    def body(offset, acc):
        if accs is not None:
            x2, y2 = dot_rows
            prod = _fma(b, m.load(x2, offset), m.load(y2, offset), b.load(acc))
            b.store(prod, acc)
        if step_rows is not None:
            step(offset, m.vty)

    def element(f):
        if accs is not None:
            x2, y2 = dot_rows
            prod = b.fmul(b.load(b.gep(x2, [f])), b.load(b.gep(y2, [f])))
            b.store(b.fadd(b.load(total), prod), total)
        if step_rows is not None:
            xp, yp = b.gep(x, [f]), b.gep(y, [f])
            xf, yf = b.load(xp), b.load(yp)
            b.store(b.fadd(b.fmul(a, xf), b.fmul(g, yf)), xp)
            b.store(b.fadd(b.fmul(a, yf), b.fmul(g, xf)), yp)

    pair = ir.Constant(_I64, 2 * width)
    paired = b.mul(b.udiv(m.k, pair), pair)
    vectors = b.mul(b.udiv(m.k, ir.Constant(_I64, width)), ir.Constant(_I64, width))
    with cgutils.for_range_slice(b, ir.Constant(_I64, 0), paired, pair) as (offset, _):
        body(offset, accs[0] if accs else None)
        body(b.add(offset, ir.Constant(_I64, width)), accs[1] if accs else None)
    with b.if_then(b.icmp_unsigned("<", paired, vectors)):
        body(paired, accs[0] if accs else None)
    if accs is not None:
        level = cgutils.alloca_once_value(b, b.fadd(b.load(accs[0]), b.load(accs[1])))
    done = cgutils.alloca_once_value(b, vectors)
    tail = width // 2
    while tail >= TAIL_LANES:
        vty = ir.VectorType(m.ety, tail)
        if accs is not None:
            halved = _halve(b, b.load(level))
            level = cgutils.alloca_once(b, vty)
            b.store(halved, level)
        offset = b.load(done)
        with b.if_then(b.icmp_unsigned("<=", b.add(offset, ir.Constant(_I64, tail)), m.k)):
            if accs is not None:
                x2, y2 = dot_rows
                prod = _fma(b, m.load(x2, offset, vty), m.load(y2, offset, vty), b.load(level))
                b.store(prod, level)
            if step_rows is not None:
                step(offset, vty)
            b.store(b.add(offset, ir.Constant(_I64, tail)), done)
        tail //= 2
    if accs is not None:
        # The vectors' sum first, so that rows without an element tail add nothing after it.
        b.store(_hsum(b, b.load(level)), total)
    with cgutils.for_range_slice(b, b.load(done), m.k, ir.Constant(_I64, 1)) as (f, _):
        element(f)
    return None if accs is None else b.load(total)


def _check_pair(X, Y):
    return _is_matrix(X) and _is_matrix(Y) and X.dtype == Y.dtype


@intrinsic
def row_dot(typingctx, X, x, Y, y):
    """X[x]·Y[y]."""
    if not (_check_pair(X, Y) and isinstance(x, types.Integer) and isinstance(y, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        mx = _Rows(context, builder, sig.args[0], args[0])
        my = _Rows(context, builder, sig.args[2], args[2])
        return _row_loop(mx, dot_rows=(mx.row(args[1]), my.row(args[3])))

    return X.dtype(X, x, Y, y), codegen


@intrinsic
def row_step(typingctx, X, x, Y, y, a, g):
    """X[x], Y[y] <- a·X[x] + g·Y[y], a·Y[y] + g·X[x] (old values on the right)."""
    if not (_check_pair(X, Y) and a == X.dtype and g == X.dtype):
        return None

    def codegen(context, builder, sig, args):
        mx = _Rows(context, builder, sig.args[0], args[0])
        my = _Rows(context, builder, sig.args[2], args[2])
        _row_loop(mx, step_rows=(mx.row(args[1]), my.row(args[3]), args[4], args[5]))
        return context.get_dummy_value()

    return types.none(X, x, Y, y, a, g), codegen


@intrinsic
def row_step_dot(typingctx, X, x, Y, y, a, g, x2, y2):
    """`row_step` on rows x, y and, in the same loop, X[x2]·Y[y2] (x2 != x, y2 != y)."""
    if not (_check_pair(X, Y) and a == X.dtype and g == X.dtype):
        return None

    def codegen(context, builder, sig, args):
        mx = _Rows(context, builder, sig.args[0], args[0])
        my = _Rows(context, builder, sig.args[2], args[2])
        step = (mx.row(args[1]), my.row(args[3]), args[4], args[5])
        return _row_loop(mx, step_rows=step, dot_rows=(mx.row(args[6]), my.row(args[7])))

    return X.dtype(X, x, Y, y, a, g, x2, y2), codegen


@intrinsic
def prefetch_row(typingctx, X, x):
    """Prefetch every 64-byte line of X[x] for writing (no effect on results)."""
    if not (_is_matrix(X) and isinstance(x, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        m = _Rows(context, builder, sig.args[0], args[0])
        row = m.row(args[1])
        fnty = ir.FunctionType(ir.VoidType(), [_I8P, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        per_line = ir.Constant(_I64, VECTOR_BYTES // m.itemsize)
        with cgutils.for_range_slice(builder, ir.Constant(_I64, 0), m.k, per_line) as (f, _):
            address = builder.bitcast(builder.gep(row, [f]), _I8P)
            # (address, write, high temporal locality, data cache)
            flags = [ir.Constant(_I32, v) for v in (1, 3, 1)]
            builder.call(fn, [address, *flags])
        return context.get_dummy_value()

    return types.none(X, x), codegen


#: Vectors `gather_axpy` and `scatter_axpy` carry through a run of rows at once: independent
#: accumulators, so that the additions of one run do not wait for each other.
RUN_VECTORS = 4


def _widen(builder, value, ty: types.Type):
    """An integer value of numba type `ty` as a 64-bit one (other values unchanged)."""
    if isinstance(ty, types.Integer) and value.type.width < 64:
        return builder.sext(value, _I64) if ty.signed else builder.zext(value, _I64)
    return value


def _load_item(context, builder, aryty, ary, m):
    """ary[m] for a 1-D array (integers widened to 64 bits)."""
    arr = context.make_array(aryty)(context, builder, ary)
    value = builder.load(cgutils.get_item_pointer(context, builder, aryty, arr, [m]))
    return _widen(builder, value, aryty.dtype)


def _run_loop(m: _Rows, body):
    """Cut a row into groups of `RUN_VECTORS` vectors, then single vectors, then single elements
    (a length not a multiple of `lanes`), and emit `body(offsets, scalar)` for each group; the
    body loops over the run itself, so each group is visited once per run."""
    b = m.builder
    width = m.vty.count
    group = ir.Constant(_I64, RUN_VECTORS * width)
    grouped = b.mul(b.udiv(m.k, group), group)
    vectors = b.mul(b.udiv(m.k, ir.Constant(_I64, width)), ir.Constant(_I64, width))
    with cgutils.for_range_slice(b, ir.Constant(_I64, 0), grouped, group) as (start, _):
        body([b.add(start, ir.Constant(_I64, v * width)) for v in range(RUN_VECTORS)], False)
    with cgutils.for_range_slice(b, grouped, vectors, ir.Constant(_I64, width)) as (start, _):
        body([start], False)
    with cgutils.for_range_slice(b, vectors, m.k, ir.Constant(_I64, 1)) as (start, _):
        body([start], True)


def _check_run(X, Y, index, cols, weights, base, lo, hi):
    return (
        _check_pair(X, Y)
        and all(isinstance(n, types.Integer) for n in (index, base, lo, hi))
        and isinstance(cols, types.Array)
        and cols.ndim == 1
        and isinstance(cols.dtype, types.Integer)
        and isinstance(weights, types.Array)
        and weights.ndim == 1
        and weights.dtype == X.dtype
    )


@intrinsic
def gather_axpy(typingctx, Y, y, X, cols, base, weights, lo, hi):
    """Y[y] += Σ_{m=lo}^{hi-1} weights[m]·X[base + cols[m]] (bgd's sums over one user's run of
    ratings), Y[y] held in registers meanwhile. Every element adds its terms one at a time in
    the order of m (a fused multiply-add in whole vectors, a multiply and an add in the tail),
    so the result does not depend on how many vectors are carried together. Y[y] must not be
    one of the X rows."""
    if not _check_run(X, Y, y, cols, weights, base, lo, hi):
        return None

    def codegen(context, builder, sig, args):
        Yt, _, Xt, Ct, Bt, Wt, Lt, Ht = sig.args
        Yv, yv, Xv, Cv, basev, Wv, lov, hiv = args
        basev, lov, hiv = (_widen(builder, v, t) for v, t in ((basev, Bt), (lov, Lt), (hiv, Ht)))
        my = _Rows(context, builder, Yt, Yv)
        mx = _Rows(context, builder, Xt, Xv)
        b = builder
        target = my.row(yv)

        def body(offsets, scalar):
            if scalar:
                accs = [cgutils.alloca_once_value(b, b.load(b.gep(target, [offsets[0]])))]
            else:
                accs = [cgutils.alloca_once_value(b, my.load(target, o)) for o in offsets]
            with cgutils.for_range_slice(b, lov, hiv, ir.Constant(_I64, 1)) as (m, _):
                row = mx.row(b.add(basev, _load_item(context, b, Ct, Cv, m)))
                w = _load_item(context, b, Wt, Wv, m)
                for acc, o in zip(accs, offsets, strict=True):
                    if scalar:
                        term = b.fmul(w, b.load(b.gep(row, [o])))
                        b.store(b.fadd(b.load(acc), term), acc)
                    else:
                        b.store(_fma(b, my.splat(w), mx.load(row, o), b.load(acc)), acc)
            for acc, o in zip(accs, offsets, strict=True):
                if scalar:
                    b.store(b.load(acc), b.gep(target, [o]))
                else:
                    my.store(b.load(acc), target, o)

        _run_loop(my, body)
        return context.get_dummy_value()

    return types.none(Y, y, X, cols, base, weights, lo, hi), codegen


@intrinsic
def scatter_axpy(typingctx, Y, cols, base, X, x, weights, lo, hi):
    """Y[base + cols[m]] += weights[m]·X[x] for m = lo..hi-1 in that order (bgd's item sums
    over one user's run of ratings; a column may repeat), X[x] read once per group of vectors.
    Arithmetic as in `gather_axpy`. X[x] must not be one of the Y rows."""
    if not _check_run(X, Y, x, cols, weights, base, lo, hi):
        return None

    def codegen(context, builder, sig, args):
        Yt, Ct, Bt, Xt, _, Wt, Lt, Ht = sig.args
        Yv, Cv, basev, Xv, xv, Wv, lov, hiv = args
        basev, lov, hiv = (_widen(builder, v, t) for v, t in ((basev, Bt), (lov, Lt), (hiv, Ht)))
        my = _Rows(context, builder, Yt, Yv)
        mx = _Rows(context, builder, Xt, Xv)
        b = builder
        source = mx.row(xv)

        def body(offsets, scalar):
            if scalar:
                xs = [b.load(b.gep(source, [offsets[0]]))]
            else:
                xs = [mx.load(source, o) for o in offsets]
            with cgutils.for_range_slice(b, lov, hiv, ir.Constant(_I64, 1)) as (m, _):
                row = my.row(b.add(basev, _load_item(context, b, Ct, Cv, m)))
                w = _load_item(context, b, Wt, Wv, m)
                for value, o in zip(xs, offsets, strict=True):
                    if scalar:
                        cell = b.gep(row, [o])
                        b.store(b.fadd(b.load(cell), b.fmul(w, value)), cell)
                    else:
                        my.store(_fma(b, my.splat(w), value, my.load(row, o)), row, o)

        _run_loop(my, body)
        return context.get_dummy_value()

    return types.none(Y, cols, base, X, x, weights, lo, hi), codegen


@intrinsic
def row_scale(typingctx, Y, y, a, X, x):
    """Y[y] <- a·X[x] (the start of a sum that `gather_axpy` then adds to)."""
    if not (
        _check_pair(X, Y)
        and a == X.dtype
        and isinstance(x, types.Integer)
        and isinstance(y, types.Integer)
    ):
        return None

    def codegen(context, builder, sig, args):
        Yv, yv, av, Xv, xv = args
        my = _Rows(context, builder, sig.args[0], Yv)
        mx = _Rows(context, builder, sig.args[3], Xv)
        b = builder
        target, source = my.row(yv), mx.row(xv)
        avec = my.splat(av)

        def body(offsets, scalar):
            for o in offsets:
                if scalar:
                    b.store(b.fmul(av, b.load(b.gep(source, [o]))), b.gep(target, [o]))
                else:
                    my.store(b.fmul(avec, mx.load(source, o)), target, o)

        _run_loop(my, body)
        return context.get_dummy_value()

    return types.none(Y, y, a, X, x), codegen


@intrinsic
def row_axpy(typingctx, Y, y, a, X, x):
    """Y[y] += a·X[x], element by element as `gather_axpy` adds one term (a fused multiply-add
    in whole vectors, a multiply and an add in the tail), so a sum built by calls in the order
    of its terms has the same bits as `gather_axpy`'s. Y[y] must not be X[x]."""
    if not (
        _check_pair(X, Y)
        and a == X.dtype
        and isinstance(x, types.Integer)
        and isinstance(y, types.Integer)
    ):
        return None

    def codegen(context, builder, sig, args):
        Yv, yv, av, Xv, xv = args
        my = _Rows(context, builder, sig.args[0], Yv)
        mx = _Rows(context, builder, sig.args[3], Xv)
        b = builder
        target, source = my.row(yv), mx.row(xv)
        width = my.vty.count
        avec = my.splat(av)
        vectors = b.mul(b.udiv(my.k, ir.Constant(_I64, width)), ir.Constant(_I64, width))
        zero, step = ir.Constant(_I64, 0), ir.Constant(_I64, width)
        with cgutils.for_range_slice(b, zero, vectors, step) as (o, _):
            my.store(_fma(b, avec, mx.load(source, o), my.load(target, o)), target, o)
        with cgutils.for_range_slice(b, vectors, my.k, ir.Constant(_I64, 1)) as (o, _):
            cell = b.gep(target, [o])
            b.store(b.fadd(b.load(cell), b.fmul(av, b.load(b.gep(source, [o])))), cell)
        return context.get_dummy_value()

    return types.none(Y, y, a, X, x), codegen
