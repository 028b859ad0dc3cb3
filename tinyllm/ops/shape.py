"""Ops that move or select elements without arithmetic: reshape, permute,
expand, indexing, concat, stack, where. Their backward routes each gradient
element back to where it came from.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..backend import get_array_module, scatter_add
from ..tensor import Function, Tensor
from .axes import ShapeError, broadcast_shape, normalize_axis, pick
from .dtypes import operands, result_type, to_dtype


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
    try:
        return Reshape.apply(x, shape=shape)
    except (ValueError, TypeError):                 # NumPy's message names its internals; name the shapes
        raise ShapeError(f"reshape: cannot view shape {x.shape} ({x.size} elements) as {shape}") from None


def permute(x: Tensor, *dims: Any) -> Tensor:
    """Reorder the axes: ``y.shape[i] == x.shape[dims[i]]``."""
    dims = _shape_arg(dims)
    if len(dims) != x.ndim:
        raise ShapeError(f"permute: {dims} is not an ordering of the {x.ndim} axes of shape {x.shape}")
    axes = tuple(normalize_axis(a, x.ndim, "permute", x.shape) for a in dims)
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"permute: {dims} is not an ordering of the {x.ndim} axes of shape {x.shape}")
    return Permute.apply(x, axes=axes)


def swapaxes(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Exchange two axes."""
    a, b = (normalize_axis(d, x.ndim, "transpose", x.shape) for d in (dim0, dim1))
    if x.ndim < 2 or a == b:
        return x
    order = list(range(x.ndim))
    order[a], order[b] = order[b], order[a]
    return Permute.apply(x, axes=tuple(order))


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """PyTorch's ``transpose``: exchange axes ``dim0`` and ``dim1`` (NumPy's full
    reordering is :func:`permute`; reversing all axes is ``x.T``)."""
    return swapaxes(x, dim0, dim1)


def reverse_axes(x: Tensor) -> Tensor:
    """All axes in reverse order (``x.T``; the matrix transpose of a 2-d tensor)."""
    return x if x.ndim < 2 else Permute.apply(x, axes=tuple(reversed(range(x.ndim))))


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim..end_dim`` (inclusive) into one."""
    if x.ndim == 0:
        for d in (start_dim, end_dim):
            normalize_axis(d, 0, "flatten", x.shape)
        return reshape(x, 1)
    start, end = (normalize_axis(d, x.ndim, "flatten", x.shape) for d in (start_dim, end_dim))
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    return reshape(x, x.shape[:start] + (int(np.prod(x.shape[start:end + 1])),) + x.shape[end + 1:])


def squeeze(x: Tensor, dim: Any = None, *, axis: Any = None) -> Tensor:
    """Drop size-1 axes: all of them, or those named in ``dim`` (named axes of another
    size are kept, as in PyTorch)."""
    dim = pick(dim, axis)
    if dim is None:
        drop = {a for a, n in enumerate(x.shape) if n == 1}
    else:
        named = (dim,) if not isinstance(dim, (tuple, list)) else dim
        drop = {a for a in (normalize_axis(d, x.ndim, "squeeze", x.shape) for d in named)
                if x.ndim and x.shape[a] == 1}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in drop))


def unsqueeze(x: Tensor, dim: Any = None, *, axis: Any = None) -> Tensor:
    """Insert a size-1 axis at ``dim`` (in ``[-ndim-1, ndim]``)."""
    dim = pick(dim, axis)
    if dim is None:
        raise TypeError("unsqueeze needs dim")
    d = normalize_axis(dim, x.ndim, "unsqueeze", x.shape, new=True)
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Broadcast to ``shape`` (NumPy rules); the gradient sums over the copies."""
    shape = tuple(shape)
    if shape == x.shape:
        return x
    try:
        fits = len(shape) >= x.ndim and np.broadcast_shapes(x.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(f"expand: shape {x.shape} cannot be broadcast to {shape}")
    return Expand.apply(x, shape=shape)


def expand(x: Tensor, *shape: Any) -> Tensor:
    """PyTorch's ``expand``: like broadcast_to, and -1 keeps an axis's size."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ShapeError(f"expand: shape {shape} has fewer axes than the tensor's {x.shape}")
    shape = tuple(x.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
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


def raw_index(x: Tensor, index: Any) -> Any:
    """``index`` as an index of ``x.data`` (tensors become arrays of ``x``'s backend)."""
    index = _raw_index(index)
    if isinstance(index, np.ndarray) and get_array_module(x.data) is not np:
        index = get_array_module(x.data).asarray(index)
    return index


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]``: basic slicing, integer arrays and boolean masks, as in NumPy."""
    return GetItem.apply(x, index=raw_index(x, index))


def _joined(tensors: Sequence[Any], op: str) -> list:
    """The tensors to concatenate or stack, promoted to one dtype."""
    if isinstance(tensors, Tensor) or not len(tensors):
        raise ValueError(f"{op} needs a non-empty sequence of tensors")
    ts = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    dt = result_type(*ts)
    return [to_dtype(t, dt) for t in ts]


def concat(tensors: Sequence[Tensor], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """Join tensors along an existing axis (all other sides must agree)."""
    dim = pick(dim, axis)
    ts = _joined(tensors, "concat")
    first = ts[0].shape
    for i, t in enumerate(ts):
        if t.ndim == 0:
            raise IndexError(f"concat: a 0-d tensor (at position {i}) cannot be concatenated; stack them instead")
    d = normalize_axis(0 if dim is None else dim, len(first), "concat", first)
    for i, t in enumerate(ts):
        if t.ndim != len(first) or t.shape[:d] + t.shape[d + 1:] != first[:d] + first[d + 1:]:
            raise ShapeError(f"concat along dim {d}: tensor {i} has shape {t.shape}, tensor 0 has {first}")
    return Concat.apply(*ts, axis=d)


cat = concat


def stack(tensors: Sequence[Tensor], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """Join tensors of one shape along a new axis (in ``[-ndim-1, ndim]``)."""
    dim = pick(dim, axis)
    ts = _joined(tensors, "stack")
    first = ts[0].shape
    for i, t in enumerate(ts):
        if t.shape != first:
            raise ShapeError(f"stack: tensor {i} has shape {t.shape}, tensor 0 has {first}")
    return Stack.apply(*ts, axis=normalize_axis(0 if dim is None else dim, len(first), "stack", first, new=True))


def split(x: Tensor, split_size_or_sections: int | Sequence[int], dim: int | None = None, *,
          axis: int | None = None) -> list:
    """Cut along ``dim`` into pieces of ``split_size_or_sections`` (an int; the last may be
    smaller) or of the listed sizes. Each piece is a slice of ``x``, so each one's gradient
    flows back into ``x``."""
    size = split_size_or_sections
    d = pick(dim, axis)
    d = normalize_axis(0 if d is None else d, x.ndim, "split", x.shape)
    if x.ndim == 0:
        raise ValueError("split: a 0-d tensor has no axis to split")
    n = x.shape[d]
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"split: the size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = list(size)
    if sum(sizes) != n or any(s < 0 for s in sizes):
        raise ShapeError(f"split: sizes {sizes} do not add up to {n} (dim {d} of shape {x.shape})")
    pieces, start = [], 0
    for s in sizes:
        index = (slice(None),) * d + (slice(start, start + s),)
        pieces.append(getitem(x, index))
        start += s
    return pieces


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is true, else ``b`` (broadcasting; either may be a Python scalar)."""
    cond = cond.data if isinstance(cond, Tensor) else cond
    a, b = operands(a, b)
    xp = get_array_module(a.data)
    cond = xp.asarray(cond, dtype=bool)
    broadcast_shape("where", cond.shape, a.shape, b.shape)
    return Where.apply(a, b, cond=cond)


def masked_fill(x: Tensor, mask: Any, value: Any) -> Tensor:
    """``x`` with ``value`` (in x's dtype) wherever ``mask`` is true; no gradient flows there."""
    mask = mask.data if isinstance(mask, Tensor) else mask
    value = value.item() if isinstance(value, Tensor) else value
    out = where(mask, Tensor._wrap(get_array_module(x.data).asarray(value, dtype=x.dtype)), x)
    if out.shape != x.shape:
        raise ShapeError(f"masked_fill: a mask of shape {np.shape(mask)} does not broadcast to {x.shape}")
    return out
