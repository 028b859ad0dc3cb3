"""Dropout as one graph node."""
from __future__ import annotations

from typing import Any

from .. import backend, kernels
from ..backend import get_array_module
from ..tensor import Function, Tensor


def _uniform_dtype(dtype: Any) -> Any:
    """The generators draw float32 or float64 only: float16 masks are drawn in float32."""
    return dtype if dtype == "float64" else "float32"


class DropoutReference:
    """The formula, for NumPy and CuPy alike: the mask from the backend's seeded generator."""

    def forward(self, x: Any, p: float) -> Any:
        keep = backend.rng(get_array_module(x)).random(x.shape, dtype=_uniform_dtype(x.dtype)) >= p
        self.scale = keep * x.dtype.type(1.0 / (1.0 - p))              # m / (1 - p)
        return x * self.scale

    def backward(self, g: Any) -> Any:
        return g * self.scale


class Dropout(Function):
    """y = x * m / (1 - p), m_i ~ Bernoulli(1 - p) (so E[y] = x);  dx = g * m / (1 - p).
    m_i = [u_i >= p] for u_i the backend generator's next uniform numbers.
    The formula is :class:`DropoutReference`; on the GPU ``kernels.select``
    runs ``kernels/cuda/dropout.py``, which draws the same numbers inside the
    kernel and never stores the mask."""

    def forward(self, x, p=0.5):
        self.impl = kernels.select("dropout", x, reference=DropoutReference)
        return self.impl.forward(x, p)

    def backward(self, g):
        return (self.impl.backward(g),)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p); identity when not training."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return Dropout.apply(x, p=p)
