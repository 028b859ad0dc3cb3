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

def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_softplus(x, beta=1.0):
    return np.where(beta * x > 20, x, np.log1p(np.exp(beta * x)) / beta)


def _np_elu(x, alpha=1.0, scale=1.0, beta=1.0):
    return np.where(x > 0, scale * x, scale * alpha * np.expm1(np.minimum(x, 0) / beta))


TF = "torch.nn.functional"
KINKED = away_from(0.0, gap=0.05)
SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946

CASES.update({
    "silu": ((("Silu",), lambda x: tinyllm.functional.silu(x), _unary(floats(-4.0, 4.0))),
             lambda x: x * _np_sigmoid(x), lambda T, x: T.nn.functional.silu(x)),
    "softplus": ((("Softplus",), lambda x, beta: tinyllm.functional.softplus(x, beta=beta),
                  shapes().flatmap(lambda s: _given(arrays(s, floats(-4.0, 4.0)), beta=st.sampled_from([1.0, 2.0])))),
                 _np_softplus, lambda T, x, beta: T.nn.functional.softplus(x, beta=beta)),
    "logsigmoid": ((("LogSigmoid",), lambda x: tinyllm.functional.logsigmoid(x), _unary(floats(-4.0, 4.0))),
                   lambda x: -np.logaddexp(0, -x), lambda T, x: T.nn.functional.logsigmoid(x)),
    "mish": ((("Mish",), lambda x: tinyllm.functional.mish(x), _unary(floats(-4.0, 4.0))),
             lambda x: x * np.tanh(np.log1p(np.exp(x))), lambda T, x: T.nn.functional.mish(x)),
    "elu": ((("Elu",), lambda x: tinyllm.functional.elu(x, 0.7), _unary(KINKED)),
            lambda x: _np_elu(x, 0.7), lambda T, x: T.nn.functional.elu(x, 0.7)),
    "selu": ((("Elu",), lambda x: tinyllm.functional.selu(x), _unary(KINKED)),
             lambda x: _np_elu(x, SELU_A, SELU_S), lambda T, x: T.nn.functional.selu(x)),
    "celu": ((("Elu",), lambda x: tinyllm.functional.celu(x, 1.5), _unary(KINKED)),
             lambda x: _np_elu(x, 1.5, 1.0, 1.5), lambda T, x: T.nn.functional.celu(x, 1.5)),
    "leaky_relu": ((("LeakyRelu",), lambda x: tinyllm.functional.leaky_relu(x, 0.2), _unary(KINKED)),
                   lambda x: np.where(x > 0, x, 0.2 * x), lambda T, x: T.nn.functional.leaky_relu(x, 0.2)),
    "softsign": ((("Softsign",), lambda x: tinyllm.functional.softsign(x), _unary(KINKED)),
                 lambda x: x / (1 + np.abs(x)), lambda T, x: T.nn.functional.softsign(x)),
    "hard_family": ((("Clip", "Mul", "Add"), lambda x: tinyllm.functional.hardtanh(x, -0.5, 1.5) +
                     tinyllm.functional.relu6(x * 4) + tinyllm.functional.hardsigmoid(x * 4) +
                     tinyllm.functional.hardswish(x * 4), _unary(away_from(-1.5, -0.75, -0.5, 0.0, 0.75, 1.5))),
                    lambda x: np.clip(x, -0.5, 1.5) + np.clip(4 * x, 0, 6) + np.clip(4 * x / 6 + 0.5, 0, 1) +
                    4 * x * np.clip(4 * x / 6 + 0.5, 0, 1),
                    lambda T, x: T.nn.functional.hardtanh(x, -0.5, 1.5) + T.nn.functional.relu6(x * 4) +
                    # torch's hardsigmoid backward rounds 1/6 to float32 even in float64: its definition instead
                    (x * 4 / 6 + 0.5).clamp(0, 1) * (1 + x * 4)),
    "softmin": ((("Softmax", "Neg"), lambda x: tinyllm.functional.softmin(x, dim=-1), _unary()),
                lambda x: np.exp(-x - np.max(-x, -1, keepdims=True)) / np.exp(-x - np.max(-x, -1, keepdims=True)).sum(
                    -1, keepdims=True) if x.ndim else np.ones_like(x),
                lambda T, x: T.nn.functional.softmin(x, dim=-1)),
    "normalize": ((("Norm", "Clip", "Div"), lambda x, p: tinyllm.functional.normalize(x, p=p, dim=-1),
                   shapes(1, 3).flatmap(lambda s: _given(arrays(s, AWAY_FROM_ZERO), p=st.sampled_from([1.0, 2.0])))),
                  lambda x, p: x / np.maximum(np.sum(np.abs(x) ** p, -1, keepdims=True) ** (1 / p), 1e-12),
                  lambda T, x, p: T.nn.functional.normalize(x, p=p, dim=-1)),
})

@st.composite
def _same_shape_pair(draw):
    shape = draw(shapes(1, 3))
    return (draw(arrays(shape)), draw(arrays(shape, POSITIVE))), {}


def _methods(a, b):
    """The method spellings of ops the other cases reach through operators or functions."""
    x = a.add(b, alpha=0.5).sub(b).mul(b).div(b).pow(2).neg().maximum(a - 10).minimum(b + 10)   # no ties
    x = x + a.atan2(b) + a.logaddexp(b) + a.lerp(b, 0.3) + a.remainder(b) * 0 + a.fmod(b) * 0 + a.nan_to_num()
    x = x.transpose(0, -1).transpose(-1, 0).reshape_as(a).view_as(a).expand_as(b).broadcast_to(b.shape)
    x = x.double().type_as(a).to(a.dtype).contiguous()
    parts = x.split(1, dim=0)
    m = x.reshape(x.shape[0], -1)                                      # (n, k)
    extra = m.t().mm(m).sum() + m[None].bmm(m.t()[None]).sum() + m[0].dot(m[0]) + m[0].outer(m[-1]).sum()
    extra = extra + x.unbind(0)[0].sum() + x.narrow(0, 0, 1).sum() + x.movedim(0, -1).reshape(-1)[0]
    return x.reshape(-1).matmul(b.reshape(-1)) + parts[0].sum() + extra


def _np_methods(a, b):
    x = -(((a + 0.5 * b - b) * b / b) ** 2)
    x = np.minimum(np.maximum(x, a - 10), b + 10)
    x = x + np.arctan2(a, b) + np.logaddexp(a, b) + a + 0.3 * (b - a) + a
    m = x.reshape(x.shape[0], -1)
    extra = (m.T @ m).sum() + (m @ m.T).sum() + m[0] @ m[0] + np.outer(m[0], m[-1]).sum()
    extra = extra + x[0].sum() + x[:1].sum() + np.moveaxis(x, 0, -1).reshape(-1)[0]
    return x.reshape(-1) @ b.reshape(-1) + x[:1].sum() + extra


CASES["method_spellings"] = ((("Add", "Sub", "Mul", "Div", "Pow", "Neg", "Maximum", "Minimum", "Atan2", "LogAddExp",
                               "Remainder", "Fmod", "NanToNum", "Permute", "Reshape", "Expand", "Cast", "MatMul",
                               "Einsum", "GetItem"),
                              _methods, _same_shape_pair()), _np_methods, SAME)

NUMPY = {name: numpy_ref for name, (_, numpy_ref, _) in CASES.items()}
TORCH = {name: torch_ref for name, (_, _, torch_ref) in CASES.items()}
