"""GELU with the exact normal CDF (erf) as one compiled loop per direction.

Formula and reference: :class:`tinyllm.functional.activations.GeluExact`. NumPy has no
``erf``; the reference calls the C library's once per element from Python (about
0.1 us each), this loop calls it from machine code. It keeps Phi(x) for backward.
"""
from __future__ import annotations

import math

import numpy as np

from . import flat
from .jit import F, jit
from .threads import run_kernel

INV_SQRT_2 = F(1.0 / math.sqrt(2.0))
INV_SQRT_2PI = F(1.0 / math.sqrt(2.0 * math.pi))
NS_FORWARD, NS_BACKWARD = 4.0, 2.0      # per element on one core (2-core VM, AVX2), rough


@jit
def gelu_exact_forward(x, y, cdf):
    """cdf = Phi(x) = (1 + erf(x / sqrt 2)) / 2,  y = x Phi(x); x, y, cdf 1-d."""
    for i in range(x.size):
        c = F(0.5) * (F(1.0) + math.erf(x[i] * INV_SQRT_2))
        cdf[i] = c
        y[i] = x[i] * c


@jit
def gelu_exact_backward(x, cdf, g, dx):
    """dx = g (Phi(x) + x phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    for i in range(x.size):
        a = x[i]
        dx[i] = g[i] * (cdf[i] + a * math.exp(F(-0.5) * a * a) * INV_SQRT_2PI)


class GeluExact:
    """Exact GELU on float32 NumPy arrays; keeps x and Phi(x)."""

    @staticmethod
    def accepts(x: np.ndarray) -> bool:
        return True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        y = np.empty(x.shape, dtype=np.float32)
        self.cdf = np.empty(x.shape, dtype=np.float32)
        xs, ys, cs = flat(x), y.reshape(-1), self.cdf.reshape(-1)
        run_kernel(lambda r: gelu_exact_forward(xs[r], ys[r], cs[r]), xs.size, xs.size, NS_FORWARD)
        return y

    def backward(self, g: np.ndarray) -> np.ndarray:
        dx = np.empty(self.x.shape, dtype=np.float32)
        xs, cs, gs, dxs = flat(self.x), self.cdf.reshape(-1), flat(g), dx.reshape(-1)
        run_kernel(lambda r: gelu_exact_backward(xs[r], cs[r], gs[r], dxs[r]), xs.size, xs.size, NS_BACKWARD)
        return dx
