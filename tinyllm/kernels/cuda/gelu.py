"""GELU as one elementwise CUDA kernel per direction. Formula: :class:`tinyllm.functional.gelu.Gelu`.

    y = x/2 (1 + t), t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3)
    dx = g [ (1 + t)/2 + x/2 (1 - t^2) du ],  du = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
"""
from __future__ import annotations

import math
from typing import Any

from . import NO_FMA, cached

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715
_U = f"T u = (T){SQRT_2_OVER_PI!r} * (x + (T){GELU_C!r} * x * x * x);"


def gelu_forward(x: Any) -> Any:
    k = cached("gelu_fwd", lambda cp: cp.ElementwiseKernel(
        "T x", "T y", _U + "y = (T)0.5 * x * ((T)1 + tanh(u));", "tinyllm_gelu_fwd", options=NO_FMA))
    return k(x)


def gelu_backward(x: Any, g: Any) -> Any:
    k = cached("gelu_bwd", lambda cp: cp.ElementwiseKernel(
        "T x, T g", "T dx",
        _U + f"""T t = tanh(u);
        T du = (T){SQRT_2_OVER_PI!r} * ((T)1 + (T){3 * GELU_C!r} * x * x);
        dx = g * ((T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * du);""",
        "tinyllm_gelu_bwd", options=NO_FMA))
    return k(x, g)


class Gelu:
    """GELU on CuPy arrays; keeps x only (backward recomputes tanh)."""

    def forward(self, x: Any) -> Any:
        self.x = x
        return gelu_forward(x)

    def backward(self, g: Any) -> Any:
        return gelu_backward(self.x, g)
