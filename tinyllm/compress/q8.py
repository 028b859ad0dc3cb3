"""Q8_0: int8 weights in blocks of 32 along the input dimension, one scale per block
(the format of llama.cpp's Q8_0), and the int8-weight x float-activation product.

For a weight W (out, in), each row is cut into blocks of ``BLOCK`` = 32
consecutive inputs (the last one shorter when 32 does not divide ``in``). Block
b of row o gets one scale and 32 signed bytes:

    d[o, b] = max_j |W[o, j]| / 127          over the block's j
    Q[o, j] = round(W[o, j] / d[o, b])       in [-127, 127]
    W~[o, j] = d[o, b] * Q[o, j]             the dequantized weight

The scale is stored in float16, rounded *up* to the next float16 so that no
|W / d| exceeds 127 (nothing clips): each weight is then within half a step,
|W - W~| <= d / 2, of its original. Weights take 8 bits plus 16 / 32 for the
scale: 8.5 bits instead of 32 (0.27x).

The product y = x W~^T is, per output o and sample n,

    y[n, o] = sum_b d[o, b] * sum_{j in b} Q[o, j] x[n, j]

:func:`matmul_reference` is that formula in NumPy (dequantize, then one
matmul): the reference every kernel is tested against and the path float64 and
large batches take. The compiled kernels read the int8 bytes themselves, four
times less memory than float32 weights; that is the cost of batch-1 decoding
with a KV cache, where each token reads every weight once.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import backend
from ..backend import get_array_module

BLOCK = 32
QMAX = 127
KERNEL_MAX_ROWS = 64      # samples up to which the kernel runs (prompt prefill too); above, dequantize + BLAS


def n_blocks(n_in: int) -> int:
    """Blocks per row: ceil(in / 32)."""
    return -(-int(n_in) // BLOCK)


def _round_up_float16(s: np.ndarray) -> np.ndarray:
    """The smallest float16 values >= ``s`` (float32 in, float16 out)."""
    h = s.astype(np.float16)
    low = h.astype(np.float32) < s
    h[low] = np.nextafter(h[low], np.float16(np.inf))
    return h


def quantize(w: Any) -> tuple[np.ndarray, np.ndarray]:
    """Q8_0 of a 2-D float weight (out, in): (Q int8 (out, in), d float16 (out, ceil(in/32))).

    Works on the host (NumPy); an all-zero block gets d = 0 and Q = 0.
    """
    w = np.asarray(backend.to_numpy(w), dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"Q8_0 quantizes 2-D weights (out, in), got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("cannot quantize a weight that holds NaN or infinity")
    out, n_in = w.shape
    nb = n_blocks(n_in)
    padded = np.zeros((out, nb * BLOCK), dtype=np.float32)
    padded[:, :n_in] = w
    blocks = padded.reshape(out, nb, BLOCK)                                  # (out, nb, 32)
    amax = np.abs(blocks).max(axis=2)                                        # (out, nb)
    d16 = _round_up_float16(amax / np.float32(QMAX))
    d = d16.astype(np.float32)
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    q = np.clip(np.rint(blocks * inv[:, :, None]), -QMAX, QMAX).astype(np.int8)
    return np.ascontiguousarray(q.reshape(out, nb * BLOCK)[:, :n_in]), d16


def expand_scales(scale: Any, n_in: int) -> Any:
    """(out, nb) per-block scales -> (out, in), each repeated over its block's inputs."""
    xp = get_array_module(scale)
    return xp.repeat(scale, BLOCK, axis=-1)[..., :n_in]


def dequantize(q: Any, scale: Any, dtype: Any = np.float32) -> Any:
    """W~ = d * Q, (out, in) in ``dtype`` (on the arrays' own backend)."""
    return q.astype(dtype) * expand_scales(scale.astype(dtype), q.shape[-1])


def matmul_reference(x: Any, q: Any, scale: Any) -> Any:
    """y = x W~^T for x (N, in): the plain formula, dequantize then one matmul, in x's dtype."""
    return x @ dequantize(q, scale, x.dtype).T


def _cpu_kernel() -> Any:
    """The compiled CPU kernel module, or None (TINYLLM_CPU_KERNELS=0, or no Numba)."""
    if os.environ.get("TINYLLM_CPU_KERNELS", "1") == "0":
        return None
    try:
        from ..kernels.cpu import int8  # noqa: PLC0415  (Numba loads on first use)
    except ImportError:
        return None
    return int8


def matmul(x: Any, q: Any, scale: Any) -> Any:
    """y = x W~^T for x (N, in) float: a compiled kernel for float32 and few rows, else the reference.

    NumPy float32 with N <= :data:`KERNEL_MAX_ROWS` runs the Numba kernel
    (``tinyllm.kernels.cpu.int8``); CuPy float32 the same way runs the CUDA
    kernel (``tinyllm.kernels.cuda.int8``). Everything else (float64, long
    batches, where the matmul and not the weight traffic is the cost) runs
    :func:`matmul_reference`.
    """
    if x.dtype == np.float32 and x.shape[0] <= KERNEL_MAX_ROWS:
        if backend.is_cupy_array(x):
            from ..kernels.cuda import int8 as cuda_int8  # noqa: PLC0415
            return cuda_int8.q8_matmul(x, q, scale)
        kernel = _cpu_kernel()
        if kernel is not None and type(x) is np.ndarray:
            return kernel.q8_matmul(x, q, scale)
    return matmul_reference(x, q, scale)
