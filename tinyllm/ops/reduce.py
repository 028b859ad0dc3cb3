"""Reductions over an axis (int, tuple or None) with ``keepdims``.

Each backward first restores the reduced axes as size-1 axes
(:func:`_keep`), so the gradient broadcasts back over the input.
"""
from __future__ import annotations

import builtins
from typing import Any

from ..backend import get_array_module
from ..tensor import Function, Tensor


def _axes(axis: Any, ndim: int) -> tuple:
    """``axis`` as a sorted tuple of non-negative ints (None means all axes)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    out = []
    for a in axis:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a {ndim}-d tensor")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _keep(g: Any, axes: tuple, keepdims: bool) -> Any:
    """Re-insert the reduced axes as size 1 so ``g`` broadcasts against the input."""
    if keepdims:
        return g
    shape = list(g.shape)
    for a in axes:
        shape.insert(a, 1)
    return g.reshape(shape)


def _count(shape: tuple, axes: tuple) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


class Sum(Function):
    """y = sum_i x_i over ``axis``;  dx_i = g (broadcast back)."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = x.shape, _axes(axis, x.ndim), keepdims
        return x.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        return (xp.broadcast_to(_keep(g, self.axes, self.keepdims), self.shape),)


class Mean(Function):
    """y = (1/N) sum_i x_i over ``axis``;  dx_i = g / N."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = x.shape, _axes(axis, x.ndim), keepdims
        return x.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        n = _count(self.shape, self.axes)
        return (xp.broadcast_to(_keep(g, self.axes, self.keepdims) / n, self.shape),)


class Max(Function):
    """y = max_i x_i over ``axis``;  dx_i = g at the maximum (split evenly between ties)."""

    pick = staticmethod(lambda x, axes: x.max(axis=axes, keepdims=True))

    def forward(self, x, axis=None, keepdims=False):
        if x.size == 0:
            raise ValueError(f"{type(self).__name__.lower()} of an empty tensor")
        self.axes, self.keepdims = _axes(axis, x.ndim), keepdims
        y = self.pick(x, self.axes)
        self.winners = x == y
        return y if keepdims else y.reshape([n for i, n in enumerate(y.shape) if i not in self.axes])

    def backward(self, g):
        share = self.winners / self.winners.sum(axis=self.axes, keepdims=True)
        return (_keep(g, self.axes, self.keepdims) * share.astype(g.dtype, copy=False),)


class Min(Max):
    """y = min_i x_i over ``axis``;  dx_i = g at the minimum (split evenly between ties)."""

    pick = staticmethod(lambda x, axes: x.min(axis=axes, keepdims=True))


class Var(Function):
    """y = sum_i (x_i - mean)^2 / (N - ddof);  dx_i = g * 2 (x_i - mean) / (N - ddof)."""

    def forward(self, x, axis=None, keepdims=False, ddof=0):
        self.axes, self.keepdims = _axes(axis, x.ndim), keepdims
        self.denom = _count(x.shape, self.axes) - ddof
        if self.denom <= 0:
            raise ValueError(f"var: {_count(x.shape, self.axes)} elements with ddof={ddof}")
        self.centered = x - x.mean(axis=self.axes, keepdims=True)
        return (self.centered * self.centered).sum(axis=self.axes, keepdims=keepdims) / self.denom

    def backward(self, g):
        return (_keep(g, self.axes, self.keepdims) * (2.0 / self.denom) * self.centered,)


def sum(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (int, tuple, or None for all)."""
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis``."""
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Largest value over ``axis``."""
    return Max.apply(x, axis=axis, keepdims=keepdims)


def min(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Smallest value over ``axis``."""
    return Min.apply(x, axis=axis, keepdims=keepdims)


def var(x: Tensor, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over ``axis`` (population variance by default; ``ddof=1`` for the sample one)."""
    return Var.apply(x, axis=axis, keepdims=keepdims, ddof=ddof)


def argmax(x: Tensor, axis: int | None = None) -> Tensor:
    """Index of the largest value (an integer tensor; not differentiable)."""
    return Tensor._wrap(x.data.argmax(axis=axis))
