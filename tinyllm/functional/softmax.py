"""The softmax family: softmax, log_softmax, logsumexp.

Each is one graph node with a closed-form backward, stable for logits of +-1e4
(the row max is subtracted before exponentiating).
"""
from __future__ import annotations

from typing import Any

from .. import kernels
from ..backend import get_array_module
from ..ops.reduce import _axes, _keep
from ..tensor import Function, Tensor


class SoftmaxReference:
    """The formula, for NumPy and CuPy alike; saves y."""

    def forward(self, x: Any, axis: int) -> Any:
        e = get_array_module(x).exp(x - x.max(axis=axis, keepdims=True))
        self.y, self.axis = e / e.sum(axis=axis, keepdims=True), axis
        return self.y

    def backward(self, g: Any) -> Any:
        return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))


class Softmax(Function):
    """y_i = e^{x_i - m} / sum_j e^{x_j - m}  (m = max_j x_j, for stability);
    dx = y * (g - sum_j g_j y_j).
    The formula is :class:`SoftmaxReference`; on the GPU ``kernels.select``
    runs ``kernels/cuda/softmax.py`` over the last axis."""

    def forward(self, x, axis=-1):
        self.impl = kernels.select("softmax", x, axis=axis, reference=SoftmaxReference)
        return self.impl.forward(x, axis)

    def backward(self, g):
        return (self.impl.backward(g),)


class LogSoftmax(Function):
    """y_i = x_i - logsumexp(x);  dx = g - softmax(x) * sum_j g_j."""

    def forward(self, x, axis=-1):
        xp = get_array_module(x)
        self.axis = axis
        shifted = x - x.max(axis=axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return self.y

    def backward(self, g):
        xp = get_array_module(g)
        return (g - xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True),)


class LogSumExp(Function):
    """y = m + log sum_i e^{x_i - m}  (m = max_i x_i);  dx_i = g * e^{x_i - y} = g * softmax(x)_i."""

    def forward(self, x, axis=None, keepdims=False):
        xp = get_array_module(x)
        self.x, self.axes, self.keepdims = x, _axes(axis, x.ndim), keepdims
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        self.y = m + xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True))
        return self.y if keepdims else self.y.reshape([n for i, n in enumerate(self.y.shape) if i not in self.axes])

    def backward(self, g):
        xp = get_array_module(g)
        return (_keep(g, self.axes, self.keepdims) * xp.exp(self.x - self.y),)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Numerically stable softmax along ``axis``."""
    return Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Numerically stable log-softmax along ``axis``."""
    return LogSoftmax.apply(x, axis=axis)


def logsumexp(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``axis``, stable for large |x|."""
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)
