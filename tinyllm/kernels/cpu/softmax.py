"""Softmax over the last axis as one compiled loop per direction.

Formula and reference: :class:`tinyllm.functional.softmax.Softmax`.
"""
from __future__ import annotations

import numpy as np

from . import rows2d
from .attention import softmax_backward_
from .exp import exp_neg
from .jit import F, jit
from .threads import run_kernel

NS_FORWARD, NS_BACKWARD = 1.0, 0.5      # per element on one core (2-core VM, AVX2)


@jit
def softmax_rows_(s):
    """In place, rows of s (R, C): s = e^(s - m) / sum e^(s - m), m the row max (as the
    reference: a row of -inf, or with +inf or NaN, gives NaN)."""
    n, c = s.shape
    for i in range(n):
        m = F(-np.inf)
        for j in range(c):
            m = max(m, s[i, j])
        d = F(0.0)
        for j in range(c):
            e = exp_neg(s[i, j] - m)
            s[i, j] = e
            d += e
        inv = F(1.0) / d
        for j in range(c):
            s[i, j] *= inv


class Softmax:
    """Softmax of float32 NumPy arrays over their last axis; keeps y."""

    @staticmethod
    def accepts(x: np.ndarray, axis: int = -1) -> bool:
        return x.ndim >= 1 and axis in (-1, x.ndim - 1) and x.shape[-1] > 0

    def forward(self, x: np.ndarray, axis: int) -> np.ndarray:
        self.y = np.array(x, dtype=np.float32, order="C")              # a copy, softmaxed in place
        y2 = rows2d(self.y)
        run_kernel(lambda r: softmax_rows_(y2[r]), y2.shape[0], y2.size, NS_FORWARD)
        return self.y

    def backward(self, g: np.ndarray) -> np.ndarray:
        dx = np.array(g, dtype=np.float32, order="C")                   # dP, then dx in place
        dx2, y2 = rows2d(dx), rows2d(self.y)
        run_kernel(lambda r: softmax_backward_(dx2[r], y2[r], F(1.0)), dx2.shape[0], dx2.size, NS_BACKWARD)
        return dx
