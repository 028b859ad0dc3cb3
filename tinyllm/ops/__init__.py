"""Primitive differentiable ops, one Function class each (see ``tinyllm.tensor``).

- ``elementwise``: + - * / ** exp log sqrt tanh sigmoid relu abs clip, maximum minimum, clone
- ``math``: trigonometry, logarithms, rounding, erf
- ``logic``: remainders, integer division, bitwise/logical ops, predicates
- ``linalg``: matmul, einsum
- ``rearrange``: pad flip roll repeat repeat_interleave chunk unflatten tril triu diagonal diag meshgrid
- ``scan``: cumsum cumprod logcumsumexp sort argsort topk
- ``index``: gather scatter scatter_add index_select masked_select nonzero one_hot
- ``reduce``: sum mean max min amax amin var std prod norm (argmax argmin any all: no gradient)
- ``shape``: reshape permute transpose expand, indexing, concat stack split, where masked_fill
- ``creation``: zeros ones full empty arange linspace eye rand randn randint randperm, ``*_like``
- ``dtypes``: PyTorch's type promotion and ``cast``; ``axes``: axis checks shared by every op

Comparisons (in ``logic``) return boolean tensors and record no gradient.
The fused ops with hand-derived backward (softmax, gelu, layer norm,
attention, cross-entropy, ...) are in ``tinyllm.functional``.
"""
from __future__ import annotations

from .axes import normalize_axis  # noqa: F401  (normalize_axis: for Tensor.size)
from .creation import (arange, empty, empty_like, eye, from_numpy, full, full_like, is_tensor, linspace, numel, ones,
                       ones_like, rand, rand_like, randint, randn, randn_like, randperm, zeros, zeros_like)
from .dtypes import cast
from .elementwise import (abs, add, clamp, clip, clone, exp, log, maximum, minimum, mul, neg, pow, relu,
                          sigmoid, sqrt, sub, tanh)
from .index import argwhere, gather, index_select, masked_select, nonzero, one_hot, scatter, scatter_add
from .linalg import bmm, dot, einsum, matmul, mm, outer
from .logic import (allclose, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, div, divide, eq, equal,
                    floor_divide, fmod, ge, greater, greater_equal, gt, isclose, isfinite, isinf, isnan, le, less,
                    less_equal, logical_and, logical_not, logical_or, logical_xor, lt, ne, not_equal, remainder,
                    true_divide, trunc_divide)
from .math import (acos, arccos, arcsin, arctan, arctan2, asin, atan, atan2, ceil, cos, cosh, erf, exp2, expm1, fix,
                   floor, lerp, log1p, log2, log10, logaddexp, nan_to_num, round, rsqrt, sign, sin, sinh, tan, trunc)
from .reduce import MaxMin  # noqa: F401  (what max(x, dim) returns)
from .reduce import all, amax, amin, any, argmax, argmin, max, mean, min, norm, prod, std, sum, var
from .rearrange import (chunk, diag, diagonal, flip, meshgrid, movedim, narrow, pad, repeat, repeat_interleave,
                        roll, tril, triu, unbind, unflatten)
from .scan import argsort, cumprod, cumsum, logcumsumexp, msort, sort, topk
from .shape import getitem, raw_index, reverse_axes  # noqa: F401  (Tensor's [], []= and .T)
from .shape import (broadcast_to, cat, concat, expand, flatten, masked_fill, permute, reshape, split, squeeze,
                    stack, swapaxes, transpose, unsqueeze, where)


__all__ = [
    "bmm", "dot", "mm", "outer", "movedim", "narrow", "unbind",
    "argwhere", "gather", "index_select", "masked_select", "nonzero", "one_hot", "scatter", "scatter_add",
    "einsum", "chunk", "diag", "diagonal", "flip", "meshgrid", "pad", "repeat", "repeat_interleave", "roll",
    "tril", "triu", "unflatten", "argsort", "cumprod", "cumsum", "logcumsumexp", "msort", "sort", "topk",
    "arange", "empty", "empty_like", "eye", "from_numpy", "full", "full_like", "is_tensor", "linspace", "numel",
    "ones", "ones_like", "rand",
    "rand_like", "randint", "randn", "randn_like", "randperm", "zeros", "zeros_like",
    "abs", "acos", "add", "all", "allclose", "amax", "amin", "any", "arccos", "arcsin", "arctan", "arctan2",
    "argmax", "argmin", "asin", "atan", "atan2", "bitwise_and", "bitwise_not", "bitwise_or", "bitwise_xor",
    "broadcast_to", "cast", "cat", "ceil", "clamp", "clip", "clone", "concat", "cos", "cosh", "div",
    "divide", "eq", "equal", "erf", "exp", "exp2", "expand", "expm1", "fix", "flatten", "floor",
    "floor_divide", "fmod", "ge", "greater", "greater_equal", "gt", "isclose", "isfinite",
    "isinf", "isnan", "le", "lerp", "less", "less_equal", "log", "log10", "log1p", "log2", "logaddexp",
    "logical_and", "logical_not", "logical_or", "logical_xor", "lt", "masked_fill", "matmul", "max",
    "maximum", "mean", "min", "minimum", "mul", "nan_to_num", "ne", "neg", "norm", "normalize_axis",
    "not_equal", "permute", "pow", "prod", "relu", "remainder", "reshape", "round", "rsqrt",
    "sigmoid", "sign", "sin", "sinh", "split", "sqrt", "squeeze", "stack", "std", "sub", "sum", "swapaxes",
    "tan", "tanh", "transpose", "true_divide", "trunc", "trunc_divide", "unsqueeze", "var", "where",
]
