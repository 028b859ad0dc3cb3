"""GELU (tanh approximation) as one compiled loop per direction.

Formula and reference: :class:`tinyllm.functional.gelu.Gelu`.
"""
from __future__ import annotations

import math

import numpy as np

from . import flat
from .exp import one_plus_minus_tanh
from .jit import F, jit
from .threads import run_kernel

SQRT_2_OVER_PI = F(math.sqrt(2.0 / math.pi))
GELU_C = F(0.044715)
NS_FORWARD, NS_BACKWARD = 1.0, 1.3      # per element on one core (2-core VM, AVX2)


@jit
def gelu_forward(x, y):
    """y = x/2 (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3); x, y 1-d."""
    for i in range(x.size):
        a = x[i]
        tp, _ = one_plus_minus_tanh(SQRT_2_OVER_PI * (a + GELU_C * a * a * a))
        y[i] = F(0.5) * a * tp


@jit
def gelu_backward(x, g, dx):
    """dx = g [ (1 + t)/2 + x/2 (1 - t^2) du ] = g (1 + t)/2 (1 + x (1 - t) du),
    du = sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    for i in range(x.size):
        a = x[i]
        tp, tm = one_plus_minus_tanh(SQRT_2_OVER_PI * (a + GELU_C * a * a * a))
        du = SQRT_2_OVER_PI * (F(1.0) + F(3.0) * GELU_C * a * a)
        dx[i] = g[i] * F(0.5) * tp * (F(1.0) + a * tm * du)


class Gelu:
    """GELU on float32 NumPy arrays; keeps x only (backward recomputes tanh, as PyTorch does)."""

    @staticmethod
    def accepts(x: np.ndarray) -> bool:
        return True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        y = np.empty(x.shape, dtype=np.float32)
        xs, ys = flat(x), y.reshape(-1)
        run_kernel(lambda r: gelu_forward(xs[r], ys[r]), xs.size, xs.size, NS_FORWARD)
        return y

    def backward(self, g: np.ndarray) -> np.ndarray:
        dx = np.empty(self.x.shape, dtype=np.float32)
        xs, gs, dxs = flat(self.x), flat(g), dx.reshape(-1)
        run_kernel(lambda r: gelu_backward(xs[r], gs[r], dxs[r]), xs.size, xs.size, NS_BACKWARD)
        return dx
