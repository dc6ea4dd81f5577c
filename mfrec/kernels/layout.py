"""How the vector kernels lay out rows: vector width and padded row lengths (no numba here,
so that the solvers can size their arrays without importing it)."""

from __future__ import annotations

#: Width of one vector register (AVX-512). On narrower hardware LLVM splits each operation.
VECTOR_BYTES = 64
#: The narrowest vectors `row_dot`, `row_step` and `row_step_dot` use for what is left of a row
#: after its whole vectors; fewer elements than this go one at a time.
TAIL_LANES = 4


def lanes(itemsize: int) -> int:
    """Elements per vector for items of `itemsize` bytes."""
    return VECTOR_BYTES // itemsize


def padded_width(k: int, itemsize: int) -> int:
    """The row length the intrinsics need for k factors: k rounded up to whole vectors."""
    w = lanes(itemsize)
    return -(-k // w) * w


def active_width(k: int, itemsize: int) -> int:
    """The columns `row_dot`, `row_step` and `row_step_dot` need to cover k factors: k rounded
    up to half vectors. A row of 100 float32 is then 6 vectors and a half (104 columns) rather
    than 7 vectors (112): 7% less work per rating in the sgd kernel."""
    w = lanes(itemsize) // 2
    return -(-k // w) * w
