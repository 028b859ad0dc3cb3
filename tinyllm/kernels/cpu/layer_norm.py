"""Layer norm as one compiled loop per direction: two reads of each row, one write.

Formula and reference: :class:`tinyllm.functional.layer_norm.LayerNorm`.
"""
from __future__ import annotations

import math

import numpy as np

from . import rows2d
from .jit import F, jit_no_fma
from .threads import run_kernel

NS_FORWARD, NS_BACKWARD = 0.33, 0.5     # per element on one core (2-core VM, AVX2)


@jit_no_fma
def layer_norm_forward(x, w, b, eps, y, mean, rstd):
    """Per row:  mean = sum(x)/C,  rstd = 1/sqrt(sum((x - mean)^2)/C + eps),
    y = (x - mean) * rstd * w + b.  Two reads of the row (it stays in cache) and one write."""
    n, c = x.shape
    for i in range(n):
        s = F(0.0)
        for j in range(c):
            s += x[i, j]
        mu = s / F(c)
        ss = F(0.0)
        for j in range(c):
            d = x[i, j] - mu
            ss += d * d
        r = F(1.0) / math.sqrt(ss / F(c) + eps)
        for j in range(c):
            y[i, j] = (x[i, j] - mu) * r * w[j] + b[j]
        mean[i] = mu
        rstd[i] = r


@jit_no_fma
def layer_norm_backward(g, x, mean, rstd, w, dx, dw, db):
    """Per row, with xhat = (x - mean) rstd recomputed and gxhat = g w:
        dx = rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat));
    and ADDS this block's sum over rows of g xhat into dw and of g into db."""
    n, c = x.shape
    for i in range(n):
        mu, r = mean[i], rstd[i]
        s1 = F(0.0)
        s2 = F(0.0)
        for j in range(c):
            xh = (x[i, j] - mu) * r
            gw = g[i, j] * w[j]
            s1 += gw
            s2 += gw * xh
            dw[j] += g[i, j] * xh
            db[j] += g[i, j]
        s1 /= F(c)
        s2 /= F(c)
        for j in range(c):
            xh = (x[i, j] - mu) * r
            dx[i, j] = r * (g[i, j] * w[j] - s1 - xh * s2)


class LayerNorm:
    """Layer norm on float32 NumPy arrays. Keeps x, mean and rstd (not xhat): the backward
    recomputes xhat as it goes, and computes dx, dw, db in one pass over the rows per core
    (each core sums its own dw and db)."""

    def forward(self, x: np.ndarray, w: np.ndarray | None, b: np.ndarray | None, eps: float) -> np.ndarray:
        c = x.shape[-1]
        self.x2 = x2 = rows2d(x)                                        # (N, C)
        self.w = w if w is not None else np.ones(c, dtype=np.float32)
        b = b if b is not None else np.zeros(c, dtype=np.float32)
        y = np.empty(x2.shape, dtype=np.float32)
        self.mean, self.rstd = np.empty(x2.shape[0], dtype=np.float32), np.empty(x2.shape[0], dtype=np.float32)
        run_kernel(lambda r: layer_norm_forward(x2[r], self.w, b, np.float32(eps), y[r], self.mean[r], self.rstd[r]),
                   x2.shape[0], x2.size, NS_FORWARD)
        return y.reshape(x.shape)

    def backward(self, g: np.ndarray, needs_grad: tuple) -> tuple:
        """(dx, dw, db), None where ``needs_grad`` (for x, w, b) says no."""
        x2, c = self.x2, self.x2.shape[-1]
        g2 = rows2d(g)
        dx = np.empty(g.shape, dtype=np.float32)                        # its own array: no copy on the leaf
        dx2 = dx.reshape(x2.shape)
        parts: list = []

        def block(r):
            dw, db = np.zeros(c, dtype=np.float32), np.zeros(c, dtype=np.float32)
            layer_norm_backward(g2[r], x2[r], self.mean[r], self.rstd[r], self.w, dx2[r], dw, db)
            parts.append((dw, db))

        run_kernel(block, x2.shape[0], x2.size, NS_BACKWARD)
        return (dx if needs_grad[0] else None,
                sum(p[0] for p in parts) if needs_grad[1] else None,
                sum(p[1] for p in parts) if needs_grad[2] else None)
