"""Remainders, integer division, bitwise and logical ops, and predicates.

``%`` and ``fmod`` are differentiable on floats (the quotient is piecewise
constant, so da = g and db = -g times it); everything else here returns
integers or booleans and records no gradient, as in PyTorch.
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .axes import broadcast_shape
from .dtypes import operands
from .elementwise import binary, div as true_div


# ----------------------------------------------------------------------------- remainders

def _nonzero_divisor(x: Any, y: Any) -> None:
    """Integer division by zero has no answer (NumPy would give 0): PyTorch's RuntimeError."""
    if x.dtype.kind in "iub" and not get_array_module(y).all(y):
        raise RuntimeError("ZeroDivisionError: integer division or remainder by zero")


class Remainder(Function):
    """y = a - b floor(a / b) (the sign of b, Python's %);  da = g, db = -g floor(a / b)."""

    def forward(self, a, b):
        _nonzero_divisor(a, b)
        self.q = get_array_module(a).floor_divide(a, b)
        return a - b * self.q if a.dtype.kind == "f" else get_array_module(a).remainder(a, b)

    def backward(self, g):
        return g, -g * self.q


class Fmod(Function):
    """y = a - b trunc(a / b) (the sign of a, C's fmod);  da = g, db = -g trunc(a / b)."""

    def forward(self, a, b):
        xp = get_array_module(a)
        _nonzero_divisor(a, b)
        self.q = xp.trunc(a / b) if a.dtype.kind == "f" else None
        return xp.fmod(a, b)

    def backward(self, g):
        return g, -g * self.q


# ----------------------------------------------------------------------------- public: integer division

def remainder(a: Any, b: Any) -> Tensor:
    """a % b with the sign of b (Python's and PyTorch's ``%``)."""
    return binary(Remainder, a, b, "remainder")


def fmod(a: Any, b: Any) -> Tensor:
    """The remainder of a / b with the sign of a (C's ``fmod``)."""
    return binary(Fmod, a, b, "fmod")


def _constant2(name: str, a: Any, b: Any, fn: Any) -> Tensor:
    a, b = operands(a, b)
    try:
        return Tensor._wrap(fn(get_array_module(a.data, b.data), a.data, b.data))
    except ValueError:
        broadcast_shape(name, a.shape, b.shape)
        raise


def floor_divide(a: Any, b: Any) -> Tensor:
    """a // b: the quotient rounded down (integers stay integers; no gradient, as in PyTorch)."""
    def run(xp, x, y):
        _nonzero_divisor(x, y)
        return xp.floor_divide(x, y)
    return _constant2("floor_divide", a, b, run)


def trunc_divide(a: Any, b: Any) -> Tensor:
    """a / b rounded toward zero (``div(rounding_mode="trunc")``; no gradient)."""
    def run(xp, x, y):
        if x.dtype.kind in "iu":
            _nonzero_divisor(x, y)
            q = xp.floor_divide(x, y)
            return q + ((q < 0) & (q * y != x))     # floor -> toward zero where the quotient is negative
        return xp.trunc(x / y)
    return _constant2("trunc_divide", a, b, run)


def div(a: Any, b: Any, rounding_mode: str | None = None) -> Tensor:
    """``torch.div``: true division (integers give the default float dtype), or with
    ``rounding_mode="trunc"``/``"floor"`` the rounded quotient (no gradient)."""
    if rounding_mode is None:
        return true_div(a, b)
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode == "trunc":
        return trunc_divide(a, b)
    raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")


true_divide = divide = div


# ----------------------------------------------------------------------------- public: bitwise and logical

def _bitwise(name: str, a: Any, b: Any) -> Tensor:
    a, b = operands(a, b)
    if a.dtype.kind not in "iub":
        raise TypeError(f"{name} needs integer or boolean tensors, got {a.dtype}")
    return _constant2(name, a, b, lambda xp, x, y: getattr(xp, name)(x, y))


def bitwise_and(a: Any, b: Any) -> Tensor:
    """a & b: bitwise on integers, logical on booleans."""
    return _bitwise("bitwise_and", a, b)


def bitwise_or(a: Any, b: Any) -> Tensor:
    """a | b."""
    return _bitwise("bitwise_or", a, b)


def bitwise_xor(a: Any, b: Any) -> Tensor:
    """a ^ b."""
    return _bitwise("bitwise_xor", a, b)


def bitwise_not(x: Tensor) -> Tensor:
    """~x: bitwise not of integers, logical not of booleans."""
    if x.dtype.kind not in "iub":
        raise TypeError(f"bitwise_not (~) needs an integer or boolean tensor, got {x.dtype}")
    return Tensor._wrap(get_array_module(x.data).invert(x.data))


def _logical(name: str, a: Any, b: Any) -> Tensor:
    return _constant2(name, a, b, lambda xp, x, y: getattr(xp, name)(x, y))


def logical_and(a: Any, b: Any) -> Tensor:
    """Elementwise ``a and b`` of truth values (nonzero is true); boolean result."""
    return _logical("logical_and", a, b)


def logical_or(a: Any, b: Any) -> Tensor:
    """Elementwise ``a or b``; boolean result."""
    return _logical("logical_or", a, b)


def logical_xor(a: Any, b: Any) -> Tensor:
    """Elementwise ``a != b`` of truth values; boolean result."""
    return _logical("logical_xor", a, b)


def logical_not(x: Tensor) -> Tensor:
    """Elementwise ``not x``; boolean result."""
    return Tensor._wrap(get_array_module(x.data).logical_not(x.data))


# ----------------------------------------------------------------------------- public: comparisons

def _compare(name: str, a: Any, b: Any) -> Tensor:
    return _constant2(name, a, b, lambda xp, x, y: getattr(xp, name)(x, y))


def lt(a: Any, b: Any) -> Tensor:
    """a < b elementwise, as a boolean tensor (no gradient)."""
    return _compare("less", a, b)


def le(a: Any, b: Any) -> Tensor:
    """a <= b elementwise (no gradient)."""
    return _compare("less_equal", a, b)


def gt(a: Any, b: Any) -> Tensor:
    """a > b elementwise (no gradient)."""
    return _compare("greater", a, b)


def ge(a: Any, b: Any) -> Tensor:
    """a >= b elementwise (no gradient)."""
    return _compare("greater_equal", a, b)


def eq(a: Any, b: Any) -> Tensor:
    """a == b elementwise (no gradient); :func:`equal` is PyTorch's whole-tensor test."""
    return _compare("equal", a, b)


def ne(a: Any, b: Any) -> Tensor:
    """a != b elementwise (no gradient)."""
    return _compare("not_equal", a, b)


less, less_equal, greater, greater_equal, not_equal = lt, le, gt, ge, ne


# ----------------------------------------------------------------------------- public: predicates

def isnan(x: Tensor) -> Tensor:
    """Where x is nan (boolean)."""
    return Tensor._wrap(get_array_module(x.data).isnan(x.data))


def isinf(x: Tensor) -> Tensor:
    """Where x is +inf or -inf (boolean)."""
    return Tensor._wrap(get_array_module(x.data).isinf(x.data))


def isfinite(x: Tensor) -> Tensor:
    """Where x is neither nan nor infinite (boolean)."""
    return Tensor._wrap(get_array_module(x.data).isfinite(x.data))


def isclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> Tensor:
    """|a - b| <= atol + rtol |b| elementwise (boolean), PyTorch's defaults."""
    a, b = operands(a, b)
    return _constant2("isclose", a, b, lambda xp, x, y: xp.isclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
    """Whether :func:`isclose` holds everywhere (a Python bool)."""
    return bool(isclose(a, b, rtol, atol, equal_nan).data.all())


def equal(a: Any, b: Any) -> bool:
    """``torch.equal``: the same shape and the same values (a Python bool)."""
    a, b = operands(a, b)
    return a.shape == b.shape and bool((a.data == b.data).all())
