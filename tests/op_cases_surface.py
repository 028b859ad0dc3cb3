"""Cases for the PyTorch surface beyond the transformer's own ops: the elementwise
math, the extra reductions, the exact GELU. Same shape as ``op_cases.CASES`` (which
merges this table), plus each case's NumPy and PyTorch references, so a case is
written once with everything that checks it.

``NUMPY`` maps a case to ``f(*arrays, **params)``; ``TORCH`` to
``f(torch, *tensors, **params)`` or ``SAME`` (the case's own expression runs on
torch tensors as written).
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

import tinyllm
from strategies import AWAY_FROM_ZERO, POSITIVE, SMOOTH, arrays, away_from, axes, broadcastable_shapes, floats, shapes

SAME = "the case's own expression runs on torch tensors as written"


def _given(*array_strategies, **params):
    return st.tuples(st.tuples(*array_strategies), st.fixed_dictionaries(params))


def _unary(elements=SMOOTH):
    return shapes().flatmap(lambda s: _given(arrays(s, elements)))


def _binary(a=SMOOTH, b=SMOOTH, n=2):
    return broadcastable_shapes(n).flatmap(lambda ss: _given(*[arrays(s, e) for s, e in zip(ss, [a, b, SMOOTH])]))


@st.composite
def _remainder_inputs(draw, positive_only=False):
    """b away from 0 and a = b (k + f) with f in [0.1, 0.9]: a / b is never near a whole number."""
    sa, sb = draw(broadcastable_shapes(2))
    b = draw(arrays(sb, POSITIVE if positive_only else AWAY_FROM_ZERO))
    k = draw(arrays(np.broadcast_shapes(sa, sb), st.integers(-2, 2).map(float)))
    f = draw(arrays(np.broadcast_shapes(sa, sb), floats(0.1, 0.9)))
    return (b * (k + f), b), {}


@st.composite
def _norm_inputs(draw):
    shape = draw(shapes())
    return (draw(arrays(shape, AWAY_FROM_ZERO)),), {"p": draw(st.sampled_from([1, 2, 3])),
                                                    "axis": draw(axes(len(shape))),
                                                    "keepdims": draw(st.booleans())}


@st.composite
def _std_inputs(draw):
    shape = draw(shapes(1, 3, min_side=2))
    grid = st.integers(-100, 100).map(lambda i: i / 50)
    x = draw(arrays(shape, grid).filter(lambda a: np.ptp(a) > 0.1))
    return (x,), {"dim": draw(st.sampled_from([None, -1])), "correction": draw(st.sampled_from([0, 1]))}


@st.composite
def _prod_inputs(draw):
    shape = draw(shapes(max_dims=3))
    return (draw(arrays(shape)),), {"axis": draw(axes(len(shape))), "keepdims": draw(st.booleans())}


STEPS = away_from(*[i / 2 for i in range(-4, 5)], gap=0.01)   # away from the jumps of floor/round/sign


def _steps(x):
    return x.floor() + x.ceil() * 2 + x.round() * 3 + x.trunc() * 4 + x.sign() * 5


def _np_steps(x):
    return np.floor(x) + np.ceil(x) * 2 + np.round(x) * 3 + np.trunc(x) * 4 + np.sign(x) * 5


def _np_norm(x, p, axis, keepdims):
    if axis == ():
        return np.abs(x)
    return np.sum(np.abs(x) ** p, axis=axis, keepdims=keepdims) ** (1.0 / p)


def _torch_norm(T, x, p, axis, keepdims):
    if axis == ():
        return x.abs()
    return T.linalg.vector_norm(x, ord=p, dim=axis, keepdim=keepdims)


def _torch_prod(T, x, axis, keepdims):
    if axis == ():
        return x + 0
    dims = tuple(range(x.ndim)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    for d in sorted((d % x.ndim for d in dims), reverse=True):
        x = x.prod(d, keepdim=keepdims)
    return x


def _np_erf(x):
    return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x


CASES = {
    "sin": ((("Sin",), lambda x: x.sin(), _unary()), np.sin, SAME),
    "cos": ((("Cos",), lambda x: x.cos(), _unary()), np.cos, SAME),
    "tan": ((("Tan",), lambda x: x.tan(), _unary(floats(-1.2, 1.2))), np.tan, SAME),
    "asin": ((("Asin",), lambda x: x.asin(), _unary(floats(-0.9, 0.9))), np.arcsin, SAME),
    "acos": ((("Acos",), lambda x: x.acos(), _unary(floats(-0.9, 0.9))), np.arccos, SAME),
    "atan": ((("Atan",), lambda x: x.atan(), _unary()), np.arctan, SAME),
    "sinh": ((("Sinh",), lambda x: x.sinh(), _unary()), np.sinh, SAME),
    "cosh": ((("Cosh",), lambda x: x.cosh(), _unary()), np.cosh, SAME),
    "atan2": ((("Atan2",), lambda a, b: tinyllm.atan2(a, b), _binary(AWAY_FROM_ZERO, AWAY_FROM_ZERO)),
              np.arctan2, lambda T, a, b: T.atan2(a, b)),
    "log2": ((("Log2",), lambda x: x.log2(), _unary(POSITIVE)), np.log2, SAME),
    "log10": ((("Log10",), lambda x: x.log10(), _unary(POSITIVE)), np.log10, SAME),
    "log1p": ((("Log1p",), lambda x: x.log1p(), _unary(floats(-0.5, 2.0))), np.log1p, SAME),
    "expm1": ((("Expm1",), lambda x: x.expm1(), _unary()), np.expm1, SAME),
    "exp2": ((("Exp2",), lambda x: x.exp2(), _unary()), np.exp2, SAME),
    "rsqrt": ((("Rsqrt",), lambda x: x.rsqrt(), _unary(POSITIVE)), lambda x: 1 / np.sqrt(x), SAME),
    "erf": ((("Erf",), lambda x: x.erf(), _unary()), _np_erf, SAME),
    "logaddexp": ((("LogAddExp",), lambda a, b: tinyllm.logaddexp(a, b), _binary()), np.logaddexp,
                  lambda T, a, b: T.logaddexp(a, b)),
    "lerp": ((("Add", "Mul", "Sub"), lambda a, b, w: tinyllm.lerp(a, b, w), _binary(n=3)),
             lambda a, b, w: a + w * (b - a), lambda T, a, b, w: T.lerp(*T.broadcast_tensors(a, b, w))),
    "steps": ((("PiecewiseConstant", "Add", "Mul"), _steps, _unary(STEPS)), _np_steps, SAME),
    "nan_to_num": ((("NanToNum",), lambda x: tinyllm.nan_to_num(x, nan=1.0), _unary()),
                   lambda x: np.nan_to_num(x, nan=1.0), lambda T, x: T.nan_to_num(x, nan=1.0)),
    "remainder": ((("Remainder",), lambda a, b: a % b, _remainder_inputs()), np.remainder, SAME),
    "fmod": ((("Fmod",), lambda a, b: tinyllm.fmod(a, b), _remainder_inputs(positive_only=True)), np.fmod,
             lambda T, a, b: T.fmod(a, b)),
    "clone": ((("Clone",), lambda x: x.clone() * 2, _unary()), lambda x: x * 2, SAME),
    "norm": ((("Norm",), lambda x, p, axis, keepdims: x.norm(p, axis=axis, keepdims=keepdims), _norm_inputs()),
             _np_norm, _torch_norm),
    "prod": ((("Prod",), lambda x, axis, keepdims: x.prod(axis=axis, keepdims=keepdims), _prod_inputs()),
             lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims), _torch_prod),
    "std": ((("Var", "Sqrt"), lambda x, dim, correction: x.std(dim, correction=correction), _std_inputs()),
            lambda x, dim, correction: np.std(x, axis=dim, ddof=correction), SAME),
    "gelu_exact": ((("GeluExact",), lambda x: x.gelu(approximate="none"), _unary(floats(-3.0, 3.0))),
                   lambda x: 0.5 * x * (1 + _np_erf(x / math.sqrt(2.0))),
                   lambda T, x: T.nn.functional.gelu(x, approximate="none")),
}

NUMPY = {name: numpy_ref for name, (_, numpy_ref, _) in CASES.items()}
TORCH = {name: torch_ref for name, (_, _, torch_ref) in CASES.items()}
