"""Activation functions beyond the fused GELU/ReLU of the models, PyTorch's names and defaults,
and ``normalize``.

One Function per activation with an exponential in it (written so that it never
overflows, which a composition of primitives cannot promise: e^x of the branch a
``where`` discards still reaches the gradient as 0 * inf); the clipped ones
(hardtanh, relu6, hardsigmoid, hardswish) and softmin are compositions of
primitive ops. Each docstring gives y(x) and dy/dx.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import kernels, ops
from ..backend import get_array_module
from ..ops.dtypes import float_input
from ..ops.math import erf_array
from ..tensor import Function, Tensor
from .gelu import gelu as _tanh_gelu
from .dropout import dropout
from .softmax import log_softmax, softmax

# ----------------------------------------------------------------------------- GELU


class GeluExactReference:
    """The formula, for NumPy and CuPy alike (NumPy: the C library's erf, element by element)."""

    def forward(self, x: Any) -> Any:
        self.x = x
        self.cdf = 0.5 * (1 + erf_array(x * (1 / math.sqrt(2.0))))
        return x * self.cdf

    def backward(self, g: Any) -> Any:
        xp = get_array_module(g)
        pdf = xp.exp(-0.5 * self.x * self.x) * (1 / math.sqrt(2 * math.pi))
        return g * (self.cdf + self.x * pdf)


class GeluExact(Function):
    """y = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2;  dy/dx = Phi(x) + x phi(x),
    phi(x) = e^(-x^2/2) / sqrt(2 pi): BERT's GELU (Hugging Face ``hidden_act="gelu"``).
    The formula is :class:`GeluExactReference`; ``kernels.select`` may run a kernel
    instead (``kernels/cpu/gelu_exact.py``: float32, erf called from compiled code)."""

    def forward(self, x):
        self.impl = kernels.select("gelu_exact", x, reference=GeluExactReference)
        return self.impl.forward(x)

    def backward(self, g):
        return (self.impl.backward(g),)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU: ``approximate="none"`` (the exact x Phi(x), PyTorch's default) or ``"tanh"``
    (GPT-2's, the fused op of :mod:`tinyllm.functional.gelu`, which this engine's models use)."""
    if approximate == "tanh":
        return _tanh_gelu(float_input(x))
    if approximate == "none":
        return GeluExact.apply(float_input(x))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")



# ----------------------------------------------------------------------------- sigmoid family

def _sigmoid(x: Any) -> Any:
    """sigma(x) = (1 + tanh(x / 2)) / 2: no overflow for any x."""
    return 0.5 * (1 + get_array_module(x).tanh(0.5 * x))


def _softplus(x: Any) -> Any:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for any x."""
    xp = get_array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


class Silu(Function):
    """y = x sigma(x) (swish);  dy/dx = sigma(x) (1 + x (1 - sigma(x)))."""

    def forward(self, x):
        self.x, self.s = x, _sigmoid(x)
        return x * self.s

    def backward(self, g):
        return (g * self.s * (1 + self.x * (1 - self.s)),)


class Softplus(Function):
    """y = log(1 + e^(beta x)) / beta, and y = x where beta x > threshold;  dy/dx = sigma(beta x) (1 there)."""

    def forward(self, x, beta=1.0, threshold=20.0):
        xp = get_array_module(x)
        self.bx, self.linear = beta * x, beta * x > threshold
        return xp.where(self.linear, x, _softplus(self.bx) / beta)

    def backward(self, g):
        return (g * get_array_module(g).where(self.linear, 1, _sigmoid(self.bx)),)


class LogSigmoid(Function):
    """y = log sigma(x) = -softplus(-x);  dy/dx = 1 - sigma(x) = sigma(-x)."""

    def forward(self, x):
        self.x = x
        return -_softplus(-x)

    def backward(self, g):
        return (g * _sigmoid(-self.x),)


class Mish(Function):
    """y = x tanh(softplus(x));  dy/dx = t + x (1 - t^2) sigma(x), t = tanh(softplus(x))."""

    def forward(self, x):
        self.x, self.t = x, get_array_module(x).tanh(_softplus(x))
        return x * self.t

    def backward(self, g):
        return (g * (self.t + self.x * (1 - self.t * self.t) * _sigmoid(self.x)),)


# ----------------------------------------------------------------------------- piecewise

class Elu(Function):
    """y = scale x for x > 0, scale alpha (e^(x / beta) - 1) otherwise;
    dy/dx = scale, or scale (alpha / beta) e^(x / beta).

    ELU is beta = 1, scale = 1; SELU fixes alpha and scale; CELU is beta = alpha.
    """

    def forward(self, x, alpha=1.0, scale=1.0, beta=1.0):
        xp = get_array_module(x)
        self.pos, self.scale, self.k = x > 0, scale, alpha / beta
        self.e = xp.exp(xp.minimum(x, 0) / beta)                     # e^(x/beta), never overflowing
        return xp.where(self.pos, scale * x, (scale * alpha) * (self.e - 1))

    def backward(self, g):
        return (g * get_array_module(g).where(self.pos, self.scale, self.scale * self.k * self.e),)


class LeakyRelu(Function):
    """y = x for x > 0, slope x otherwise;  dy/dx = 1 or slope."""

    def forward(self, x, slope=0.01):
        self.pos, self.slope = x > 0, slope
        return get_array_module(x).where(self.pos, x, slope * x)

    def backward(self, g):
        return (g * get_array_module(g).where(self.pos, 1, self.slope),)


class Softsign(Function):
    """y = x / (1 + |x|);  dy/dx = 1 / (1 + |x|)^2."""

    def forward(self, x):
        self.d = 1 + get_array_module(x).abs(x)
        return x / self.d

    def backward(self, g):
        return (g / (self.d * self.d),)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def silu(x: Tensor) -> Tensor:
    """x sigma(x)."""
    return Silu.apply(float_input(x))


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(beta x)) / beta (linear above ``threshold``)."""
    return Softplus.apply(float_input(x), beta=beta, threshold=threshold)


def logsigmoid(x: Tensor) -> Tensor:
    """log sigma(x), stable for any x."""
    return LogSigmoid.apply(float_input(x))


def mish(x: Tensor) -> Tensor:
    """x tanh(softplus(x))."""
    return Mish.apply(float_input(x))


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha (e^x - 1) otherwise."""
    return Elu.apply(float_input(x), alpha=alpha)


def selu(x: Tensor) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al. (2017)."""
    return Elu.apply(float_input(x), alpha=SELU_ALPHA, scale=SELU_SCALE)


def celu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha (e^(x / alpha) - 1) otherwise."""
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    return Elu.apply(float_input(x), alpha=alpha, beta=alpha)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope x otherwise."""
    return LeakyRelu.apply(float_input(x), slope=negative_slope)


def softsign(x: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    return Softsign.apply(float_input(x))


def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """x clipped to [min_val, max_val]."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} is above max_val {max_val}")
    return ops.clip(float_input(x), float(min_val), float(max_val))


def relu6(x: Tensor) -> Tensor:
    """min(max(x, 0), 6)."""
    return hardtanh(x, 0.0, 6.0)


def hardsigmoid(x: Tensor) -> Tensor:
    """clip(x / 6 + 1/2, 0, 1): 0 below -3, 1 above 3, linear between."""
    return ops.clip(float_input(x) / 6 + 0.5, 0.0, 1.0)


def hardswish(x: Tensor) -> Tensor:
    """x hardsigmoid(x) = x relu6(x + 3) / 6."""
    x = float_input(x)
    return x * hardsigmoid(x)


def softmin(x: Tensor, dim: int | None = None) -> Tensor:
    """softmax(-x) along ``dim`` (-1 by default)."""
    return softmax(-float_input(x), dim=dim)


def normalize(x: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p, eps) along ``dim`` (PyTorch's ``F.normalize``; its default ``dim`` is 1).

    A zero row stays zero with a zero gradient: the norm is clipped before dividing,
    and ``Norm``'s gradient at 0 is 0.
    """
    n = ops.norm(float_input(x), p, dim, keepdim=True)
    return x / ops.clip(n, float(eps))


def attention_with_bias(q: Tensor, k: Tensor, v: Tensor, bias: Any, causal: bool = False, dropout_p: float = 0.0,
                        scale: float | None = None, weights_out: list | None = None) -> Tensor:
    """softmax(Q K^T scale + bias) V with an additive float ``bias`` (PyTorch's float ``attn_mask``),
    written with primitive ops (the fused op takes boolean masks; a bias of 0 and -inf is one)."""
    xp = get_array_module(q.data)
    bias = bias.data if isinstance(bias, Tensor) else bias
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ ops.transpose(k, -2, -1) * scale + Tensor._wrap(xp.asarray(bias, dtype=q.dtype))  # (..., Tq, Tk)
    if causal:
        tq, tk = q.shape[-2], k.shape[-2]
        s = ops.masked_fill(s, ~xp.tri(tq, tk, tk - tq, dtype=bool), -np.inf)
    p = softmax(s, dim=-1)
    if weights_out is not None:
        weights_out.append(p)
    return dropout(p, dropout_p) @ v if dropout_p else p @ v


__all__ = ["Elu", "GeluExact", "LeakyRelu", "LogSigmoid", "Mish", "SELU_ALPHA", "SELU_SCALE", "Silu", "Softplus",
           "Softsign", "attention_with_bias", "celu", "elu", "gelu", "hardsigmoid", "hardswish", "hardtanh",
           "leaky_relu", "log_softmax", "logsigmoid", "mish", "normalize", "relu6", "selu", "silu", "softmax",
           "softmin", "softplus", "softsign"]
