"""The int8-weight x float32-activation product (Q8_0 blocks) on the GPU, a CuPy ``RawKernel``.

    y[n, o] = sum_b d[o, b] * sum_{j in block b} float(Q[o, j]) * x[n, j]

The reference is ``tinyllm.compress.q8.matmul_reference``. One warp (32
threads, the width of a Q8_0 block) computes one output y[n, o]: lane l reads
Q[o, j] and x[n, j] for j = l, l + 32, l + 64, ..., so the warp reads each row
of int8 weights once, 32 consecutive bytes at a time, and lane j's block is
j / 32; the 32 partial sums are then added with ``__shfl_down_sync``. The grid
is (M outputs, N samples): meant for the few samples of decoding
(``tinyllm.compress.q8.KERNEL_MAX_ROWS``); longer batches dequantize and call
cuBLAS instead.

NOT YET RUN ON A GPU: written from the CuPy documentation (``cupy.RawKernel``:
``kernel(grid, block, args)``, scalars passed as NumPy ``int32``) without a
CUDA device to test it on; ``tests/test_quantize.py`` compares it with the
reference when CuPy and a GPU are present and skips otherwise.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ... import backend

BLOCK = 32

_SOURCE = r"""
extern "C" __global__
void tinyllm_q8_matmul(const float* __restrict__ x, const signed char* __restrict__ q,
                       const float* __restrict__ scale, float* __restrict__ y,
                       const int n_rows, const int m, const int k, const int nb) {
    const int o = blockIdx.x;          // output row of W
    const int n = blockIdx.y;          // sample
    const int lane = threadIdx.x;      // 0..31: one warp per output
    const signed char* qrow = q + (long long)o * k;
    const float* xrow = x + (long long)n * k;
    const float* srow = scale + (long long)o * nb;
    float acc = 0.0f;
    for (int j = lane; j < k; j += 32) {
        acc += (float)qrow[j] * xrow[j] * srow[j >> 5];     // block of input j: j / 32
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        acc += __shfl_down_sync(0xffffffffu, acc, offset);
    }
    if (lane == 0) {
        y[(long long)n * m + o] = acc;
    }
}
"""

_cache: dict[str, Any] = {}


def _kernel() -> Any:
    k = _cache.get("q8")
    if k is None:
        cp = backend._import_cupy()
        k = _cache["q8"] = cp.RawKernel(_SOURCE, "tinyllm_q8_matmul")
    return k


def q8_matmul(x: Any, q: Any, scale: Any) -> Any:
    """y = x W~^T on the GPU: x (N, K) float32, q (M, K) int8, scale (M, ceil(K/32)) -> (N, M) float32."""
    cp = backend._import_cupy()
    x = cp.ascontiguousarray(x, dtype=cp.float32)
    q = cp.ascontiguousarray(q, dtype=cp.int8)
    scale = cp.ascontiguousarray(scale, dtype=cp.float32)
    n_rows, k = x.shape
    m = q.shape[0]
    if q.shape[1] != k or scale.shape != (m, -(-k // BLOCK)):
        raise ValueError(f"q8_matmul: shapes x {x.shape}, q {q.shape}, scale {scale.shape} do not fit")
    y = cp.empty((n_rows, m), dtype=cp.float32)
    _kernel()((m, n_rows), (BLOCK,), (x, q, scale, y, np.int32(n_rows), np.int32(m), np.int32(k),
                                      np.int32(scale.shape[1])))
    return y
