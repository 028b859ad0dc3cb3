"""The Linear layer on the CPU: NumPy's products, the bias add and its gradient as compiled loops,
and the two products of backward on two cores at once.

Formula and reference: :class:`tinyllm.functional.linear.LinearFunction`.
The products are BLAS calls either way; what this adds is the elementwise
part around them. ``y += b`` in NumPy broadcasts ``b`` over the rows with a
strided inner loop, 2-3x slower than a loop that adds ``b[j]`` along each
row (nano's (768, 512): 64 against 23 us on one core); ``db = g.sum(axis=0)``
2x slower than one pass adding each row of ``g`` into ``db`` (43 against 22
us). Both loops add in the order NumPy does (row after row, each column on
its own), so the results are the same floats.

Backward's two products, ``dx = g W`` and ``dW = g^T x``, have the same
FLOPs and do not depend on each other: on two cores or more they run at
the same time, each on one core with one BLAS thread
(:func:`backward_products`), instead of one after the other with OpenBLAS
splitting each over its threads, which hand work over and wait for each
other inside every product. On the shared 2-core VM under load, nano's
backward products took 2.5x less wall time that way; on the quiet machine
(2026-12-02, ``python bench/profile_step.py --sections floor``, which times
both ways, alternated) nano's step was the same either way, while the large
config's products (up to 2.4G multiply-adds each), which OpenBLAS splits
well, lost 4.8% with its AVX-512 kernels (868.7 against 828.5 ms a step)
and gained 1% with AVX2. So only products up to :data:`OVERLAP_MAX_WORK`
(nano's are 12-50M) run at once. Each product is then what OpenBLAS computes on one thread (its
last bits can differ from a product split over two threads, as they differ
between machines with other core counts).
"""
from __future__ import annotations

import numpy as np

from ... import backend
from . import threads
from .jit import F, jit
from .threads import run_kernel

NS_BIAS = 0.1            # per element on one core (2-core VM, AVX2), add or sum: memory-bound at large sizes
OVERLAP = True           # backward's two products at once, one core each (False: one after the other)
OVERLAP_MAX_WORK = 1 << 28   # multiply-adds (N x in x out) of each product up to which they overlap


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


def backward_products(g2: np.ndarray, w: np.ndarray, x2: np.ndarray, needs_x: bool, needs_w: bool) -> tuple:
    """``(g2 @ w, g2^T @ x2)``, dx and dW of rows g2 (N, out), w (out, in), x2 (N, in); None where not
    needed. Both needed, :data:`OVERLAP`, two cores or more and products of at most
    :data:`OVERLAP_MAX_WORK` multiply-adds: at once, one BLAS thread each."""
    if needs_x and needs_w and OVERLAP and threads.THREADS > 1 and g2.shape[0] * w.size <= OVERLAP_MAX_WORK:
        with backend.one_blas_thread():
            return threads.both(lambda: g2 @ w, lambda: g2.T @ x2)
    return (g2 @ w if needs_x else None), (g2.T @ x2 if needs_w else None)


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
        dx, dw = backward_products(g2, self.w, self.x.reshape(-1, self.x.shape[-1]), needs_grad[0], needs_grad[1])
        db = bias_grad(g2) if needs_grad[2] else None
        return (None if dx is None else dx.reshape(self.x.shape)), dw, db
