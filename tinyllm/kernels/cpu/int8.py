"""The int8-weight x float32-activation product (Q8_0 blocks), compiled by Numba.

    y[n, o] = sum_b d[o, b] * sum_{j in block b} float(Q[o, j]) * x[n, j]
            = sum_j float(Q[o, j]) * x[n, j] * d[o, j / 32]       (as the loop computes it)

The reference is ``tinyllm.compress.q8.matmul_reference`` (dequantize, then one
matmul); ``tests/test_quantize.py`` checks this kernel against it.

Why a kernel: decoding one token with a KV cache multiplies a (1, in) vector
by every weight matrix once, so the time is the time to stream the weights
from memory. The reference first writes a float32 copy of W (4 bytes per
weight, and the copy is read again by BLAS); this loop reads the int8 bytes
directly (1 byte per weight, plus 2 bytes of scale per 32), converting each
block in registers. Rows are independent: ``kernels.cpu.threads.run_kernel``
shares the output rows among the cores, one call of the compiled loop (which
releases the GIL) per core, as the project's other CPU kernels do. (Numba's
own ``prange`` was 3-5x slower than one thread on the shared 2-core machine:
its workers wait for each other at the end of every call, and a call lasts
well under a millisecond.) The loop runs over the whole row, each product
scaled by its block's d: LLVM vectorizes it (``reassoc``) into lane-wise
accumulators that are summed once per row. Summing each block of 32 first
and scaling the block sum (the first formula, as llama.cpp writes it with
integer activations) was 15x slower here: every block then ends in a
horizontal sum across the vector lanes. For each output row
the N samples reuse the row's bytes from the L1 cache, so a few samples
(prefill, beams) cost little more than one.

Cost constant: :data:`NS_PER_WEIGHT`, the one-core time per weight for N = 1
(measured on the 2-core VM), decides when the rows are worth sharing.
"""
from __future__ import annotations

import numba
import numpy as np

from .threads import run_kernel

BLOCK = 32
NS_PER_WEIGHT = 0.05      # one core, N = 1, weights streamed from memory (about 20 GB/s of int8)


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"}, boundscheck=False)
def _q8_matmul_t(x, q, scale, y_t):  # pragma: no cover - compiled
    """y_t[o, n] = sum_b scale[o, b] * sum_{j in b} q[o, j] * x[n, j];  x (N, K) f32, q (M, K) i8."""
    n_rows, k = x.shape
    m = q.shape[0]
    for o in range(m):
        for n in range(n_rows):
            acc = np.float32(0.0)
            for j in range(k):                           # j >> 5: the block of input j (BLOCK = 32)
                acc += np.float32(q[o, j]) * x[n, j] * scale[o, j >> 5]
            y_t[o, n] = acc


def q8_matmul(x: np.ndarray, q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """y = x W~^T, x (N, K) float32, q (M, K) int8, scale (M, ceil(K/32)) float16/32 -> (N, M) float32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    q = np.ascontiguousarray(q, dtype=np.int8)
    scale = np.ascontiguousarray(scale, dtype=np.float32)
    if x.ndim != 2 or q.ndim != 2 or x.shape[1] != q.shape[1] or scale.shape != (q.shape[0], -(-q.shape[1] // BLOCK)):
        raise ValueError(f"q8_matmul: shapes x {x.shape}, q {q.shape}, scale {scale.shape} do not fit")
    m = q.shape[0]
    y_t = np.empty((m, x.shape[0]), dtype=np.float32)

    def rows(r: slice) -> None:
        _q8_matmul_t(x, q[r], scale[r], y_t[r])

    run_kernel(rows, m, q.size * x.shape[0], NS_PER_WEIGHT)
    return y_t.T if x.shape[0] > 1 else y_t.reshape(1, -1)
