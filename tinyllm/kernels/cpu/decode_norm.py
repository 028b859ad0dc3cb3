"""A decode step's residual add and the layer norm after it, as one compiled loop (forward only).

Formula and reference: :class:`tinyllm.models.gpt.AddLayerNormReference`. A pre-LN block
adds each sublayer's output r to the residual stream x and normalizes the sum for the
next sublayer:

    x <- x + r,     y = (x - mean(x)) / sqrt(var(x) + eps) * w + b      per row

At batch 8 of a small model the rows are 8 x 128 numbers: the work is nothing, the calls
are everything (the in-place add, then the layer norm with its buffers for a backward that
decoding never runs). Here one call does both, per row: add, mean, variance, write y, with
the loops of :func:`.layer_norm.layer_norm_forward` (no fused multiply-adds; LLVM may still
order the vectorized sums differently, a last-bit difference).
"""
from __future__ import annotations

import math

import numpy as np

from .jit import jit_no_fma


@jit_no_fma
def add_layer_norm_(x, r, w, b, eps, y):
    """Per row i of x, r, y (N, C): x[i] += r[i], then y[i] = (x[i] - mean) rstd w + b with
    mean = sum(x[i]) / C and rstd = 1 / sqrt(sum((x[i] - mean)^2) / C + eps)."""
    n, c = x.shape
    zero, one, size = np.zeros(1, dtype=x.dtype)[0], np.ones(1, dtype=x.dtype)[0], np.full(1, c, dtype=x.dtype)[0]
    for i in range(n):
        for j in range(c):
            x[i, j] += r[i, j]
        s = zero
        for j in range(c):
            s += x[i, j]
        mu = s / size
        ss = zero
        for j in range(c):
            d = x[i, j] - mu
            ss += d * d
        rstd = one / math.sqrt(ss / size + eps)
        for j in range(c):
            y[i, j] = (x[i, j] - mu) * rstd * w[j] + b[j]


class AddLayerNorm:
    """``x += r`` in place, then the layer norm of x, on float32 NumPy arrays: :func:`add_layer_norm_`."""

    @staticmethod
    def accepts(x: np.ndarray, r: np.ndarray, w: np.ndarray | None = None, b: np.ndarray | None = None) -> bool:
        c = x.shape[-1]
        return (x.shape == r.shape and x.ndim >= 1 and c > 0 and x.flags.c_contiguous
                and all(a is None or a.shape == (c,) for a in (w, b)))

    def forward(self, x: np.ndarray, r: np.ndarray, w: np.ndarray | None, b: np.ndarray | None,
                eps: float) -> np.ndarray:
        """The layer norm of x + r (same shape as x), after adding r into x."""
        c = x.shape[-1]
        if w is None or b is None:
            w = np.ones(c, dtype=x.dtype) if w is None else w
            b = np.zeros(c, dtype=x.dtype) if b is None else b
        x2 = x.reshape(-1, c)                                           # a view: x is C-contiguous
        y = np.empty(x2.shape, dtype=x.dtype)
        add_layer_norm_(x2, np.ascontiguousarray(r).reshape(-1, c), w, b, x.dtype.type(eps), y)
        return y.reshape(x.shape)
