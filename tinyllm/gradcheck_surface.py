"""The ``tinyllm gradcheck`` cases of the PyTorch surface beyond the transformer's ops
(the elementwise math, the extra reductions, shape/scan/index ops, activations and
losses): one small seeded case per Function class, as in :mod:`tinyllm.gradcheck_cases`,
which wraps each ``(name, ops, build, eps)`` row into its ``GradCase``.

Inputs are drawn away from each op's kinks and domain edges.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import backend
from .tensor import Tensor


def _t(a: Any, grad: bool = True) -> Tensor:
    return Tensor(backend.get_array_module(a).asarray(a, dtype=np.float64), requires_grad=grad)


def _normal(rng: np.random.Generator, *shape: int) -> Tensor:
    return _t(rng.standard_normal(shape))


def _uniform(rng: np.random.Generator, lo: float, hi: float, *shape: int) -> Tensor:
    return _t(rng.uniform(lo, hi, shape))


def _away(rng: np.random.Generator, shape: tuple, gap: float = 0.1) -> Tensor:
    """Normal samples at least ``gap`` from 0 (the kink of the piecewise activations)."""
    x = rng.standard_normal(shape)
    return _t(np.where(np.abs(x) < gap, np.sign(x + 1e-12) * (gap + np.abs(x)), x))


def _fraction(rng: np.random.Generator, b: np.ndarray) -> Tensor:
    """a = b (k + f), f in [0.1, 0.9]: a / b is never near a whole number (remainders are smooth)."""
    return _t(b * (rng.integers(-2, 3, b.shape) + rng.uniform(0.1, 0.9, b.shape)))


def _method(name: str, make: Callable[[np.random.Generator], Tensor], *args: Any, **kwargs: Any) -> Callable:
    return lambda rng: (lambda x: getattr(x, name)(*args, **kwargs), [make(rng)])


def surface_cases() -> list[tuple]:
    """Rows ``(name, ops, build, eps)``; ``build(rng) -> (fn, inputs)``."""
    import tinyllm  # noqa: PLC0415  (the public names are what is checked)
    from . import functional as F  # noqa: PLC0415

    def remainder(rng: np.random.Generator) -> tuple:
        b = rng.uniform(0.5, 2.0, (3, 4)) * np.sign(rng.standard_normal((3, 4)))
        return (lambda x, y: x % y), [_fraction(rng, b), _t(b)]

    def fmod(rng: np.random.Generator) -> tuple:
        b = rng.uniform(0.5, 2.0, (3, 4))
        return (lambda x, y: tinyllm.fmod(x, y)), [_fraction(rng, b), _t(b)]

    def steps(rng: np.random.Generator) -> tuple:
        x = np.round(rng.uniform(-2, 2, (3, 4)) * 2) / 2 + 0.25         # a quarter from every jump
        return (lambda v: v.floor() + v.ceil() + v.round() + v.trunc() + v.sign()), [_t(x)]

    unary = [("Sin", "sin", -2, 2), ("Cos", "cos", -2, 2), ("Tan", "tan", -1.2, 1.2), ("Asin", "asin", -0.9, 0.9),
             ("Acos", "acos", -0.9, 0.9), ("Atan", "atan", -2, 2), ("Sinh", "sinh", -2, 2),
             ("Cosh", "cosh", -2, 2), ("Log2", "log2", 0.5, 2), ("Log10", "log10", 0.5, 2),
             ("Log1p", "log1p", -0.5, 2), ("Expm1", "expm1", -2, 2), ("Exp2", "exp2", -2, 2),
             ("Rsqrt", "rsqrt", 0.5, 2), ("Erf", "erf", -2, 2), ("Clone", "clone", -2, 2),
             ("NanToNum", "nan_to_num", -2, 2)]
    rows = [(name, (name,), _method(method, lambda r, lo=lo, hi=hi: _uniform(r, lo, hi, 3, 4)), 1e-6)
            for name, method, lo, hi in unary]
    return rows + [
        ("Atan2", ("Atan2",), lambda r: (tinyllm.atan2, [_uniform(r, 0.5, 2, 3, 4), _normal(r, 4)]), 1e-6),
        ("LogAddExp", ("LogAddExp",), lambda r: (tinyllm.logaddexp, [_normal(r, 3, 4), _normal(r, 3, 1)]), 1e-6),
        ("PiecewiseConstant", ("PiecewiseConstant",), steps, 1e-6),
        ("Remainder", ("Remainder",), remainder, 1e-6),
        ("Fmod", ("Fmod",), fmod, 1e-6),
        ("Norm", ("Norm",), _method("norm", lambda r: _normal(r, 3, 4), 3, dim=-1), 1e-6),
        ("Prod", ("Prod",), _method("prod", lambda r: _normal(r, 3, 4), dim=1), 1e-6),
        ("GeluExact", ("GeluExact",), _method("gelu", lambda r: _normal(r, 3, 4), approximate="none"), 1e-6),
        ("Roll", ("Roll",), _method("roll", lambda r: _normal(r, 3, 4), (1, -2), (0, 1)), 1e-6),
        ("Tile", ("Tile",), _method("repeat", lambda r: _normal(r, 3, 4), 2, 1, 3), 1e-6),
        ("Diagonal", ("Diagonal",), _method("diagonal", lambda r: _normal(r, 2, 3, 4), 1, 1, 2), 1e-6),
        ("Diag", ("Diag",), _method("diag", lambda r: _normal(r, 3), -1), 1e-6),
        ("Cumsum", ("Cumsum",), _method("cumsum", lambda r: _normal(r, 3, 4), 1), 1e-6),
        ("Cumprod", ("Cumprod",), _method("cumprod", lambda r: _normal(r, 3, 4), 1), 1e-6),
        ("LogCumSumExp", ("LogCumSumExp",), _method("logcumsumexp", lambda r: _normal(r, 3, 4), 0), 1e-6),
        ("Gather", ("Gather",), lambda r: (lambda x: x.gather(1, np.array([[0, 0], [3, 1], [2, 2]])),
                                           [_normal(r, 3, 4)]), 1e-6),
        ("ScatterAdd", ("ScatterAdd",), lambda r: (lambda x, s: x.scatter_add(1, np.array([[0, 0], [3, 1]]), s),
                                                   [_normal(r, 2, 4), _normal(r, 2, 2)]), 1e-6),
        ("Scatter", ("Scatter",), lambda r: (lambda x, s: x.scatter(0, np.array([[1, 0, 2]]), s),
                                             [_normal(r, 3, 3), _normal(r, 1, 3)]), 1e-6),
        *[(name, (name,), (lambda fn: lambda r: (fn, [_away(r, (3, 4))]))(fn), 1e-6) for name, fn in [  # noqa: B023  (fn is the outer lambda's own argument)
            ("Silu", F.silu), ("Softplus", F.softplus), ("LogSigmoid", F.logsigmoid), ("Mish", F.mish),
            ("Elu", lambda x: F.celu(x, 1.5)), ("LeakyRelu", F.leaky_relu), ("Softsign", F.softsign)]],
        ("BinaryCrossEntropy", ("BinaryCrossEntropy",),
         lambda r: (lambda p, y: F.binary_cross_entropy(p, y), [_uniform(r, 0.1, 0.9, 3, 4), _uniform(r, 0, 1, 3, 4)]),
         1e-6),
        ("Einsum", ("Einsum",), lambda r: (lambda a, b: tinyllm.einsum("bij,jk->bik", a, b),
                                           [_normal(r, 2, 3, 4), _normal(r, 4, 2)]), 1e-6),
    ]
