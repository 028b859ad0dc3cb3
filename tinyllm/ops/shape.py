"""Ops that move or select elements without arithmetic: reshape, permute,
expand, indexing, concat, stack, where. Their backward routes each gradient
element back to where it came from.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..backend import get_array_module, scatter_add
from ..tensor import Function, Tensor, as_tensor


def _shape_arg(shape: tuple) -> tuple:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


class Reshape(Function):
    """y = x viewed with another shape;  dx = g viewed with x's shape."""

    def forward(self, x, shape=()):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return (g.reshape(self.in_shape),)


class Permute(Function):
    """y = x with its axes reordered;  dx = g with the inverse order."""

    def forward(self, x, axes=()):
        self.inverse = tuple(np.argsort(axes))
        return x.transpose(axes)

    def backward(self, g):
        return (g.transpose(self.inverse),)


class Expand(Function):
    """y = x broadcast to ``shape`` (a view);  dx = g summed over the copies (by the engine)."""

    def forward(self, x, shape=()):
        return get_array_module(x).broadcast_to(x, shape)

    def backward(self, g):
        return (g,)


def _is_basic(index: Any) -> bool:
    """True for indices made of ints, slices, None and Ellipsis only (no duplicates possible)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items)


class GetItem(Function):
    """y = x[index];  dx = zeros with g added at the selected places.

    Basic slicing selects each element once, so the gradient is assigned.
    Integer-array indexing may select an element several times, so the
    gradient is scatter-added (duplicates summed).
    """

    def forward(self, x, index=None):
        self.shape, self.index = x.shape, index
        return x[index]

    def backward(self, g):
        xp = get_array_module(g)
        index = self.index
        if _is_basic(index):
            dx = xp.zeros(self.shape, dtype=g.dtype)
            dx[index] = g
            return (dx,)
        if not isinstance(index, tuple) and index.dtype != bool:  # x[idx]: rows of axis 0
            return (scatter_add(self.shape, index, g),)
        dx = xp.zeros(self.shape, dtype=g.dtype)
        xp.add.at(dx, index, g)  # general fancy indexing: rare, so the exact slow path is fine
        return (dx,)


class Concat(Function):
    """y = [x_1, x_2, ...] joined along ``axis``;  dx_i = the matching slice of g."""

    def forward(self, *xs, axis=0):
        self.axis = axis
        self.bounds = np.cumsum([x.shape[axis] for x in xs])[:-1].tolist()
        return get_array_module(*xs).concatenate(xs, axis=axis)

    def backward(self, g):
        return tuple(get_array_module(g).split(g, self.bounds, axis=self.axis))


class Stack(Function):
    """y = [x_1, x_2, ...] stacked on a new ``axis``;  dx_i = g taken at i on that axis."""

    def forward(self, *xs, axis=0):
        self.axis = axis
        return get_array_module(*xs).stack(xs, axis=axis)

    def backward(self, g):
        return tuple(g.take(i, axis=self.axis) for i in range(g.shape[self.axis]))


class Where(Function):
    """y = cond ? a : b elementwise;  da = g where cond, db = g elsewhere."""

    def forward(self, a, b, cond=None):
        self.cond = cond
        return get_array_module(a).where(cond, a, b)

    def backward(self, g):
        xp = get_array_module(g)
        ga = xp.where(self.cond, g, 0) if self.needs_grad[0] else None
        gb = xp.where(self.cond, 0, g) if self.needs_grad[1] else None
        return ga, gb


# ----------------------------------------------------------------------------- public functions

def reshape(x: Tensor, *shape: Any) -> Tensor:
    """Same elements, new shape (one entry may be -1)."""
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    return Reshape.apply(x, shape=shape)


def permute(x: Tensor, *axes: Any) -> Tensor:
    """Reorder the axes: ``y.shape[i] == x.shape[axes[i]]``."""
    axes = tuple(a % x.ndim for a in _shape_arg(axes))
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"permute: {axes} is not an ordering of {x.ndim} axes")
    return Permute.apply(x, axes=axes)


def transpose(x: Tensor, *axes: Any) -> Tensor:
    """Reverse the axes, or reorder them as given (NumPy's ``transpose``)."""
    axes = _shape_arg(axes)
    return permute(x, axes or tuple(reversed(range(x.ndim))))


def swapaxes(x: Tensor, a: int, b: int) -> Tensor:
    """Exchange two axes."""
    order = list(range(x.ndim))
    order[a], order[b] = order[b], order[a]
    return permute(x, order)


def flatten(x: Tensor, start: int = 0, end: int = -1) -> Tensor:
    """Merge axes ``start..end`` (inclusive) into one."""
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = start % x.ndim, end % x.ndim
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1:])


def squeeze(x: Tensor, axis: Any = None) -> Tensor:
    """Drop size-1 axes (all of them, or those named)."""
    axes = range(x.ndim) if axis is None else [a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis)]
    for a in axes:
        if axis is not None and x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has size {x.shape[a]}, not 1")
    drop = {a for a in axes if x.shape[a] == 1}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in drop))


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert a size-1 axis at ``axis``."""
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Broadcast to ``shape`` (NumPy rules); the gradient sums over the copies."""
    shape = tuple(shape)
    if shape == x.shape:
        return x
    return Expand.apply(x, shape=shape)


def expand(x: Tensor, *shape: Any) -> Tensor:
    """PyTorch's ``expand``: like broadcast_to, and -1 keeps an axis's size."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    shape = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
    return broadcast_to(x, shape)


def _raw_index(index: Any) -> Any:
    """Tensors inside an index become their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]``: basic slicing, integer arrays and boolean masks, as in NumPy."""
    index = _raw_index(index)
    if isinstance(index, np.ndarray) and get_array_module(x.data) is not np:
        index = get_array_module(x.data).asarray(index)
    return GetItem.apply(x, index=index)


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    if not tensors:
        raise ValueError("concat needs at least one tensor")
    return Concat.apply(*tensors, axis=axis % tensors[0].ndim)


cat = concat


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    return Stack.apply(*tensors, axis=axis % (tensors[0].ndim + 1))


def split(x: Tensor, size: int | Sequence[int], axis: int = 0) -> list:
    """Cut along ``axis`` into pieces of ``size`` (an int) or of the listed sizes.

    Each piece is a slice of ``x``, so each one's gradient flows back into ``x``.
    """
    axis = axis % x.ndim
    n = x.shape[axis]
    sizes = [size] * (n // size) + ([n % size] if n % size else []) if isinstance(size, int) else list(size)
    if sum(sizes) != n:
        raise ValueError(f"split: sizes {sizes} do not add up to {n}")
    pieces, start = [], 0
    for s in sizes:
        index = (slice(None),) * axis + (slice(start, start + s),)
        pieces.append(getitem(x, index))
        start += s
    return pieces


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is true, else ``b`` (broadcasting)."""
    cond = cond.data if isinstance(cond, Tensor) else cond
    if isinstance(a, Tensor):
        b = as_tensor(b, like=a)
    else:
        a = as_tensor(a, like=b)
    return Where.apply(a, b, cond=get_array_module(a.data).asarray(cond, dtype=bool))


def masked_fill(x: Tensor, mask: Any, value: float) -> Tensor:
    """``x`` with ``value`` wherever ``mask`` is true; no gradient flows there."""
    return where(mask, as_tensor(value, like=x), x)
