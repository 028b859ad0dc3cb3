"""Type promotion, PyTorch's rules (not NumPy's), in one place.

The result dtype of an op on several operands is decided by category
(bool < integer < floating) and, within the winning category, by how strongly
each operand is typed:

1. tensors with at least one axis,
2. then 0-d tensors,
3. then Python (and NumPy) scalars, which are *weak*: ``int`` means int64,
   ``float`` means the default dtype (float32 unless changed).

The first tier that holds an operand of the highest category decides, as
``numpy.promote_types`` of its members. So float32 + 2.0 is float32,
int64 + 2.5 is float32, float32 + int32 tensor is float32, float32 (n,) +
float64 0-d is float32, and int + int stays int. Ops that only make sense on
floats (``/``, ``exp``, ``sqrt``, ...) turn an integer result into the default
dtype: ``int / int`` is float32, never float64.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..backend import get_array_module, get_default_dtype, xp
from ..tensor import Function, Tensor

_SCALARS = (bool, int, float, np.bool_, np.integer, np.floating)


def _category(dt: np.dtype) -> int:
    return {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}[dt.kind]


def _scalar_dtype(v: Any) -> np.dtype:
    """The dtype a weak scalar stands for."""
    if isinstance(v, (bool, np.bool_)):
        return np.dtype(bool)
    if isinstance(v, (int, np.integer)):
        return np.dtype(np.int64)
    return get_default_dtype()


def result_type(*operands: Any) -> np.dtype:
    """The dtype PyTorch gives an elementwise op on ``operands`` (tensors, arrays or scalars)."""
    tiers: list = [[], [], []]
    for o in operands:
        if isinstance(o, _SCALARS):
            tiers[2].append(_scalar_dtype(o))
        else:
            dt = o.dtype if hasattr(o, "dtype") else Tensor(o).dtype
            tiers[0 if getattr(o, "ndim", 1) else 1].append(np.dtype(dt))
    top = max(_category(dt) for tier in tiers for dt in tier)
    for tier in tiers:
        found = [dt for dt in tier if _category(dt) == top]
        if found:
            return functools.reduce(np.promote_types, found)
    raise TypeError("result_type needs at least one operand")  # pragma: no cover - operands is never empty


def floating(dt: np.dtype) -> np.dtype:
    """``dt`` if it is floating, else the default dtype (for ops whose result is never an integer)."""
    return dt if dt.kind in "fc" else get_default_dtype()


def to_dtype(x: Any, dtype: np.dtype, like: Any = None) -> Tensor:
    """``x`` as a tensor of ``dtype``: differentiable for a float tensor, a constant otherwise."""
    if isinstance(x, Tensor):
        if x.dtype == dtype:
            return x
        return cast(x, dtype)
    mod = get_array_module(like.data) if like is not None else xp()
    if isinstance(x, _SCALARS):
        return Tensor._wrap(mod.asarray(x, dtype=dtype))
    return Tensor._wrap(Tensor(x).data.astype(dtype, copy=False))


def operands(a: Any, b: Any, float_op: bool = False) -> tuple[Tensor, Tensor]:
    """Both operands as tensors of one dtype (PyTorch's promotion, see the module docstring).

    The common cases, two tensors of one dtype or a tensor and a scalar it can
    hold, return at once: this runs on every ``+`` and ``*``.
    """
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.dtype == b.dtype and (not float_op or a.dtype.kind == "f"):
            return a, b
    elif isinstance(a, Tensor) and isinstance(b, (int, float)) and a.dtype.kind == "f":
        return a, Tensor._wrap(get_array_module(a.data).asarray(b, dtype=a.dtype))
    elif isinstance(b, Tensor) and isinstance(a, (int, float)) and b.dtype.kind == "f":
        return Tensor._wrap(get_array_module(b.data).asarray(a, dtype=b.dtype)), b
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    dt = result_type(a, b)
    if float_op:
        dt = floating(dt)
    return to_dtype(a, dt, like), to_dtype(b, dt, like)


def float_input(x: Tensor) -> Tensor:
    """``x`` itself if floating, else ``x`` in the default dtype (``exp`` of an int tensor is float32)."""
    if not isinstance(x, Tensor):
        x = Tensor(x)
    return x if x.dtype.kind in "fc" else to_dtype(x, get_default_dtype())


class Cast(Function):
    """y = x converted to another floating dtype;  dx = g converted back."""

    def forward(self, x, dtype=None):
        self.dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return (g.astype(self.dtype),)


def cast(x: Tensor, dtype: Any) -> Tensor:
    """Convert to ``dtype``: differentiable between floating types; to or from integers it is a constant."""
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    if dtype.kind != "f" or x.dtype.kind != "f":
        return Tensor._wrap(x.data.astype(dtype))
    return Cast.apply(x, dtype=dtype)
