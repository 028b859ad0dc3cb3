"""The table of engine op cases: each is an expression, the Function classes it
exercises, and a strategy for its inputs.

A strategy draws ``(arrays, params)``: ``arrays`` is a tuple of float64 NumPy
arrays (the differentiable inputs, made into tensors that require grad) and
``params`` a dict of everything else (axes, indices, masks, flags), passed as
keyword arguments. ``case.fn(*tensors, **params)`` returns one Tensor.

The same table drives four tests: gradients against finite differences
(``test_ops_grad.py``), values against NumPy and float32 in -> float32 out
(``test_ops_forward.py``), and values and gradients against PyTorch
(``test_ops_torch.py``). Those files keep a reference per case name and fail if
one is missing, so a new case gets all four checks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm
import tinyllm.functional as F
from strategies import (AWAY_FROM_ZERO, POSITIVE, SMOOTH, arrays, away_from, axes, broadcastable_shapes,
                        distinct_arrays, floats, grid_arrays, index_arrays, one_axis, shapes, side)


@dataclass(frozen=True)
class Case:
    ops: tuple             # names of the Function classes the expression runs through
    fn: Callable           # fn(*tensors, **params) -> Tensor
    inputs: Any            # strategy drawing (arrays, params)
    eps: float = 1e-6      # finite-difference step


def given(*array_strategies: Any, **params: Any) -> st.SearchStrategy:
    """(arrays, params) from one strategy per array and one per parameter."""
    return st.tuples(st.tuples(*array_strategies), st.fixed_dictionaries(params))


def unary(elements: Any = SMOOTH) -> st.SearchStrategy:
    return shapes().flatmap(lambda s: given(arrays(s, elements)))


def binary(a: Any = SMOOTH, b: Any = SMOOTH) -> st.SearchStrategy:
    return broadcastable_shapes(2).flatmap(lambda ss: given(arrays(ss[0], a), arrays(ss[1], b)))


def distinct_pair() -> st.SearchStrategy:
    return broadcastable_shapes(2).flatmap(lambda ss: distinct_arrays(*ss).map(lambda ab: (ab, {})))


# ----------------------------------------------------------------------------- composite inputs

@st.composite
def reduction(draw: st.DrawFn, distinct: bool = False, ddof: bool = False) -> tuple:
    shape = draw(shapes())
    x = draw(distinct_arrays(shape))[0] if distinct else draw(arrays(shape))
    params = {"axis": draw(axes(len(shape))), "keepdims": draw(st.booleans())}
    if ddof:
        reduced = range(len(shape)) if params["axis"] is None else np.atleast_1d(params["axis"])
        count = math.prod(shape[a] for a in reduced)
        params["ddof"] = draw(st.integers(0, 1 if count > 1 else 0))
    return (x,), params


@st.composite
def matmul_inputs(draw: st.DrawFn) -> tuple:
    """Vector, matrix, stacked and batch-broadcast products, every 1-D promotion."""
    n, k, m = draw(side()), draw(side()), draw(side())
    batch_a, batch_b = draw(broadcastable_shapes(2, max_dims=2))
    kind = draw(st.sampled_from(["vv", "vm", "mv", "mm", "stack@matrix", "batched"]))
    sa, sb = {"vv": ((k,), (k,)), "vm": ((k,), batch_b + (k, m)), "mv": (batch_a + (n, k), (k,)),
              "mm": ((n, k), (k, m)), "stack@matrix": (batch_a + (2, n, k), (k, m)),
              "batched": (batch_a + (n, k), batch_b + (k, m))}[kind]
    return (draw(arrays(sa)), draw(arrays(sb))), {}


@st.composite
def reshape_inputs(draw: st.DrawFn) -> tuple:
    shape = draw(shapes())
    target = list(draw(st.permutations(shape)))       # same sides in another order: same size
    for _ in range(draw(st.integers(0, 2))):
        target.insert(draw(st.integers(0, len(target))), 1)
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return (draw(arrays(shape)),), {"shape": tuple(target)}


@st.composite
def permute_inputs(draw: st.DrawFn) -> tuple:
    shape = draw(shapes())
    return (draw(arrays(shape)),), {"axes": tuple(draw(st.permutations(range(len(shape)))))}


@st.composite
def swapaxes_inputs(draw: st.DrawFn) -> tuple:
    shape = draw(shapes(1))
    return (draw(arrays(shape)),), {"a": draw(one_axis(len(shape))), "b": draw(one_axis(len(shape)))}


@st.composite
def expand_inputs(draw: st.DrawFn) -> tuple:
    shape = draw(shapes(max_dims=3))
    lead = tuple(draw(st.lists(side(1, 2), max_size=1)))
    target = lead + tuple(draw(side(1, 3)) if n == 1 else n for n in shape)
    return (draw(arrays(shape)),), {"shape": target}


@st.composite
def basic_index_inputs(draw: st.DrawFn) -> tuple:
    shape = draw(shapes(max_dims=3))
    index = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    return (draw(arrays(shape)),), {"index": index}


@st.composite
def row_index_inputs(draw: st.DrawFn) -> tuple:
    shape = draw(shapes(1, 3))
    return (draw(arrays(shape)),), {"index": draw(index_arrays(shape[0]))}


@st.composite
def fancy_index_inputs(draw: st.DrawFn) -> tuple:
    """A tuple of integer arrays over the first axes, then full slices."""
    shape = draw(shapes(1, 3))
    used = draw(st.integers(1, len(shape)))
    idx = draw(hnp.integer_array_indices(shape[:used], result_shape=shapes(0, 2)))
    return (draw(arrays(shape)),), {"index": tuple(idx) + (slice(None),) * (len(shape) - used)}


@st.composite
def bool_index_inputs(draw: st.DrawFn) -> tuple:
    shape = draw(shapes(max_dims=3))
    return (draw(arrays(shape)),), {"index": draw(hnp.arrays(np.bool_, shape))}


@st.composite
def concat_inputs(draw: st.DrawFn) -> tuple:
    shape = list(draw(shapes(1, 3)))
    axis = draw(one_axis(len(shape)))
    xs = []
    for _ in range(draw(st.integers(1, 3))):
        shape[axis] = draw(side())
        xs.append(draw(arrays(tuple(shape))))
    return tuple(xs), {"axis": axis}


@st.composite
def stack_inputs(draw: st.DrawFn) -> tuple:
    shape = draw(shapes(max_dims=3))
    xs = tuple(draw(arrays(shape)) for _ in range(draw(st.integers(1, 3))))
    return xs, {"axis": draw(st.integers(-len(shape) - 1, len(shape)))}


@st.composite
def split_inputs(draw: st.DrawFn) -> tuple:
    shape = draw(shapes(1, 3))
    axis = draw(one_axis(len(shape)))
    n = shape[axis]
    if draw(st.booleans()):
        size: Any = draw(st.integers(1, n))
    else:
        cuts = sorted(draw(st.lists(st.integers(0, n), max_size=2)))
        size = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    return (draw(arrays(shape)),), {"size": size, "axis": axis}


@st.composite
def where_inputs(draw: st.DrawFn) -> tuple:
    sc, sa, sb = draw(broadcastable_shapes(3))
    return (draw(arrays(sa)), draw(arrays(sb))), {"cond": draw(hnp.arrays(np.bool_, sc))}


@st.composite
def masked_fill_inputs(draw: st.DrawFn) -> tuple:
    """A mask that broadcasts to x's shape (size-1 and missing leading axes)."""
    shape = draw(shapes())
    keep = draw(st.integers(0, len(shape)))
    mshape = tuple(1 if draw(st.booleans()) else n for n in shape[len(shape) - keep:])
    return (draw(arrays(shape)),), {"mask": draw(hnp.arrays(np.bool_, mshape)), "value": -1.5}


@st.composite
def layer_norm_inputs(draw: st.DrawFn) -> tuple:
    shape = draw(shapes(0, 2)) + (draw(side(2, 4)),)
    x = draw(distinct_arrays(shape))[0]   # distinct values: the variance stays away from 0
    affine = tuple(draw(arrays(shape[-1:])) for _ in range(draw(st.integers(0, 2))))
    return (x,) + affine, {}


@st.composite
def embedding_inputs(draw: st.DrawFn) -> tuple:
    vocab, width = draw(side(1, 4)), draw(side(1, 3))
    idx = draw(hnp.arrays(np.int64, shapes(0, 2, min_side=0), elements=st.integers(0, vocab - 1)))
    return (draw(arrays((vocab, width))),), {"idx": idx}


@st.composite
def attention_inputs(draw: st.DrawFn, dropout: bool = False) -> tuple:
    """Heads as batch axes (keys and values may be shared across some, as in multi-query
    attention); causal with Tq <= Tk (a KV cache); padded-key or arbitrary boolean
    masks, which can leave a row with no allowed key."""
    batch = tuple(draw(st.lists(side(1, 2), max_size=2)))
    kv_batch = tuple(1 if draw(st.booleans()) else n for n in batch)
    causal = draw(st.booleans())
    tk = draw(side())
    tq = draw(side(1, tk)) if causal else draw(side())
    d, dv = draw(side()), draw(side())
    q = draw(arrays(batch + (tq, d)))
    k, v = draw(arrays(kv_batch + (tk, d))), draw(arrays(kv_batch + (tk, dv)))
    kind = draw(st.sampled_from(["none", "padded_keys", "any"]))
    mask = None
    if kind == "padded_keys":                                    # (..., 1, Tk): key j < length
        lengths = draw(hnp.arrays(np.int64, batch, elements=st.integers(0, tk)))
        mask = (np.arange(tk) < lengths[..., None])[..., None, :]
    elif kind == "any":
        mask = draw(hnp.arrays(np.bool_, batch + (tq, tk)))
    params = {"mask": mask, "causal": causal, "scale": draw(st.sampled_from([None, 0.7])),
              "dropout_p": 0.3 if dropout else 0.0}
    return (q, k, v), params


@st.composite
def cross_entropy_inputs(draw: st.DrawFn) -> tuple:
    lead = draw(shapes(1, 2))                                   # (N,) or (B, T)
    classes = draw(side(1, 4))
    ignore = draw(st.sampled_from([-100, 0]))
    targets = draw(hnp.arrays(np.int64, lead, elements=st.sampled_from(list(range(classes)) + [ignore])))
    params = {"targets": targets, "ignore_index": ignore,
              "label_smoothing": draw(st.sampled_from([0.0, 0.1, 0.3])),
              "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
    return (draw(arrays(lead + (classes,), floats(-3.0, 3.0))),), params


# ----------------------------------------------------------------------------- case functions

def _split(x, size, axis):
    return tinyllm.concat([p.reshape(-1) for p in tinyllm.split(x, size, axis)][::-1])


def _expand(x, shape):
    """PyTorch-style expand: -1 wherever an axis keeps its size."""
    lead = len(shape) - x.ndim
    return x.expand(*shape[:lead], *[-1 if n == t else t for n, t in zip(x.shape, shape[lead:])])


def _dropout(x, p):
    tinyllm.manual_seed(7)          # the same mask at every evaluation of the gradient check
    return F.dropout(x, p, training=True)


def _attention(q, k, v, mask, causal, scale, dropout_p):
    tinyllm.manual_seed(3)
    return F.attention(q, k, v, mask=mask, causal=causal, scale=scale, dropout_p=dropout_p)


CASES: dict[str, Case] = {
    # elementwise, with broadcasting; the *_scalar cases use the reflected operators
    "add": Case(("Add",), lambda a, b: a + b, binary()),
    "add_scalar": Case(("Add",), lambda a: 2.5 + a, unary()),
    "sub": Case(("Sub",), lambda a, b: a - b, binary()),
    "sub_scalar": Case(("Sub",), lambda a: 1.5 - a, unary()),
    "mul": Case(("Mul",), lambda a, b: a * b, binary()),
    "mul_scalar": Case(("Mul",), lambda a: 3 * a, unary()),
    "div": Case(("Div",), lambda a, b: a / b, binary(SMOOTH, AWAY_FROM_ZERO)),
    "div_scalar": Case(("Div",), lambda b: 2.0 / b, unary(AWAY_FROM_ZERO)),
    "pow": Case(("Pow",), lambda a, b: a ** b, binary(POSITIVE, SMOOTH)),
    "pow_int_exponent": Case(("Pow",), lambda a: a ** 3, unary()),
    "pow_scalar_base": Case(("Pow",), lambda b: 2.0 ** b, unary()),
    "maximum": Case(("Maximum",), lambda a, b: tinyllm.maximum(a, b), distinct_pair()),
    "minimum": Case(("Minimum",), lambda a, b: tinyllm.minimum(a, b), distinct_pair()),
    "matmul": Case(("MatMul",), lambda a, b: a @ b, matmul_inputs()),
    "neg": Case(("Neg",), lambda x: -x, unary()),
    "exp": Case(("Exp",), lambda x: x.exp(), unary()),
    "log": Case(("Log",), lambda x: x.log(), unary(POSITIVE)),
    "sqrt": Case(("Sqrt",), lambda x: x.sqrt(), unary(POSITIVE)),
    "tanh": Case(("Tanh",), lambda x: x.tanh(), unary()),
    "sigmoid": Case(("Sigmoid",), lambda x: x.sigmoid(), unary(floats(-4.0, 4.0))),
    "relu": Case(("Relu",), lambda x: x.relu(), unary(AWAY_FROM_ZERO)),
    "abs": Case(("Abs",), lambda x: x.abs(), unary(AWAY_FROM_ZERO)),
    "clip": Case(("Clip",), lambda x: x.clip(-0.5, 0.5), unary(away_from(-0.5, 0.5))),
    "clip_lower": Case(("Clip",), lambda x: x.clip(0.25, None), unary(away_from(0.25))),
    # float64 -> float16 -> float64 is exact on a grid of 2^-10, steps included
    "cast": Case(("Cast",), lambda x: x.astype("float16").astype(x.dtype),
                 shapes().flatmap(lambda s: given(grid_arrays(s))), eps=2.0 ** -10),
    # reductions over None, an int or a tuple of axes, keepdims or not
    "sum": Case(("Sum",), lambda x, axis, keepdims: x.sum(axis, keepdims), reduction()),
    "mean": Case(("Mean",), lambda x, axis, keepdims: x.mean(axis, keepdims), reduction()),
    "var": Case(("Var",), lambda x, axis, keepdims, ddof: x.var(axis=axis, keepdims=keepdims, ddof=ddof),
                reduction(ddof=True)),
    "max": Case(("Max",), lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims), reduction(distinct=True)),
    "min": Case(("Min",), lambda x, axis, keepdims: x.min(axis=axis, keepdims=keepdims), reduction(distinct=True)),
    "amax": Case(("Max",), lambda x, axis, keepdims: x.amax(axis, keepdims), reduction(distinct=True)),
    "amin": Case(("Min",), lambda x, axis, keepdims: x.amin(dim=axis, keepdim=keepdims), reduction(distinct=True)),
    # moving elements
    "reshape": Case(("Reshape",), lambda x, shape: x.reshape(shape), reshape_inputs()),
    "view_flatten_squeeze": Case(("Reshape",), lambda x: x.squeeze().unsqueeze(-1).view(-1).flatten(),
                                 unary()),
    "permute": Case(("Permute",), lambda x, axes: x.permute(*axes), permute_inputs()),
    "transpose": Case(("Permute",), lambda x: x.T, unary()),
    "swapaxes": Case(("Permute",), lambda x, a, b: x.swapaxes(a, b), swapaxes_inputs()),
    "broadcast_to": Case(("Expand",), lambda x, shape: tinyllm.broadcast_to(x, shape), expand_inputs()),
    "expand": Case(("Expand",), _expand, expand_inputs()),
    "getitem_basic": Case(("GetItem",), lambda x, index: x[index], basic_index_inputs()),
    "getitem_rows": Case(("GetItem",), lambda x, index: x[index], row_index_inputs()),
    "getitem_fancy": Case(("GetItem",), lambda x, index: x[index], fancy_index_inputs()),
    "getitem_bool": Case(("GetItem",), lambda x, index: x[index], bool_index_inputs()),
    "concat": Case(("Concat",), lambda *xs, axis: tinyllm.concat(xs, axis), concat_inputs()),
    "stack": Case(("Stack",), lambda *xs, axis: tinyllm.stack(xs, axis), stack_inputs()),
    "split": Case(("GetItem", "Reshape", "Concat"), _split, split_inputs()),
    "where": Case(("Where",), lambda a, b, cond: tinyllm.where(cond, a, b), where_inputs()),
    "masked_fill": Case(("Where",), lambda x, mask, value: x.masked_fill(mask, value), masked_fill_inputs()),
    # fused ops (tinyllm.functional)
    "softmax": Case(("Softmax",), lambda x, axis: x.softmax(axis),
                    shapes(1).flatmap(lambda s: given(arrays(s), axis=one_axis(len(s))))),
    "log_softmax": Case(("LogSoftmax",), lambda x, axis: x.log_softmax(axis),
                        shapes(1).flatmap(lambda s: given(arrays(s), axis=one_axis(len(s))))),
    "logsumexp": Case(("LogSumExp",), lambda x, axis, keepdims: x.logsumexp(axis, keepdims), reduction()),
    "gelu": Case(("Gelu",), lambda x: x.gelu(approximate="tanh"), unary(floats(-3.0, 3.0))),
    "layer_norm": Case(("LayerNorm",), lambda x, *wb: F.layer_norm(x, *wb), layer_norm_inputs()),
    "embedding": Case(("Embedding",), lambda w, idx: F.embedding(w, idx), embedding_inputs()),
    "dropout": Case(("Dropout",), _dropout,
                    shapes().flatmap(lambda s: given(arrays(s), p=st.sampled_from([0.2, 0.5])))),
    "attention": Case(("Attention",), _attention, attention_inputs()),
    "attention_dropout": Case(("Attention",), _attention, attention_inputs(dropout=True)),
    "cross_entropy": Case(("CrossEntropy",), lambda z, **kw: F.cross_entropy(z, **kw),
                          cross_entropy_inputs()),
}


import op_cases_layout  # noqa: E402  (rearranging, scans, sorting, indexing)
import op_cases_surface  # noqa: E402  (the PyTorch surface beyond the transformer's ops)

for _table in (op_cases_surface.CASES, op_cases_layout.CASES):
    CASES.update({name: Case(*case) for name, (case, _, _) in _table.items()})


def covered_ops() -> set:
    """Every Function class name some case exercises."""
    return {op for case in CASES.values() for op in case.ops}
