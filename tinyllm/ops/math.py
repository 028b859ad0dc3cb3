"""The rest of the elementwise math: trigonometry, logarithms, rounding, special
functions (remainders, integer, bitwise and logical ops and predicates are in
:mod:`tinyllm.ops.logic`).

One Function per differentiable op, its derivative in the docstring and in
``backward`` right under ``forward``. Integer inputs to a floating op give the
default dtype (:func:`~tinyllm.ops.dtypes.float_input`). Rounding and sign
functions are piecewise constant: their gradient is 0, as in PyTorch.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .dtypes import float_input
from .elementwise import add, binary, mul, sub

# ----------------------------------------------------------------------------- trigonometric, hyperbolic


class Sin(Function):
    """y = sin x;  dx = g cos x."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).sin(x)

    def backward(self, g):
        return (g * get_array_module(g).cos(self.x),)


class Cos(Function):
    """y = cos x;  dx = -g sin x."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).cos(x)

    def backward(self, g):
        return (-g * get_array_module(g).sin(self.x),)


class Tan(Function):
    """y = tan x;  dx = g (1 + y^2)."""

    def forward(self, x):
        self.y = get_array_module(x).tan(x)
        return self.y

    def backward(self, g):
        return (g * (1 + self.y * self.y),)


class Asin(Function):
    """y = arcsin x;  dx = g / sqrt(1 - x^2)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).arcsin(x)

    def backward(self, g):
        return (g / get_array_module(g).sqrt(1 - self.x * self.x),)


class Acos(Function):
    """y = arccos x;  dx = -g / sqrt(1 - x^2)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).arccos(x)

    def backward(self, g):
        return (-g / get_array_module(g).sqrt(1 - self.x * self.x),)


class Atan(Function):
    """y = arctan x;  dx = g / (1 + x^2)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).arctan(x)

    def backward(self, g):
        return (g / (1 + self.x * self.x),)


class Sinh(Function):
    """y = sinh x;  dx = g cosh x."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).sinh(x)

    def backward(self, g):
        return (g * get_array_module(g).cosh(self.x),)


class Cosh(Function):
    """y = cosh x;  dx = g sinh x."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).cosh(x)

    def backward(self, g):
        return (g * get_array_module(g).sinh(self.x),)


class Atan2(Function):
    """y = atan2(a, b), the angle of the point (b, a);  da = g b / (a^2 + b^2), db = -g a / (a^2 + b^2)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return get_array_module(a).arctan2(a, b)

    def backward(self, g):
        r2 = self.a * self.a + self.b * self.b
        return g * self.b / r2, -g * self.a / r2


# ----------------------------------------------------------------------------- exponentials, logarithms

class Log2(Function):
    """y = log2 x;  dx = g / (x ln 2)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log2(x)

    def backward(self, g):
        return (g / (self.x * math.log(2.0)),)


class Log10(Function):
    """y = log10 x;  dx = g / (x ln 10)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log10(x)

    def backward(self, g):
        return (g / (self.x * math.log(10.0)),)


class Log1p(Function):
    """y = ln(1 + x), accurate for small x;  dx = g / (1 + x)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log1p(x)

    def backward(self, g):
        return (g / (1 + self.x),)


class Expm1(Function):
    """y = e^x - 1, accurate for small x;  dx = g (y + 1)."""

    def forward(self, x):
        self.y = get_array_module(x).expm1(x)
        return self.y

    def backward(self, g):
        return (g * (self.y + 1),)


class Exp2(Function):
    """y = 2^x;  dx = g y ln 2."""

    def forward(self, x):
        self.y = get_array_module(x).exp2(x)
        return self.y

    def backward(self, g):
        return (g * self.y * math.log(2.0),)


class Rsqrt(Function):
    """y = 1 / sqrt(x);  dx = -g y^3 / 2."""

    def forward(self, x):
        self.y = 1 / get_array_module(x).sqrt(x)
        return self.y

    def backward(self, g):
        return (-0.5 * g * self.y * self.y * self.y,)


class LogAddExp(Function):
    """y = ln(e^a + e^b), stable;  da = g e^(a - y), db = g e^(b - y)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = get_array_module(a).logaddexp(a, b)
        return self.y

    def backward(self, g):
        xp = get_array_module(g)
        return g * xp.exp(self.a - self.y), g * xp.exp(self.b - self.y)


class Erf(Function):
    """y = erf x = (2 / sqrt(pi)) int_0^x e^(-t^2) dt;  dx = g (2 / sqrt(pi)) e^(-x^2)."""

    def forward(self, x):
        self.x = x
        return erf_array(x)

    def backward(self, g):
        return (g * (2.0 / math.sqrt(math.pi)) * get_array_module(g).exp(-self.x * self.x),)


def erf_array(x: Any) -> Any:
    """erf of an array, to float64 rounding (CuPy: its own ``erf``; NumPy has none, so
    the C library's, one element at a time: exact, but about 0.1 us per element)."""
    xp = get_array_module(x)
    if xp is not np:
        import cupyx.scipy.special as special  # noqa: PLC0415  (only with CuPy, which brings it)
        return special.erf(x)
    return np.asarray(_ERF(x), dtype=x.dtype) if x.size else x.copy()


_ERF = np.frompyfunc(math.erf, 1, 1)   # the C library's erf, element by element


# ----------------------------------------------------------------------------- piecewise constant

class PiecewiseConstant(Function):
    """y = f(x) for a step function f (sign, floor, ceil, round, trunc);  dx = 0.

    The derivative is 0 wherever it exists; at the jumps PyTorch also takes 0.
    """

    def forward(self, x, fn="sign", decimals=0):
        self.shape = x.shape
        xp = get_array_module(x)
        return xp.round(x, decimals) if fn == "round" else getattr(xp, fn)(x)

    def backward(self, g):
        return (get_array_module(g).zeros(self.shape, dtype=g.dtype),)


class NanToNum(Function):
    """y = x with nan, +inf, -inf replaced by given numbers;  dx = g where x was finite, else 0."""

    def forward(self, x, nan=0.0, posinf=None, neginf=None):
        xp = get_array_module(x)
        self.finite = xp.isfinite(x)
        return xp.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    def backward(self, g):
        return (g * self.finite,)


# ----------------------------------------------------------------------------- public: float functions

def _unary(cls: type, x: Any) -> Tensor:
    return cls.apply(float_input(x))


def sin(x: Tensor) -> Tensor: return _unary(Sin, x)
def cos(x: Tensor) -> Tensor: return _unary(Cos, x)
def tan(x: Tensor) -> Tensor: return _unary(Tan, x)
def asin(x: Tensor) -> Tensor: return _unary(Asin, x)
def acos(x: Tensor) -> Tensor: return _unary(Acos, x)
def atan(x: Tensor) -> Tensor: return _unary(Atan, x)
def sinh(x: Tensor) -> Tensor: return _unary(Sinh, x)
def cosh(x: Tensor) -> Tensor: return _unary(Cosh, x)
def log2(x: Tensor) -> Tensor: return _unary(Log2, x)
def log10(x: Tensor) -> Tensor: return _unary(Log10, x)
def log1p(x: Tensor) -> Tensor: return _unary(Log1p, x)
def expm1(x: Tensor) -> Tensor: return _unary(Expm1, x)
def exp2(x: Tensor) -> Tensor: return _unary(Exp2, x)
def rsqrt(x: Tensor) -> Tensor: return _unary(Rsqrt, x)
def erf(x: Tensor) -> Tensor: return _unary(Erf, x)


arcsin, arccos, arctan = asin, acos, atan


def atan2(a: Any, b: Any) -> Tensor:
    """The angle of the point (b, a), elementwise, in (-pi, pi]."""
    return binary(Atan2, a, b, "atan2", float_op=True)


arctan2 = atan2


def logaddexp(a: Any, b: Any) -> Tensor:
    """ln(e^a + e^b) without overflow."""
    return binary(LogAddExp, a, b, "logaddexp", float_op=True)


def lerp(start: Any, end: Any, weight: Any) -> Tensor:
    """start + weight (end - start): differentiable in all three."""
    return add(start, mul(weight, sub(end, start)))


def _step(x: Tensor, fn: str, decimals: int = 0) -> Tensor:
    if x.dtype.kind in "iub" and fn != "sign":
        return x                                    # an integer is already whole
    return PiecewiseConstant.apply(x, fn=fn, decimals=decimals)


def sign(x: Tensor) -> Tensor:
    """-1, 0 or 1 by the sign of x (gradient 0)."""
    return _step(x, "sign")


def floor(x: Tensor) -> Tensor:
    """The largest integer <= x (gradient 0)."""
    return _step(x, "floor")


def ceil(x: Tensor) -> Tensor:
    """The smallest integer >= x (gradient 0)."""
    return _step(x, "ceil")


def trunc(x: Tensor) -> Tensor:
    """x rounded toward zero (gradient 0)."""
    return _step(x, "trunc")


def round(x: Tensor, decimals: int = 0) -> Tensor:  # noqa: A001
    """x rounded to ``decimals`` places, halves to even as in PyTorch (gradient 0)."""
    return _step(x, "round", decimals)


fix = trunc


def nan_to_num(x: Tensor, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Tensor:
    """nan -> ``nan``, +inf -> ``posinf``, -inf -> ``neginf`` (the dtype's largest and smallest
    finite values by default); the gradient passes where x was finite."""
    if x.dtype.kind != "f":
        return x
    return NanToNum.apply(x, nan=nan, posinf=posinf, neginf=neginf)
