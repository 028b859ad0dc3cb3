"""Layer normalization over the last axis, as one graph node."""
from __future__ import annotations

from typing import Any

from .. import kernels
from ..backend import get_array_module
from ..ops.axes import ShapeError
from ..tensor import Function, Tensor


class LayerNormReference:
    """The formula, for NumPy and CuPy alike; saves xhat and 1/sqrt(var + eps)."""

    def forward(self, x: Any, w: Any, b: Any, eps: float) -> Any:
        xc = x - x.mean(axis=-1, keepdims=True)
        self.rstd = 1 / get_array_module(x).sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
        self.xhat, self.w = xc * self.rstd, w
        y = self.xhat if w is None else self.xhat * w
        return y if b is None else y + b

    def backward(self, g: Any, needs_grad: tuple) -> tuple:
        """(dx, dw, db), None where ``needs_grad`` (for x, w, b) says no."""
        xhat, rows = self.xhat, tuple(range(g.ndim - 1))
        gxhat = g if self.w is None else g * self.w
        dx = self.rstd * (gxhat - gxhat.mean(axis=-1, keepdims=True)
                          - xhat * (gxhat * xhat).mean(axis=-1, keepdims=True)) if needs_grad[0] else None
        dw = (g * xhat).sum(axis=rows) if needs_grad[1] else None
        db = g.sum(axis=rows) if needs_grad[2] else None
        return dx, dw, db


class LayerNorm(Function):
    """Normalize the last axis, then scale and shift:
        xhat = (x - mean) / sqrt(var + eps),   y = xhat * w + b
    Backward, with C features, gxhat = g * w:
        dx = (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)) / sqrt(var + eps)
        dw = sum over rows of g * xhat,   db = sum over rows of g
    Inputs are ``(x,)`` without affine parameters, ``(x, w)`` or ``(x, w, b)``.
    The formula is :class:`LayerNormReference`; ``kernels.select`` may run a
    kernel instead (``kernels/cpu/layer_norm.py``, ``kernels/cuda/layer_norm.py``).
    """

    def forward(self, x, *wb, eps=1e-5):
        w, b = (wb + (None, None))[:2]
        self.impl = kernels.select("layer_norm", x, w, b, reference=LayerNormReference)
        return self.impl.forward(x, w, b, eps)

    def backward(self, g):
        n = len(self.needs_grad)
        return self.impl.backward(g, self.needs_grad + (False,) * (3 - n))[:n]


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalization over the last axis, with optional affine ``weight`` and ``bias``."""
    if bias is not None and weight is None:
        raise ValueError("layer_norm: a bias needs a weight")
    inputs = [t for t in (x, weight, bias) if t is not None]
    if any(t.shape != x.shape[-1:] for t in inputs[1:]):  # the kernels index weight and bias by x's last axis
        raise ShapeError(f"layer_norm: weight/bias of shape {inputs[1].shape} for an input of shape {x.shape}")
    return LayerNorm.apply(*inputs, eps=eps)
