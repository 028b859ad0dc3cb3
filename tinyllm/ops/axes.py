"""Axis arguments, checked in one place for every op that takes one.

PyTorch's rules, which every op here follows:

- an axis of an n-d tensor lies in ``[-n, n)``; negative axes count from the end;
- where an op makes a new axis (``unsqueeze``, ``stack``) it lies in ``[-n-1, n]``;
- a 0-d tensor accepts ``0`` and ``-1`` as if it had one axis of size 1, so
  ``sum(x, 0)`` or ``softmax(x, -1)`` of a 0-d tensor reduce nothing;
- anything else is an ``IndexError`` that names the axis and the shape
  (NumPy would wrap it, or raise its own ``AxisError``).

``dim``/``keepdim`` (PyTorch's names) and ``axis``/``keepdims`` (NumPy's) are
both accepted by every op; :func:`pick` resolves the two spellings.
"""
from __future__ import annotations

from typing import Any

import numpy as np

class ShapeError(ValueError, RuntimeError):
    """Shapes that do not fit together: a ``ValueError``, and the ``RuntimeError`` PyTorch raises."""


def pick(dim: Any, axis: Any, name: str = "dim") -> Any:
    """The value given as PyTorch's ``dim=`` or NumPy's ``axis=`` (None: not given); both is an error."""
    if axis is None:
        return dim
    if dim is not None and dim != axis:
        raise TypeError(f"got {name}={dim!r} and its NumPy spelling {axis!r}: give one")
    return axis


def normalize_axis(axis: Any, ndim: int, op: str, shape: tuple | None = None, new: bool = False) -> int:
    """``axis`` as a non-negative int, or ``IndexError`` naming it and the shape.

    ``new=True`` for an axis the op inserts (one more position than there are axes).
    A 0-d tensor takes 0 or -1 (and gives 0).
    """
    if isinstance(axis, bool) or not isinstance(axis, int):
        try:
            axis = axis.__index__()
        except (AttributeError, TypeError):
            raise TypeError(f"{op}: an axis must be an int, got {type(axis).__name__}") from None
    n = ndim + 1 if new else max(ndim, 1)
    if not -n <= axis < n:
        where = f"shape {tuple(shape)}" if shape is not None else f"a {ndim}-d tensor"
        raise IndexError(f"{op}: dim {axis} is out of range for {where} (expected {-n}..{n - 1})")
    return axis + n if axis < 0 else axis


def normalize_axes(axis: Any, ndim: int, op: str, shape: tuple | None = None) -> tuple:
    """A reduction's axes as a sorted tuple of distinct non-negative ints (None: all axes).

    On a 0-d tensor, 0 and -1 name no axis at all: ``()``.
    """
    if axis is None:
        return tuple(range(ndim))
    items = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    out = [normalize_axis(a, ndim, op, shape) for a in items]
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {tuple(items)} names an axis twice")
    return tuple(sorted(out)) if ndim else ()


def broadcast_shape(op: str, *shapes: tuple) -> tuple:
    """The shape ``shapes`` broadcast to, or a :class:`ShapeError` that names them all."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        listed = " and ".join(str(tuple(s)) for s in shapes)
        raise ShapeError(f"{op}: shapes {listed} do not broadcast together") from None
