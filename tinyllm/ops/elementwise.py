"""Elementwise ops and matmul: one Function per op, forward and backward side by side.

Binary ops follow NumPy broadcasting; their backward returns gradients of the
broadcast shape and the engine reduces them to each input's shape
(``tensor.sum_to``). Constants are Python floats, never NumPy float64
scalars, so float32 in gives float32 out.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor, as_tensor


def _pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands as tensors; a Python scalar takes the other operand's dtype."""
    if isinstance(a, Tensor):
        return a, as_tensor(b, like=a)
    return as_tensor(a, like=b), b


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
    """y = a ** b;  da = g * b * a^(b-1), db = g * y * log(a) (needs a > 0)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, g):
        xp = get_array_module(g)
        ga = g * self.b * self.a ** (self.b - 1) if self.needs_grad[0] else None
        gb = g * self.y * xp.log(self.a) if self.needs_grad[1] else None
        return ga, gb


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


class MatMul(Function):
    """Y = A @ B (batched, broadcasting);  dA = G @ B^T,  dB = A^T @ G.

    A stack of matrices times one matrix, (..., n, k) @ (k, m), is run as ONE
    (N, k) @ (k, m) product, forward and backward: one large BLAS call is far
    faster than many small ones.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        if b.ndim == 2 and a.ndim > 2:
            return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if a.ndim == 1 and b.ndim == 1:  # dot product: g is a scalar
            return (g * b if self.needs_grad[0] else None), (g * a if self.needs_grad[1] else None)
        if b.ndim == 2 and a.ndim > 2:
            if self.needs_grad[0]:
                ga = (g.reshape(-1, g.shape[-1]) @ b.T).reshape(a.shape)
            if self.needs_grad[1]:
                gb = a.reshape(-1, a.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            return ga, gb
        a2 = a[None, :] if a.ndim == 1 else a          # (k,) -> (1, k)
        b2 = b[:, None] if b.ndim == 1 else b          # (k,) -> (k, 1)
        if a.ndim == 1:
            g = g[..., None, :]
        if b.ndim == 1:
            g = g[..., None]
        if self.needs_grad[0]:
            ga = g @ b2.swapaxes(-1, -2)
            if a.ndim == 1:
                ga = ga[..., 0, :]
        if self.needs_grad[1]:
            gb = a2.swapaxes(-1, -2) @ g
            if b.ndim == 1:
                gb = gb[..., 0]
        return ga, gb


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
        return get_array_module(x).maximum(x, 0.0)  # not x * mask: -inf * 0 would be nan

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


class Cast(Function):
    """y = x converted to another floating dtype;  dx = g converted back."""

    def forward(self, x, dtype=None):
        self.dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return (g.astype(self.dtype),)


# ----------------------------------------------------------------------------- public functions

def add(a: Any, b: Any) -> Tensor:
    """a + b with broadcasting."""
    return Add.apply(*_pair(a, b))


def sub(a: Any, b: Any) -> Tensor:
    """a - b with broadcasting."""
    return Sub.apply(*_pair(a, b))


def mul(a: Any, b: Any) -> Tensor:
    """a * b with broadcasting."""
    return Mul.apply(*_pair(a, b))


def div(a: Any, b: Any) -> Tensor:
    """a / b with broadcasting."""
    return Div.apply(*_pair(a, b))


def pow(a: Any, b: Any) -> Tensor:  # noqa: A001  (mirrors the operator)
    """a ** b with broadcasting (the gradient in b needs a > 0)."""
    return Pow.apply(*_pair(a, b))


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum."""
    return Maximum.apply(*_pair(a, b))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum."""
    return Minimum.apply(*_pair(a, b))


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy semantics (1-D promotion, batch broadcasting)."""
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: both operands need at least one dimension")
    return MatMul.apply(a, b)


def neg(x: Tensor) -> Tensor:
    return Neg.apply(x)


def exp(x: Tensor) -> Tensor:
    return Exp.apply(x)


def log(x: Tensor) -> Tensor:
    return Log.apply(x)


def sqrt(x: Tensor) -> Tensor:
    return Sqrt.apply(x)


def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid.apply(x)


def relu(x: Tensor) -> Tensor:
    return Relu.apply(x)


def abs(x: Tensor) -> Tensor:  # noqa: A001
    return Abs.apply(x)


def clip(x: Tensor, lo: float | None = None, hi: float | None = None) -> Tensor:
    """Clamp to [lo, hi] (either bound may be None)."""
    if lo is None and hi is None:
        raise ValueError("clip needs lo or hi")
    return Clip.apply(x, lo=lo, hi=hi)


def cast(x: Tensor, dtype: Any) -> Tensor:
    """Convert to ``dtype``: differentiable between floating types; to integers it is a constant."""
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    if dtype.kind != "f" or x.dtype.kind != "f":
        return Tensor._wrap(x.data.astype(dtype))
    return Cast.apply(x, dtype=dtype)

