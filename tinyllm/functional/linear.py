"""The affine map of a Linear layer, y = x W^T + b, as one graph node."""
from __future__ import annotations

from typing import Any

from .. import kernels
from ..backend import column_sum
from ..tensor import Function, Tensor


class LinearReference:
    """The formula, for NumPy and CuPy alike: one matrix product forward, two and a sum backward.
    The products are BLAS (cuBLAS) calls already; a kernel can only speed up the bias add and sum."""

    def forward(self, x: Any, w: Any, b: Any) -> Any:
        self.x, self.w = x, w
        y = x.reshape(-1, x.shape[-1]) @ w.T                          # (N, in) -> (N, out)
        if b is not None:
            y += b
        return y.reshape(*x.shape[:-1], w.shape[0])

    def backward(self, g: Any, needs_grad: tuple) -> tuple:
        """(dx, dw, db), None where ``needs_grad`` (for x, w, b) says no."""
        g2 = g.reshape(-1, g.shape[-1])                               # (N, out)
        dx = (g2 @ self.w).reshape(self.x.shape) if needs_grad[0] else None
        dw = g2.T @ self.x.reshape(-1, self.x.shape[-1]) if needs_grad[1] else None
        db = column_sum(g2) if needs_grad[2] else None
        return dx, dw, db


class LinearFunction(Function):
    """y = x W^T + b as one node (x: (..., in), W: (out, in), b: (out,)).
    dx = g W,   dW = g^T x (summed over all leading axes),   db = sum of g over leading axes.
    The formula is :class:`LinearReference`; ``kernels.select`` may run a kernel instead
    (``kernels/cpu/linear.py``: the same products, the bias add and its gradient compiled)."""

    def forward(self, x, w, b=None):
        self.impl = kernels.select("linear", x, w, b, reference=LinearReference)
        return self.impl.forward(x, w, b)

    def backward(self, g):
        n = len(self.needs_grad)
        return self.impl.backward(g, self.needs_grad + (False,) * (3 - n))[:n]


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Affine map ``x @ weight.T + bias`` (PyTorch's weight layout: (out_features, in_features))."""
    return LinearFunction.apply(x, weight, bias) if bias is not None else LinearFunction.apply(x, weight)
