"""Cases for the rearranging, scan, sort and index ops (the same layout as
``op_cases_surface``: each case with its NumPy and PyTorch references)."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm
from op_cases_surface import SAME
from strategies import POSITIVE, arrays, distinct_arrays, floats, one_axis, shapes, side


@st.composite
def _one_axis_inputs(draw, min_dims=1, elements=None, distinct=False, **extra):
    shape = draw(shapes(min_dims, 3))
    x = draw(distinct_arrays(shape))[0] if distinct else draw(arrays(shape, elements or floats(-2.0, 2.0)))
    return (x,), {"dim": draw(one_axis(len(shape))), **{k: draw(v) for k, v in extra.items()}}


@st.composite
def _pad_inputs(draw):
    shape = draw(shapes(1, 3, min_side=2))
    mode = draw(st.sampled_from(["constant", "reflect", "replicate"]))
    k = draw(st.integers(1, len(shape)))
    most = 1 if mode == "reflect" else 2
    pad = tuple(draw(st.integers(-1 if mode == "constant" else 0, most)) for _ in range(2 * k))
    return (draw(arrays(shape)),), {"pad": pad, "mode": mode}


@st.composite
def _index_inputs(draw, kind):
    shape = draw(shapes(1, 3))
    d = draw(one_axis(len(shape)))
    ishape = tuple(draw(side(1, n)) if a != d % len(shape) else draw(side(1, 3)) for a, n in enumerate(shape))
    index = draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, shape[d] - 1)))
    x = draw(arrays(shape))
    if kind == "gather":
        return (x,), {"dim": d, "index": index}
    if kind == "scatter":                      # distinct targets: one write per place, as PyTorch requires
        flat = draw(st.permutations(range(shape[d])))
        ishape = tuple(min(n, len(flat)) if a == d % len(shape) else n for a, n in enumerate(ishape))
        index = np.broadcast_to(np.asarray(flat[:ishape[d % len(shape)]]).reshape(
            [-1 if a == d % len(shape) else 1 for a in range(len(shape))]), ishape).copy()
    return (x, draw(arrays(ishape))), {"dim": d, "index": index}


@st.composite
def _einsum_inputs(draw):
    kind = draw(st.sampled_from(["bij,bjk->bik", "ij->", "i,j->ij", "ij,j->i", "...ij,...jk", "ij->ji",
                                 "bik,k->bi"]))
    sizes = {c: draw(side()) for c in "bijk"}
    batch = tuple(draw(st.lists(side(1, 2), max_size=2)))
    shapes_ = []
    for spec in kind.split("->")[0].split(","):
        shapes_.append((batch if spec.startswith("...") else ()) + tuple(sizes[c] for c in spec.replace("...", "")))
    return tuple(draw(arrays(s)) for s in shapes_), {"equation": kind}


def _torch_pad(T, x, pad, mode):
    if mode == "constant":
        return T.nn.functional.pad(x, pad)
    nd = len(pad) // 2                                    # torch pads reflect/replicate on (N, C, *spatial)
    lead, spatial = x.shape[:x.ndim - nd], x.shape[x.ndim - nd:]
    y = T.nn.functional.pad(x.reshape(1, int(np.prod(lead)), *spatial), pad, mode=mode)
    return y.reshape(*lead, *y.shape[2:])


def _np_pad(x, pad, mode):
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    crop = tuple(slice(max(-a, 0), x.shape[i] - max(-b, 0)) for i, (a, b) in enumerate(widths))
    x = x[crop]
    widths = [(max(a, 0), max(b, 0)) for a, b in widths]
    return np.pad(x, widths, mode={"constant": "constant", "reflect": "reflect", "replicate": "edge"}[mode])


def _along(index, dim):
    """The full index tuple of torch.gather's ``x[..., index, ...]`` (index may be smaller than x)."""
    grids = np.indices(index.shape, sparse=True)
    return tuple(index if a == dim % index.ndim else grids[a] for a in range(index.ndim))


def _np_scatter_add(x, src, dim, index):
    y = x.copy()
    grids = np.indices(index.shape, sparse=True)
    np.add.at(y, tuple(index if a == dim % x.ndim else grids[a] for a in range(x.ndim)), src[tuple(
        slice(0, n) for n in index.shape)])
    return y


def _np_scatter(x, src, dim, index):
    y = x.copy()
    grids = np.indices(index.shape, sparse=True)
    y[tuple(index if a == dim % x.ndim else grids[a] for a in range(x.ndim))] = src[tuple(
        slice(0, n) for n in index.shape)]
    return y


def _np_logcumsumexp(x, dim):
    return np.logaddexp.accumulate(x, axis=dim)


def _np_tri(x, lower, k):
    return np.tril(x, k) if lower else np.triu(x, k)


CASES = {
    "pad": ((("Concat", "GetItem"), lambda x, pad, mode: tinyllm.pad(x, pad, mode), _pad_inputs()),
            _np_pad, _torch_pad),
    "flip": ((("GetItem",), lambda x, dim: x.flip(dim), _one_axis_inputs()), lambda x, dim: np.flip(x, dim),
             lambda T, x, dim: x.flip(dim)),
    "roll": ((("Roll",), lambda x, dim, shift: x.roll(shift, dim), _one_axis_inputs(shift=st.integers(-3, 3))),
             lambda x, dim, shift: np.roll(x, shift, dim), lambda T, x, dim, shift: x.roll(shift, dim)),
    "repeat": ((("Tile",), lambda x, reps: x.repeat(*reps),
                shapes(0, 3).flatmap(lambda s: st.tuples(st.tuples(arrays(s)), st.fixed_dictionaries(
                    {"reps": st.lists(st.integers(1, 3), min_size=max(len(s), 1), max_size=len(s) + 1).map(tuple)})))),
               lambda x, reps: np.tile(x, reps), lambda T, x, reps: x.repeat(*reps)),
    "repeat_interleave": ((("GetItem",), lambda x, dim, n: x.repeat_interleave(n, dim),
                           _one_axis_inputs(n=st.integers(1, 3))),
                          lambda x, dim, n: np.repeat(x, n, axis=dim),
                          lambda T, x, dim, n: x.repeat_interleave(n, dim)),
    "chunk_unflatten": ((("GetItem", "Reshape", "Concat"),
                         lambda x, dim, n: tinyllm.concat([c.unflatten(dim, (1, -1)).reshape(-1) for c in
                                                           x.chunk(n, dim)]), _one_axis_inputs(n=st.integers(1, 3))),
                        lambda x, dim, n: np.concatenate([c.reshape(-1) for c in np.array_split(
                            x, -(-x.shape[dim] // -(-x.shape[dim] // n)), dim)]),
                        lambda T, x, dim, n: T.cat([c.unflatten(dim, (1, -1)).reshape(-1) for c in x.chunk(n, dim)])),
    "tril": ((("Where",), lambda x, k: x.tril(k), shapes(2, 3).flatmap(lambda s: st.tuples(
        st.tuples(arrays(s)), st.fixed_dictionaries({"k": st.integers(-2, 2)})))),
             lambda x, k: np.tril(x, k), SAME),
    "triu": ((("Where",), lambda x, k: x.triu(k), shapes(2, 3).flatmap(lambda s: st.tuples(
        st.tuples(arrays(s)), st.fixed_dictionaries({"k": st.integers(-2, 2)})))),
             lambda x, k: np.triu(x, k), SAME),
    "diagonal": ((("Diagonal",), lambda x, off: x.diagonal(off, -2, -1), shapes(2, 3).flatmap(lambda s: st.tuples(
        st.tuples(arrays(s)), st.fixed_dictionaries({"off": st.integers(-1, 1)})))),
                 lambda x, off: np.diagonal(x, off, -2, -1), SAME),
    "diag": ((("Diag",), lambda x, k: x.diag(k), shapes(1, 1).flatmap(lambda s: st.tuples(
        st.tuples(arrays(s)), st.fixed_dictionaries({"k": st.integers(-1, 1)})))), lambda x, k: np.diag(x, k), SAME),
    "meshgrid": ((("Reshape", "Expand", "Mul"),
                  lambda a, b: (lambda g: g[0] * g[1])(tinyllm.meshgrid(a, b, indexing="xy")),
                  shapes(1, 1).flatmap(lambda s: st.tuples(st.tuples(arrays(s), arrays((s[0] + 1,))),
                                                           st.just({})))),
                 lambda a, b: (lambda g: g[0] * g[1])(np.meshgrid(a, b, indexing="xy")),
                 lambda T, a, b: (lambda g: g[0] * g[1])(T.meshgrid(a, b, indexing="xy"))),
    "cumsum": ((("Cumsum",), lambda x, dim: x.cumsum(dim), _one_axis_inputs()), lambda x, dim: np.cumsum(x, dim), SAME),
    "cumprod": ((("Cumprod",), lambda x, dim: x.cumprod(dim), _one_axis_inputs()),
                lambda x, dim: np.cumprod(x, dim), SAME),
    "logcumsumexp": ((("LogCumSumExp",), lambda x, dim: x.logcumsumexp(dim), _one_axis_inputs()),
                     _np_logcumsumexp, SAME),
    "sort": ((("Gather",), lambda x, dim, desc: x.sort(dim, descending=desc).values,
              _one_axis_inputs(distinct=True, desc=st.booleans())),
             lambda x, dim, desc: np.flip(np.sort(x, dim), dim) if desc else np.sort(x, dim),
             lambda T, x, dim, desc: x.sort(dim, descending=desc).values),
    "topk": ((("Gather",), lambda x, dim, k: x.topk(min(k, x.shape[dim]), dim).values,
              _one_axis_inputs(distinct=True, k=st.integers(1, 3))),
             lambda x, dim, k: np.take(np.flip(np.sort(x, dim), dim), np.arange(min(k, x.shape[dim])), dim),
             lambda T, x, dim, k: x.topk(min(k, x.shape[dim]), dim).values),
    "gather": ((("Gather",), lambda x, dim, index: x.gather(dim, index), _index_inputs("gather")),
               lambda x, dim, index: x[_along(index, dim)], SAME),
    "scatter_add": ((("ScatterAdd",), lambda x, src, dim, index: x.scatter_add(dim, index, src),
                     _index_inputs("scatter_add")), _np_scatter_add, SAME),
    "scatter": ((("Scatter",), lambda x, src, dim, index: x.scatter(dim, index, src), _index_inputs("scatter")),
                _np_scatter, SAME),
    "index_select": ((("GetItem",), lambda x, dim, index: x.index_select(dim, index),
                      _one_axis_inputs(index=hnp.arrays(np.int64, st.integers(0, 4), elements=st.integers(0, 0)))),
                     lambda x, dim, index: np.take(x, index, dim), SAME),
    "masked_select": ((("GetItem",), lambda x, mask: x.masked_select(mask),
                       shapes(1, 3).flatmap(lambda s: st.tuples(st.tuples(arrays(s)), st.fixed_dictionaries(
                           {"mask": hnp.arrays(np.bool_, s)})))), lambda x, mask: x[mask], SAME),
    "einsum": ((("Einsum",), lambda *xs, equation: tinyllm.einsum(equation, *xs), _einsum_inputs()),
               lambda *xs, equation: np.einsum(equation, *xs), lambda T, *xs, equation: T.einsum(equation, *xs)),
    "pow_positive": ((("Pow",), lambda x: x ** 0.5, shapes().flatmap(lambda s: st.tuples(st.tuples(arrays(s, POSITIVE)),
                                                                                      st.just({})))),
                     np.sqrt, SAME),
}

NUMPY = {name: ref for name, (_, ref, _) in CASES.items()}
TORCH = {name: ref for name, (_, _, ref) in CASES.items()}
