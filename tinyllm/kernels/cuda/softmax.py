"""Softmax over the last axis as one row kernel per direction.
Formula: :class:`tinyllm.functional.softmax.Softmax`."""
from __future__ import annotations

from typing import Any

from . import cp, fits, launch


def softmax_lastaxis(x: Any) -> Any:
    """softmax over the last axis, in a new array."""
    y = cp().array(x, order="C", copy=True)
    c = y.shape[-1]
    launch("softmax_rows", y.dtype, y.size // c if c else 0, c,
           (y, cp().int32(c), cp().int32(1), cp().int32(0), y.dtype.type(1)))
    return y


def softmax_lastaxis_backward(g: Any, y: Any) -> Any:
    """y * (g - sum(g * y)) over the last axis, in a new array."""
    dx = cp().array(g, order="C", copy=True)
    c = dx.shape[-1]
    launch("softmax_bwd_rows", dx.dtype, dx.size // c if c else 0, c,
           (dx, cp().ascontiguousarray(y), cp().int32(c), dx.dtype.type(1)))
    return dx


class Softmax:
    """Softmax of CuPy arrays over their last axis (rows of at most MAX_ROW); keeps y."""

    @staticmethod
    def accepts(x: Any, axis: int = -1) -> bool:
        return fits(x) and axis in (-1, x.ndim - 1)

    def forward(self, x: Any, axis: int) -> Any:
        self.y = softmax_lastaxis(x)
        return self.y

    def backward(self, g: Any) -> Any:
        return softmax_lastaxis_backward(g, self.y)
