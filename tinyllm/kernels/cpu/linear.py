"""The Linear layer on the CPU: NumPy's products, with the bias add and the bias gradient as compiled loops.

Formula and reference: :class:`tinyllm.functional.linear.LinearFunction`.
The products are BLAS calls either way; what this adds is the elementwise
part around them. ``y += b`` in NumPy broadcasts ``b`` over the rows with a
strided inner loop, 2-3x slower than a loop that adds ``b[j]`` along each
row (nano's (768, 512): 64 against 23 us on one core); ``db = g.sum(axis=0)``
2x slower than one pass adding each row of ``g`` into ``db`` (43 against 22
us). Both loops add in the order NumPy does (row after row, each column on
its own), so the results are the same floats.
"""
from __future__ import annotations

import numpy as np

from .jit import F, jit
from .threads import run_kernel

NS_BIAS = 0.1            # per element on one core (2-core VM, AVX2), add or sum: memory-bound at large sizes


@jit
def add_rows_(y, b):
    """In place, y (N, C) += b (C,) on every row."""
    n, c = y.shape
    for i in range(n):
        for j in range(c):
            y[i, j] += b[j]


@jit
def column_sum_(g, out):
    """out (C,) = the sum over rows of g (N, C), adding row after row."""
    n, c = g.shape
    for j in range(c):
        out[j] = F(0.0)
    for i in range(n):
        for j in range(c):
            out[j] += g[i, j]


def bias_add_(y: np.ndarray, b: np.ndarray) -> None:
    """``y += b`` for a C-contiguous float32 (N, C) ``y`` (rows shared between cores when it pays)."""
    run_kernel(lambda r: add_rows_(y[r], b), y.shape[0], y.size, NS_BIAS)


def bias_grad(g2: np.ndarray) -> np.ndarray:
    """The sum over rows of a float32 (N, C) gradient: each core sums its own rows, then the parts add."""
    g2 = np.ascontiguousarray(g2)
    parts: list = []

    def block(r):
        out = np.empty(g2.shape[1], dtype=np.float32)
        column_sum_(g2[r], out)
        parts.append(out)

    run_kernel(block, g2.shape[0], g2.size, NS_BIAS)
    return parts[0] if len(parts) == 1 else sum(parts)


class Linear:
    """y = x W^T + b on float32 NumPy arrays: BLAS products, compiled bias add and bias gradient."""

    @staticmethod
    def accepts(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> bool:
        return w.ndim == 2 and (b is None or b.shape == (w.shape[0],))

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        self.x, self.w = x, w
        y = x.reshape(-1, x.shape[-1]) @ w.T                          # (N, in) -> (N, out), C-contiguous
        if b is not None:
            bias_add_(y, b)
        return y.reshape(*x.shape[:-1], w.shape[0])

    def backward(self, g: np.ndarray, needs_grad: tuple) -> tuple:
        """(dx, dw, db), None where ``needs_grad`` (for x, w, b) says no."""
        g2 = g.reshape(-1, g.shape[-1])                               # (N, out)
        dx = (g2 @ self.w).reshape(self.x.shape) if needs_grad[0] else None
        dw = g2.T @ self.x.reshape(-1, self.x.shape[-1]) if needs_grad[1] else None
        db = bias_grad(g2) if needs_grad[2] else None
        return dx, dw, db
