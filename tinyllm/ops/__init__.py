"""Primitive differentiable ops, one Function class each (see ``tinyllm.tensor``).

- ``elementwise``: + - * / ** matmul, exp log sqrt tanh sigmoid relu abs clip,
  maximum minimum, cast
- ``reduce``: sum mean max min var (argmax, not differentiable)
- ``shape``: reshape permute expand, indexing, concat stack split, where masked_fill

Comparisons live here: they return boolean tensors and record no gradient.
The fused ops with hand-derived backward (softmax, gelu, layer norm,
attention, cross-entropy, ...) are in ``tinyllm.functional``.
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..tensor import Tensor, as_tensor
from .elementwise import (abs, add, cast, clip, div, exp, log, matmul, maximum, minimum, mul, neg,
                          pow, relu, sigmoid, sqrt, sub, tanh)
from .reduce import argmax, max, mean, min, sum, var
from .shape import (broadcast_to, cat, concat, expand, flatten, getitem, masked_fill, permute,
                    reshape, split, squeeze, stack, swapaxes, transpose, unsqueeze, where)


def _compare(name: str, a: Any, b: Any) -> Tensor:
    if not isinstance(a, Tensor):
        a = as_tensor(a, like=b)
    b = as_tensor(b, like=a)
    return Tensor._wrap(getattr(get_array_module(a.data, b.data), name)(a.data, b.data))


def less(a: Any, b: Any) -> Tensor:
    """a < b elementwise, as a boolean tensor (no gradient)."""
    return _compare("less", a, b)


def less_equal(a: Any, b: Any) -> Tensor:
    """a <= b elementwise (no gradient)."""
    return _compare("less_equal", a, b)


def greater(a: Any, b: Any) -> Tensor:
    """a > b elementwise (no gradient)."""
    return _compare("greater", a, b)


def greater_equal(a: Any, b: Any) -> Tensor:
    """a >= b elementwise (no gradient)."""
    return _compare("greater_equal", a, b)


def equal(a: Any, b: Any) -> Tensor:
    """a == b elementwise (no gradient)."""
    return _compare("equal", a, b)


def not_equal(a: Any, b: Any) -> Tensor:
    """a != b elementwise (no gradient)."""
    return _compare("not_equal", a, b)


__all__ = [
    "abs", "add", "argmax", "broadcast_to", "cast", "cat", "clip", "concat", "div", "equal", "exp",
    "expand", "flatten", "getitem", "greater", "greater_equal", "less", "less_equal", "log",
    "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "neg", "not_equal",
    "permute", "pow", "relu", "reshape", "sigmoid", "split", "sqrt", "squeeze", "stack", "sub", "sum",
    "swapaxes", "tanh", "transpose", "unsqueeze", "var", "where",
]
