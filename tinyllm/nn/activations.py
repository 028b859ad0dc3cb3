"""Activation modules, PyTorch's names and arguments: each calls its function in
:mod:`tinyllm.functional.activations` (or the primitive op) and holds no parameters."""
from __future__ import annotations

from typing import Any

from .. import ops
from ..functional import activations as A
from ..tensor import Tensor
from .layers import GELU as _TanhGELU
from .module import Module


class _Activation(Module):
    """A parameter-free module around ``fn(x, **self.kwargs)``."""

    fn: Any = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x: Tensor) -> Tensor:
        return type(self).fn(x, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.kwargs.items())


class SiLU(_Activation):
    """x sigma(x)."""
    fn = staticmethod(A.silu)


class Mish(_Activation):
    """x tanh(softplus(x))."""
    fn = staticmethod(A.mish)


class Softplus(_Activation):
    """log(1 + e^(beta x)) / beta."""
    fn = staticmethod(A.softplus)

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__(beta=beta, threshold=threshold)


class ELU(_Activation):
    """x, or alpha (e^x - 1) for x <= 0."""
    fn = staticmethod(A.elu)

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(alpha=alpha)


class CELU(_Activation):
    """x, or alpha (e^(x / alpha) - 1) for x <= 0."""
    fn = staticmethod(A.celu)

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(alpha=alpha)


class SELU(_Activation):
    """The self-normalising ELU."""
    fn = staticmethod(A.selu)


class LeakyReLU(_Activation):
    """x, or negative_slope x for x <= 0."""
    fn = staticmethod(A.leaky_relu)

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__(negative_slope=negative_slope)


class ReLU6(_Activation):
    """min(max(x, 0), 6)."""
    fn = staticmethod(A.relu6)


class Hardtanh(_Activation):
    """x clipped to [min_val, max_val]."""
    fn = staticmethod(A.hardtanh)

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        super().__init__(min_val=min_val, max_val=max_val)


class Hardsigmoid(_Activation):
    """clip(x / 6 + 1/2, 0, 1)."""
    fn = staticmethod(A.hardsigmoid)


class Hardswish(_Activation):
    """x hardsigmoid(x)."""
    fn = staticmethod(A.hardswish)


class LogSigmoid(_Activation):
    """log sigma(x)."""
    fn = staticmethod(A.logsigmoid)


class Softsign(_Activation):
    """x / (1 + |x|)."""
    fn = staticmethod(A.softsign)


class Sigmoid(_Activation):
    """1 / (1 + e^-x)."""
    fn = staticmethod(ops.sigmoid)


class Tanh(_Activation):
    """tanh x."""
    fn = staticmethod(ops.tanh)


class Softmax(_Activation):
    """softmax along ``dim``."""
    fn = staticmethod(A.softmax)

    def __init__(self, dim: int | None = None) -> None:
        super().__init__(dim=dim)


class LogSoftmax(_Activation):
    """log-softmax along ``dim``."""
    fn = staticmethod(A.log_softmax)

    def __init__(self, dim: int | None = None) -> None:
        super().__init__(dim=dim)


class Softmin(_Activation):
    """softmax(-x) along ``dim``."""
    fn = staticmethod(A.softmin)

    def __init__(self, dim: int | None = None) -> None:
        super().__init__(dim=dim)


class GELU(_TanhGELU):
    """GELU with PyTorch's ``approximate`` argument and default: "none" (the exact x Phi(x))
    or "tanh" (GPT-2's; the engine's own MLP, :class:`tinyllm.nn.layers.GELU`, is this one)."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("tanh", "none"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return A.gelu(x, self.approximate)


__all__ = ["CELU", "ELU", "GELU", "Hardsigmoid", "Hardswish", "Hardtanh", "LeakyReLU", "LogSigmoid", "LogSoftmax",
           "Mish", "ReLU6", "SELU", "SiLU", "Sigmoid", "Softmax", "Softmin", "Softplus", "Softsign", "Tanh"]
