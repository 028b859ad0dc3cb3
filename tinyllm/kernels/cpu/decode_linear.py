"""The Linear products of a decode step at batch 8 to 64, as one compiled loop.

Formula and reference: :class:`tinyllm.nn.attention.ArrayLinearReference`, ``y = x W^T + b``
for x (N, in), W (out, in), b (out). A decode step of a small model multiplies a few rows
(one new token per sequence) by each weight: for N = 8 and a 128 x 512 weight, 0.5M
multiply-adds, which OpenBLAS runs in its small-matrix path at well under the core's peak
(12-20 us on this 2-core VM with its AVX2 kernels, 7-30 us with AVX-512, by operand order).
This loop takes the rows eight at a time and two outputs at once: sixteen running sums,
each weight row read once per block of eight rows and each input element once per output
pair, the sums over ``in`` vectorized by LLVM for the machine's own vector width (6-11 us
for the same products). Products of more than :data:`MAX_WORK` multiply-adds go to BLAS
(its blocked GEMM, on every core).
"""
from __future__ import annotations

import numpy as np

from .jit import jit

MAX_WORK = 1 << 22      # multiply-adds (N x in x out) up to which the loop beats OpenBLAS on one core
ROWS = frozenset(range(8, 65, 8))   # row counts it takes: blocks of 8


@jit
def rows8_linear_(x, w, b, y):
    """y = x w^T + b for x (N, in), N a multiple of 8, w (out, in), b (out), y (N, out): per block of 8
    rows and pair of outputs, 16 sums over ``in`` (the last output of an odd ``out`` on its own)."""
    n, k_in = x.shape
    out = w.shape[0]
    zero = np.zeros(1, dtype=y.dtype)[0]                       # 0 in the arrays' type
    for r in range(0, n, 8):
        x0, x1, x2, x3, x4, x5, x6, x7 = x[r], x[r + 1], x[r + 2], x[r + 3], x[r + 4], x[r + 5], x[r + 6], x[r + 7]
        for o in range(0, out - 1, 2):
            wa, wb = w[o], w[o + 1]
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
            c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = zero
            for k in range(k_in):
                u, t = wa[k], wb[k]
                a0 += x0[k] * u
                c0 += x0[k] * t
                a1 += x1[k] * u
                c1 += x1[k] * t
                a2 += x2[k] * u
                c2 += x2[k] * t
                a3 += x3[k] * u
                c3 += x3[k] * t
                a4 += x4[k] * u
                c4 += x4[k] * t
                a5 += x5[k] * u
                c5 += x5[k] * t
                a6 += x6[k] * u
                c6 += x6[k] * t
                a7 += x7[k] * u
                c7 += x7[k] * t
            ba, bb = b[o], b[o + 1]
            y[r, o], y[r + 1, o], y[r + 2, o], y[r + 3, o] = a0 + ba, a1 + ba, a2 + ba, a3 + ba
            y[r + 4, o], y[r + 5, o], y[r + 6, o], y[r + 7, o] = a4 + ba, a5 + ba, a6 + ba, a7 + ba
            y[r, o + 1], y[r + 1, o + 1], y[r + 2, o + 1], y[r + 3, o + 1] = c0 + bb, c1 + bb, c2 + bb, c3 + bb
            y[r + 4, o + 1], y[r + 5, o + 1], y[r + 6, o + 1], y[r + 7, o + 1] = c4 + bb, c5 + bb, c6 + bb, c7 + bb
        if out % 2:
            o = out - 1
            for i in range(r, r + 8):
                acc = zero
                for k in range(k_in):
                    acc += x[i, k] * w[o, k]
                y[i, o] = acc + b[o]


class DecodeLinear:
    """``x W^T + b`` on float32 NumPy arrays of 8, 16, ..., 64 rows: :func:`rows8_linear_`."""

    def __init__(self) -> None:
        self.zeros: np.ndarray | None = None          # the bias of a layer without one

    @staticmethod
    def accepts(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> bool:
        return (x.ndim == 2 and w.ndim == 2 and x.shape[0] in ROWS and x.shape[1] == w.shape[1] > 0
                and x.shape[0] * w.size <= MAX_WORK and w.flags.c_contiguous
                and (b is None or b.shape == (w.shape[0],)))

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """(N, out) = x (N, in) W^T (+ b)."""
        if b is None:
            if self.zeros is None or self.zeros.shape[0] != w.shape[0] or self.zeros.dtype != w.dtype:
                self.zeros = np.zeros(w.shape[0], dtype=w.dtype)
            b = self.zeros
        y = np.empty((x.shape[0], w.shape[0]), dtype=w.dtype)
        rows8_linear_(np.ascontiguousarray(x), w, b, y)
        return y
