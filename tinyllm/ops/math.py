"""The rest of the elementwise math: trigonometry, logarithms, rounding, special
functions, integer and logical ops, and predicates.

One Function per differentiable op, its derivative in the docstring and in
``backward`` right under ``forward``. Integer inputs to a floating op give the
default dtype (:func:`~tinyllm.ops.dtypes.float_input`). Rounding and sign
functions are piecewise constant: their gradient is 0, as in PyTorch.
Comparisons, predicates, integer division and bitwise/logical ops return
tensors that record no gradient.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .dtypes import float_input, operands
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


# ----------------------------------------------------------------------------- remainders

class Remainder(Function):
    """y = a - b floor(a / b) (the sign of b, Python's %);  da = g, db = -g floor(a / b)."""

    def forward(self, a, b):
        self.q = get_array_module(a).floor_divide(a, b)
        return a - b * self.q if a.dtype.kind == "f" else get_array_module(a).remainder(a, b)

    def backward(self, g):
        return g, -g * self.q


class Fmod(Function):
    """y = a - b trunc(a / b) (the sign of a, C's fmod);  da = g, db = -g trunc(a / b)."""

    def forward(self, a, b):
        xp = get_array_module(a)
        self.q = xp.trunc(a / b) if a.dtype.kind == "f" else None
        return xp.fmod(a, b)

    def backward(self, g):
        return g, -g * self.q


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
        from .axes import broadcast_shape  # noqa: PLC0415
        broadcast_shape(name, a.shape, b.shape)
        raise


def floor_divide(a: Any, b: Any) -> Tensor:
    """a // b: the quotient rounded down (integers stay integers; no gradient, as in PyTorch)."""
    return _constant2("floor_divide", a, b, lambda xp, x, y: xp.floor_divide(x, y))


def trunc_divide(a: Any, b: Any) -> Tensor:
    """a / b rounded toward zero (``div(rounding_mode="trunc")``; no gradient)."""
    def run(xp, x, y):
        if x.dtype.kind in "iu":
            q = xp.floor_divide(x, y)
            return q + ((q < 0) & (q * y != x))     # floor -> toward zero where the quotient is negative
        return xp.trunc(x / y)
    return _constant2("trunc_divide", a, b, run)


def div(a: Any, b: Any, rounding_mode: str | None = None) -> Tensor:
    """``torch.div``: true division (integers give the default float dtype), or with
    ``rounding_mode="trunc"``/``"floor"`` the rounded quotient (no gradient)."""
    if rounding_mode is None:
        from .elementwise import div as true_div  # noqa: PLC0415  (the same name in this module)
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
    a, b = operands(a, b)
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
