"""Arithmetic and the basic unary ops: one Function per op, forward and backward side by side.

Binary ops follow NumPy broadcasting and PyTorch's type promotion
(:mod:`tinyllm.ops.dtypes`); their backward returns gradients of the
broadcast shape and the engine reduces them to each input's shape
(``tensor.sum_to``). Constants are Python floats, never NumPy float64
scalars, so float32 in gives float32 out. Matrix products are in
:mod:`tinyllm.ops.linalg`, the rest of the math in :mod:`tinyllm.ops.math`.
"""
from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .axes import broadcast_shape, pick
from .dtypes import float_input, operands
from .shape import where


def binary(cls: type, a: Any, b: Any, op: str, float_op: bool = False) -> Tensor:
    """``cls`` applied to both operands after promotion; shapes that do not broadcast are named."""
    a, b = operands(a, b, float_op)
    try:
        return cls.apply(a, b)
    except ValueError:
        broadcast_shape(op, a.shape, b.shape)   # raises the clear error if that was the cause
        raise


# ----------------------------------------------------------------------------- arithmetic

class Add(Function):
    """y = a + b;  da = g, db = g."""

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    """y = a - b;  da = g, db = -g."""

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, (-g if self.needs_grad[1] else None)


class Mul(Function):
    """y = a * b;  da = g * b, db = g * a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return (g * self.b if self.needs_grad[0] else None,
                g * self.a if self.needs_grad[1] else None)


class Div(Function):
    """y = a / b;  da = g / b, db = -g * a / b^2 = -g * y / b."""

    def forward(self, a, b):
        self.b = b
        self.y = a / b
        return self.y

    def backward(self, g):
        ga = g / self.b
        return ga, (-ga * self.y if self.needs_grad[1] else None)


class Pow(Function):
    """y = a ** b;  da = g * b * a^(b-1), db = g * y * log(a).

    As PyTorch: da = 0 where b = 0 (even at a = 0, where a^(b-1) is infinite),
    and db = 0 where a = 0 and b >= 0 (the limit of y log a there).
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, g):
        xp = get_array_module(g)
        a, b = self.a, self.b
        ga = gb = None
        with _quiet(xp):
            if self.needs_grad[0]:
                ga = g * xp.where(b == 0, 0, b * a ** (b - 1))
            if self.needs_grad[1]:
                gb = g * xp.where((a == 0) & (b >= 0), 0, self.y * xp.log(a))
        return ga, gb


def _quiet(xp: Any) -> Any:
    """Silence NumPy's divide/invalid warnings for values a ``where`` then discards."""
    return np.errstate(divide="ignore", invalid="ignore") if xp is np else contextlib.nullcontext()


class Maximum(Function):
    """y = max(a, b) elementwise; the gradient goes to the larger (split evenly on ties)."""

    def forward(self, a, b):
        xp = get_array_module(a)
        self.a, self.b = a, b
        return xp.maximum(a, b)

    def backward(self, g):
        pick_a = (self.a > self.b) + 0.5 * (self.a == self.b)
        pick_a = pick_a.astype(g.dtype, copy=False)
        return g * pick_a, g * (1 - pick_a)


class Minimum(Function):
    """y = min(a, b) elementwise; the gradient goes to the smaller (split evenly on ties)."""

    def forward(self, a, b):
        xp = get_array_module(a)
        self.a, self.b = a, b
        return xp.minimum(a, b)

    def backward(self, g):
        pick_a = (self.a < self.b) + 0.5 * (self.a == self.b)
        pick_a = pick_a.astype(g.dtype, copy=False)
        return g * pick_a, g * (1 - pick_a)


# ----------------------------------------------------------------------------- unary

class Neg(Function):
    """y = -x;  dx = -g."""

    def forward(self, x):
        return -x

    def backward(self, g):
        return (-g,)


class Exp(Function):
    """y = e^x;  dx = g * y."""

    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, g):
        return (g * self.y,)


class Log(Function):
    """y = ln x;  dx = g / x."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, g):
        return (g / self.x,)


class Sqrt(Function):
    """y = sqrt(x);  dx = g / (2 y)."""

    def forward(self, x):
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, g):
        return (g * 0.5 / self.y,)


class Tanh(Function):
    """y = tanh x;  dx = g * (1 - y^2)."""

    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, g):
        return (g * (1 - self.y * self.y),)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x) = (1 + tanh(x/2)) / 2 (stable for any x);  dx = g * y * (1 - y)."""

    def forward(self, x):
        self.y = 0.5 * (1 + get_array_module(x).tanh(0.5 * x))
        return self.y

    def backward(self, g):
        return (g * self.y * (1 - self.y),)


class Relu(Function):
    """y = max(x, 0);  dx = g * [x > 0]."""

    def forward(self, x):
        self.mask = x > 0
        return get_array_module(x).maximum(x, x.dtype.type(0))  # not x * mask: -inf * 0 would be nan

    def backward(self, g):
        return (g * self.mask,)


class Abs(Function):
    """y = |x|;  dx = g * sign(x)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).abs(x)

    def backward(self, g):
        return (g * get_array_module(g).sign(self.x),)


class Clip(Function):
    """y = min(max(x, lo), hi);  dx = g where lo <= x <= hi, else 0."""

    def forward(self, x, lo=None, hi=None):
        xp = get_array_module(x)
        self.mask = xp.ones(x.shape, dtype=bool)
        if lo is not None:
            self.mask &= x >= lo
        if hi is not None:
            self.mask &= x <= hi
        return xp.clip(x, lo, hi)

    def backward(self, g):
        return (g * self.mask,)


class Clone(Function):
    """y = a copy of x (its own memory, C-contiguous);  dx = g."""

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return (g,)


# ----------------------------------------------------------------------------- public functions

def add(a: Any, b: Any, alpha: float | None = None) -> Tensor:
    """a + b with broadcasting (``alpha``: a + alpha * b, as ``torch.add``)."""
    return binary(Add, a, b if alpha is None else mul(b, alpha), "add")


def sub(a: Any, b: Any, alpha: float | None = None) -> Tensor:
    """a - b with broadcasting (``alpha``: a - alpha * b)."""
    return binary(Sub, a, b if alpha is None else mul(b, alpha), "sub")


def mul(a: Any, b: Any) -> Tensor:
    """a * b with broadcasting."""
    return binary(Mul, a, b, "mul")


def div(a: Any, b: Any) -> Tensor:
    """True division a / b with broadcasting; integers give the default float dtype.

    (``tinyllm.div`` adds PyTorch's ``rounding_mode``: see :mod:`tinyllm.ops.math`.)
    """
    return binary(Div, a, b, "div", float_op=True)


def pow(a: Any, b: Any) -> Tensor:  # noqa: A001  (mirrors the operator)
    """a ** b with broadcasting (the gradient in b needs a > 0, or a = 0 with b >= 0)."""
    return binary(Pow, a, b, "pow")


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum."""
    return binary(Maximum, a, b, "maximum")


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum."""
    return binary(Minimum, a, b, "minimum")


def neg(x: Tensor) -> Tensor:
    return Neg.apply(x)


def exp(x: Tensor) -> Tensor:
    return Exp.apply(float_input(x))


def log(x: Tensor) -> Tensor:
    return Log.apply(float_input(x))


def sqrt(x: Tensor) -> Tensor:
    return Sqrt.apply(float_input(x))


def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(float_input(x))


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid.apply(float_input(x))


def relu(x: Tensor) -> Tensor:
    return Relu.apply(x)


def abs(x: Tensor) -> Tensor:  # noqa: A001
    return Abs.apply(x)


def clip(x: Tensor, min: Any = None, max: Any = None, *, lo: Any = None, hi: Any = None) -> Tensor:  # noqa: A002
    """Clamp to [min, max] (either bound may be None; ``lo=``/``hi=`` are the older names)."""
    lo, hi = pick(min, lo, "min"), pick(max, hi, "max")
    if lo is None and hi is None:
        raise ValueError("clip needs lo or hi")
    if isinstance(lo, Tensor) or isinstance(hi, Tensor):  # tensor bounds: promoted, broadcast, and differentiable
        xp = get_array_module(x.data)
        for bound, beyond in ((lo, xp.less), (hi, xp.greater)):
            if bound is not None:
                x = where(beyond(x.data, bound.data if isinstance(bound, Tensor) else bound), bound, x)
        return x
    if x.dtype.kind != "f" and any(isinstance(v, float) for v in (lo, hi)):
        x = float_input(x)                       # an int tensor clamped to 0.5 is a float tensor
    return Clip.apply(x, lo=lo, hi=hi)


clamp = clip


def clone(x: Tensor) -> Tensor:
    """A copy of ``x`` that stays in the graph."""
    return Clone.apply(x)
