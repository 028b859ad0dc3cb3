"""GELU, tanh approximation (GPT-2, BERT), as one graph node."""
from __future__ import annotations

import math
from typing import Any

from .. import kernels
from ..backend import get_array_module
from ..tensor import Function, Tensor

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715


class GeluReference:
    """The formula, for NumPy and CuPy alike. Only x is saved: backward recomputes t."""

    def forward(self, x: Any) -> Any:
        self.x = x
        t = get_array_module(x).tanh(SQRT_2_OVER_PI * (x + GELU_C * x ** 3))
        return 0.5 * x * (1 + t)

    def backward(self, g: Any) -> Any:
        x = self.x
        t = get_array_module(x).tanh(SQRT_2_OVER_PI * (x + GELU_C * x ** 3))
        du = SQRT_2_OVER_PI * (1 + 3 * GELU_C * x ** 2)
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)


class Gelu(Function):
    """GELU, tanh approximation (GPT-2):
        y = x/2 (1 + t),   t = tanh(u),   u = sqrt(2/pi) (x + 0.044715 x^3)
        dx = g [ (1 + t)/2 + x/2 (1 - t^2) du ],   du = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    The formula is :class:`GeluReference`; ``kernels.select`` may run a
    kernel instead (``kernels/cpu/gelu.py``, ``kernels/cuda/gelu.py``).
    """

    def forward(self, x):
        self.impl = kernels.select("gelu", x, reference=GeluReference)
        return self.impl.forward(x)

    def backward(self, g):
        return (self.impl.backward(g),)


def gelu(x: Tensor) -> Tensor:
    """Gaussian error linear unit, tanh approximation (as GPT-2)."""
    return Gelu.apply(x)
