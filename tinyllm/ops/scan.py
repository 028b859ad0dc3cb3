"""Scans and sorting along one axis: cumsum, cumprod, logcumsumexp, sort, argsort, topk.

A scan's backward is a scan the other way: the gradient of x_j collects
every output y_i with i >= j. Sorting is a permutation, so its values are a
:func:`~tinyllm.ops.index.gather` of the input and their gradient is
scattered back by it.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .axes import normalize_axis
from .dtypes import cast, float_input
from .index import gather


def _reverse_cumsum(g: Any, axis: int) -> Any:
    """sum_{i >= j} g_i along ``axis``."""
    xp = get_array_module(g)
    return xp.flip(xp.cumsum(xp.flip(g, axis), axis=axis), axis)


class Cumsum(Function):
    """y_i = sum_{j <= i} x_j;  dx_j = sum_{i >= j} g_i."""

    def forward(self, x, axis=0):
        self.axis = axis
        return get_array_module(x).cumsum(x, axis=axis)

    def backward(self, g):
        return (_reverse_cumsum(g, self.axis),)


class Cumprod(Function):
    """y_i = prod_{j <= i} x_j;  dx_j = sum_{i >= j} g_i prod_{k <= i, k != j} x_k.

    Without zeros that is revcumsum(g y)_j / x_j. Where a running product is 0
    (or underflows) the product of the others is formed explicitly, one position
    at a time.
    """

    def forward(self, x, axis=0):
        self.x, self.axis = x, axis
        self.y = get_array_module(x).cumprod(x, axis=axis)
        return self.y

    def backward(self, g):
        xp = get_array_module(g)
        x, axis = self.x, self.axis
        if (xp.abs(self.y) > np.finfo(self.y.dtype).tiny).all():          # no zero, no underflow: divide
            return (_reverse_cumsum(g * self.y, axis) / x,)
        xm, gm = xp.moveaxis(x, axis, -1), xp.moveaxis(g, axis, -1)
        dx = xp.empty_like(xm)
        for j in range(xm.shape[-1]):
            others = xm.copy()
            others[..., j] = 1
            partial = xp.cumprod(others, axis=-1)[..., j:]            # prod_{k <= i, k != j}, i >= j
            dx[..., j] = (gm[..., j:] * partial).sum(axis=-1)
        return (xp.moveaxis(dx, -1, axis),)


class LogCumSumExp(Function):
    """y_i = log sum_{j <= i} e^(x_j);  dx_j = sum_{i >= j} g_i e^(x_j - y_i)."""

    def forward(self, x, axis=0):
        self.x, self.axis = x, axis
        self.y = get_array_module(x).logaddexp.accumulate(x, axis=axis)
        return self.y

    def backward(self, g):
        xp = get_array_module(g)
        m = self.y.max(axis=self.axis, keepdims=True)                    # keeps the exponentials in range
        return (xp.exp(self.x - m) * _reverse_cumsum(g * xp.exp(m - self.y), self.axis),)


# ----------------------------------------------------------------------------- public functions

def _scan(cls: type, x: Tensor, dim: int, name: str, dtype: Any = None) -> Tensor:
    if dtype is not None:
        x = cast(x, dtype)
    if x.ndim == 0:
        normalize_axis(dim, 0, name, x.shape)
        return cls.apply(x.reshape(1), axis=0).reshape(())
    return cls.apply(x, axis=normalize_axis(dim, x.ndim, name, x.shape))


def cumsum(x: Tensor, dim: int, dtype: Any = None) -> Tensor:
    """Running sums along ``dim``."""
    return _scan(Cumsum, x, dim, "cumsum", dtype)


def cumprod(x: Tensor, dim: int, dtype: Any = None) -> Tensor:
    """Running products along ``dim`` (exact gradients where x has zeros)."""
    return _scan(Cumprod, x, dim, "cumprod", dtype)


def logcumsumexp(x: Tensor, dim: int) -> Tensor:
    """log of the running sums of e^x along ``dim``, without overflow."""
    return _scan(LogCumSumExp, float_input(x), dim, "logcumsumexp")


class Sorted(NamedTuple):
    """What ``sort`` and ``topk`` return, as in PyTorch."""

    values: Tensor
    indices: Tensor


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort ``x`` along ``dim`` (ascending unless ``descending``); ties keep
    their order (the sort is always stable)."""
    xp = get_array_module(x.data)
    if x.ndim == 0:
        normalize_axis(dim, 0, "argsort", x.shape)
        return Tensor._wrap(xp.zeros((), dtype=np.int64))
    d = normalize_axis(dim, x.ndim, "argsort", x.shape)
    data = x.data
    if descending:                                    # a stable descending order: sort the flipped, flip back
        n = data.shape[d]
        idx = xp.flip(xp.argsort(xp.flip(data, d), axis=d, kind="stable"), d)
        return Tensor._wrap((n - 1 - idx).astype(np.int64))
    return Tensor._wrap(xp.argsort(data, axis=d, kind="stable").astype(np.int64))


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Sorted:
    """``(values, indices)`` sorted along ``dim``; the values' gradient goes back to where each came from."""
    idx = argsort(x, dim, descending)
    if x.ndim == 0:
        return Sorted(x, idx)
    return Sorted(gather(x, dim, idx), idx)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Sorted:  # noqa: A002
    """The ``k`` largest (or smallest) values along ``dim`` and their indices, best first."""
    d = normalize_axis(dim, x.ndim, "topk", x.shape)
    n = x.shape[d] if x.ndim else 1
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is out of range for {n} elements along dim {dim}")
    idx = argsort(x, d, descending=largest)
    if x.ndim == 0:
        return Sorted(x, idx)
    idx = Tensor._wrap(get_array_module(idx.data).take(idx.data, np.arange(k), axis=d))
    return Sorted(gather(x, d, idx), idx)


def msort(x: Tensor) -> Tensor:
    """Sorted along the first axis (values only)."""
    return sort(x, 0).values
