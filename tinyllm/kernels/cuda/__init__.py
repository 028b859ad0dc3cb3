"""CUDA kernels for the CuPy backend, float32 and float64: each op in one pass over memory.

The formulas of ``tinyllm.functional`` (and ``optim.adam``) are the
reference: one array operation per line. On the GPU that style costs one
kernel launch and one full trip through memory per line, and for the
elementwise and row-wise ops of a transformer (GELU, layer norm, softmax,
cross-entropy, the attention softmax, dropout, AdamW) launches and memory
traffic are the whole cost. Each kernel here computes the same formula in
ONE pass: a thread per element (``ElementwiseKernel``), or a thread block
per row that reduces in shared memory (``RawModule``).
``tests/test_cuda_kernels.py`` checks every kernel against the reference.

Modules: one per op family (``gelu``, ``layer_norm``, ``softmax``,
``attention``, ``cross_entropy``, ``dropout``, ``adam``), each with its kernels
and the implementation object that ``tinyllm.kernels.select`` hands to the
op; this module holds what they share: the compiled-kernel cache and the
launcher of the row kernels.

Row kernels (their CUDA C++ is :data:`ROW_SOURCE`): block ``r`` owns row
``r`` of a C-contiguous (rows, C) array; each thread keeps up to four of the
row's elements in registers, so the row is read once and written once, and
``block_sum`` / ``block_max`` combine the threads' partial results (warp
shuffles, then one value per warp in shared memory). Rows wider than
:data:`MAX_ROW` take the reference. CuPy itself comes from ``backend``, the
one module that imports it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ... import backend

_cache: dict[str, Any] = {}

# No fused multiply-add contraction: a*b - c computed as one FMA rounds differently from the
# reference's two steps (LayerNorm's backward of one feature then gives 1e-6 instead of 0).
# These kernels are bound by memory traffic, so the FMAs would not buy speed.
NO_FMA = ("--fmad=false",)


def supported(*arrays: Any) -> bool:
    """Whether the kernels can take these arrays: CuPy, float32 or float64 (``None`` entries are ignored)."""
    for a in arrays:
        if a is not None and not (backend.is_cupy_array(a) and a.dtype.char in "fd"):
            return False
    return True


def cp() -> Any:
    """The cupy module (imported by ``backend``)."""
    return backend._import_cupy()


def cached(name: str, build: Callable[[Any], Any]) -> Any:
    """The kernel ``name``, built by ``build(cupy)`` on first use."""
    k = _cache.get(name)
    if k is None:
        k = _cache[name] = build(cp())
    return k


# ----------------------------------------------------------------------------- row kernels (one block per row)

ROW_SOURCE = Path(__file__).with_name("row_reductions.cu")   # the CUDA C++ of the row kernels
ROW_KERNELS = ("ln_fwd", "ln_bwd", "softmax_rows", "softmax_bwd_rows", "xent_fwd")
MAX_ROW = 4 * 1024  # KC * the most threads of a block: wider rows take the reference


def _row_kernel(name: str, dtype: Any) -> Any:
    key = f"{name}<{'float' if dtype.char == 'f' else 'double'}>"
    fn = _cache.get(key)
    if fn is None:
        def build(cp: Any) -> Any:
            names = [f"{k}<{t}>" for k in ROW_KERNELS for t in ("float", "double")]
            return cp.RawModule(code=ROW_SOURCE.read_text(), options=("-std=c++14",) + NO_FMA,
                                name_expressions=names)
        fn = _cache[key] = cached("row_reductions", build).get_function(key)
    return fn


def fits(a: Any) -> bool:
    """Whether the row kernels can take ``a``: :func:`supported`, rows of at most MAX_ROW."""
    return supported(a) and a.ndim >= 1 and a.shape[-1] <= MAX_ROW


def _threads(c: int) -> int:
    """Threads per row block: a power of two (warp shuffles) with KC * threads >= c."""
    return min(1024, max(32, 1 << (max(c, 1) // 4 + (c % 4 > 0) - 1).bit_length()))


def launch(name: str, dtype: Any, rows: int, c: int, args: tuple) -> None:
    """Run row kernel ``name`` on ``rows`` rows of ``c`` elements: one block per row."""
    if rows:
        _row_kernel(name, dtype)((rows,), (_threads(c),), args)


def ptr(a: Any, dtype: Any) -> Any:
    """A kernel argument for an optional array: the array, or a null pointer."""
    if a is None:
        return cp().uint64(0)
    if a.dtype != dtype:
        raise TypeError(f"dtype {a.dtype} does not match {dtype}")
    return cp().ascontiguousarray(a)
