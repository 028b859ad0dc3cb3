"""Selecting and placing elements by index: gather, scatter, scatter_add, index_select,
masked_select, nonzero, one_hot.

``gather`` reads ``x[..., index[i], ...]`` along one axis, so its backward adds
each gradient element back at the place it was read from (duplicates sum);
``scatter_add`` is its mirror image. Index tensors never get gradients.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .axes import ShapeError, normalize_axis
from .dtypes import to_dtype
from .shape import getitem


def _full_index(index: Any, axis: int) -> tuple:
    """The tuple of index arrays that ``take_along_axis(x, index, axis)`` reads."""
    xp = get_array_module(index)
    grids = xp.indices(index.shape, sparse=True)
    return tuple(index if a == axis else grids[a] for a in range(index.ndim))


class Gather(Function):
    """y[i][j][k] = x[i][index[i][j][k]][k] (for axis 1);  dx = g added back at those places."""

    def forward(self, x, index=None, axis=0):
        self.shape, self.index, self.axis = x.shape, index, axis
        return x[_full_index(index, axis)]

    def backward(self, g):
        xp = get_array_module(g)
        dx = xp.zeros(self.shape, dtype=g.dtype)
        xp.add.at(dx, _full_index(self.index, self.axis), g)
        return (dx,)


class ScatterAdd(Function):
    """y = x, then y[..., index[i], ...] += src[i] along ``axis``;  dx = g, dsrc = gather(g, index)."""

    def forward(self, x, src, index=None, axis=0):
        xp = get_array_module(x)
        self.index, self.axis = index, axis
        y = x.copy()
        xp.add.at(y, _full_index(index, axis), src)
        return y

    def backward(self, g):
        return g, g[_full_index(self.index, self.axis)]


class Scatter(Function):
    """y = x, then y[..., index[i], ...] = src[i] along ``axis``;  dx = g where nothing was written
    (0 where something was), dsrc = gather(g, index). With duplicate indices one write wins."""

    def forward(self, x, src, index=None, axis=0):
        self.index, self.axis = index, axis
        y = x.copy()
        y[_full_index(index, axis)] = src
        return y

    def backward(self, g):
        dx = g.copy()
        dx[_full_index(self.index, self.axis)] = 0
        return dx, g[_full_index(self.index, self.axis)]


# ----------------------------------------------------------------------------- public functions

def _index_array(x: Tensor, index: Any, name: str) -> Any:
    idx = index.data if isinstance(index, Tensor) else get_array_module(x.data).asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name}: the index must be an integer tensor, got {idx.dtype}")
    return idx


def _checked(x: Tensor, dim: int, index: Any, name: str) -> tuple:
    """(axis, index array) after PyTorch's checks: as many dims as x, no larger outside ``dim``, in range."""
    d = normalize_axis(dim, x.ndim, name, x.shape)
    idx = _index_array(x, index, name)
    if idx.ndim != x.ndim:
        raise ShapeError(f"{name}: index of shape {idx.shape} needs as many dims as the input {x.shape}")
    if any(i > n for a, (i, n) in enumerate(zip(idx.shape, x.shape)) if a != d):
        raise ShapeError(f"{name}: index of shape {idx.shape} is larger than the input {x.shape} outside dim {d}")
    n = x.shape[d]
    if idx.size and (int(idx.min()) < -n or int(idx.max()) >= n):
        raise IndexError(f"{name}: an index is out of range for size {n} of dim {d} (shape {x.shape})")
    return d, idx % n if idx.size else idx


def gather(x: Tensor, dim: int, index: Any) -> Tensor:
    """``y[i][j] = x[index[i][j]][j]`` for dim 0 (``x[i][index[i][j]]`` for dim 1), as ``torch.gather``."""
    d, idx = _checked(x, dim, index, "gather")
    return Gather.apply(x, index=idx, axis=d)


def _src(x: Tensor, src: Any, idx: Any) -> Tensor:
    """``src`` as a tensor of x's dtype, cut to the index's shape (a scalar fills it)."""
    if not isinstance(src, Tensor):
        return Tensor._wrap(get_array_module(x.data).full(idx.shape, src, dtype=x.dtype))
    src = to_dtype(src, x.dtype)
    if src.ndim != idx.ndim or any(i > n for i, n in zip(idx.shape, src.shape)):
        raise ShapeError(f"scatter: index of shape {idx.shape} is larger than src {src.shape}")
    if src.shape != idx.shape:
        src = getitem(src, tuple(slice(0, n) for n in idx.shape))
    return src


def scatter(x: Tensor, dim: int, index: Any, src: Any = None, value: Any = None, reduce: str | None = None) -> Tensor:
    """A copy of ``x`` with ``src`` (a tensor, or the scalar ``value``) written at ``index`` along ``dim``;
    ``reduce="add"`` adds instead (:func:`scatter_add`)."""
    if reduce == "add":
        return scatter_add(x, dim, index, src if src is not None else value)
    if reduce is not None:
        raise ValueError(f"scatter: reduce must be None or 'add', got {reduce!r}")
    d, idx = _checked(x, dim, index, "scatter")
    return Scatter.apply(x, _src(x, src if src is not None else value, idx), index=idx, axis=d)


def scatter_add(x: Tensor, dim: int, index: Any, src: Any) -> Tensor:
    """A copy of ``x`` with ``src`` added at ``index`` along ``dim`` (duplicates add up)."""
    d, idx = _checked(x, dim, index, "scatter_add")
    return ScatterAdd.apply(x, _src(x, src, idx), index=idx, axis=d)


def index_select(x: Tensor, dim: int, index: Any) -> Tensor:
    """The slices ``index`` (a 1-d integer tensor) of ``x`` along ``dim``."""
    d = normalize_axis(dim, x.ndim, "index_select", x.shape)
    idx = _index_array(x, index, "index_select")
    if idx.ndim > 1:
        raise ValueError(f"index_select: the index must be 1-d, got shape {idx.shape}")
    return getitem(x, (slice(None),) * d + (idx.reshape(-1),))


def masked_select(x: Tensor, mask: Any) -> Tensor:
    """The elements of ``x`` where ``mask`` (broadcast to x's shape) is true, as a 1-d tensor."""
    m = mask.data if isinstance(mask, Tensor) else get_array_module(x.data).asarray(mask)
    xp = get_array_module(x.data)
    return getitem(x, xp.broadcast_to(m.astype(bool), x.shape)) if x.ndim else getitem(x.reshape(1), m.reshape(1))


def nonzero(x: Tensor, as_tuple: bool = False) -> Any:
    """The indices of the nonzero elements: (n, ndim) int64, or a tuple of ndim 1-d tensors."""
    xp = get_array_module(x.data)
    found = xp.nonzero(x.data.reshape(1) if x.ndim == 0 else x.data)
    if as_tuple:
        return tuple(Tensor._wrap(i.astype(np.int64)) for i in found)
    return Tensor._wrap(xp.stack(found, axis=-1).astype(np.int64).reshape(-1, max(x.ndim, 1)) if found
                        else xp.zeros((0, x.ndim), dtype=np.int64))


def argwhere(x: Tensor) -> Tensor:
    """``nonzero(x)``: the (n, ndim) indices of the nonzero elements."""
    return nonzero(x)


def one_hot(index: Any, num_classes: int = -1) -> Tensor:
    """int64 one-hot vectors along a new last axis (``num_classes`` = max index + 1 by default)."""
    idx = index.data if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"one_hot needs integer class indices, got {idx.dtype}")
    xp = get_array_module(idx)
    if num_classes < 0:
        num_classes = int(idx.max()) + 1 if idx.size else 0
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        raise IndexError(f"one_hot: class values must be in [0, {num_classes}), got {int(idx.min())}..{int(idx.max())}")
    return Tensor._wrap((idx[..., None] == xp.arange(num_classes)).astype(np.int64))
