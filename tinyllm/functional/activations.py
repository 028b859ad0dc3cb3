"""Activation functions beyond the fused GELU/ReLU of the models, PyTorch's names and defaults.

One Function per activation whose derivative is not a one-liner of primitives;
the simpler ones are compositions of primitive ops (the engine differentiates
them). Each docstring gives y(x) and dy/dx.
"""
from __future__ import annotations

import math
from ..backend import get_array_module
from ..ops.dtypes import float_input
from ..ops.math import erf_array
from ..tensor import Function, Tensor
from . import layers as _layers
from .softmax import softmax

# ----------------------------------------------------------------------------- GELU


class GeluExact(Function):
    """y = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2;  dy/dx = Phi(x) + x phi(x),
    phi(x) = e^(-x^2/2) / sqrt(2 pi)."""

    def forward(self, x):
        self.x = x
        self.cdf = 0.5 * (1 + erf_array(x * (1 / math.sqrt(2.0))))
        return x * self.cdf

    def backward(self, g):
        xp = get_array_module(g)
        pdf = xp.exp(-0.5 * self.x * self.x) * (1 / math.sqrt(2 * math.pi))
        return (g * (self.cdf + self.x * pdf),)


def gelu(x: Tensor, approximate: str = "tanh") -> Tensor:
    """GELU: ``approximate="tanh"`` (GPT-2's, this engine's default, the fused op of
    :mod:`tinyllm.functional.layers`) or ``"none"`` (the exact x Phi(x), PyTorch's default)."""
    if approximate == "tanh":
        return _layers.gelu(float_input(x))
    if approximate == "none":
        return GeluExact.apply(float_input(x))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


__all__ = ["GeluExact", "gelu", "softmax"]
