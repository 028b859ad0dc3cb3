"""Reductions over an axis (int, tuple or None) with ``keepdims``.

Each backward first restores the reduced axes as size-1 axes
(:func:`_keep`), so the gradient broadcasts back over the input.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .axes import normalize_axes, normalize_axis, pick
from .dtypes import cast, float_input
from .elementwise import abs as abs_, maximum, minimum, sqrt
from .index import gather
from .shape import squeeze


def _axes(axis: Any, ndim: int, op: str = "reduction", shape: tuple | None = None) -> tuple:
    """``axis`` as a sorted tuple of non-negative ints (None means all axes; see :mod:`.axes`)."""
    return normalize_axes(axis, ndim, op, shape)


def _keep(g: Any, axes: tuple, keepdims: bool) -> Any:
    """Re-insert the reduced axes as size 1 so ``g`` broadcasts against the input."""
    if keepdims:
        return g
    shape = list(g.shape)
    for a in axes:
        shape.insert(a, 1)
    return g.reshape(shape)


def _count(shape: tuple, axes: tuple) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


class Sum(Function):
    """y = sum_i x_i over ``axis``;  dx_i = g (broadcast back)."""

    def forward(self, x, axis=None, keepdims=False, dtype=None):
        self.shape, self.axes, self.keepdims = x.shape, _axes(axis, x.ndim, "sum", x.shape), keepdims
        return x.sum(axis=self.axes, keepdims=keepdims, dtype=dtype)

    def backward(self, g):
        xp = get_array_module(g)
        return (xp.broadcast_to(_keep(g, self.axes, self.keepdims), self.shape),)


class Mean(Function):
    """y = (1/N) sum_i x_i over ``axis``;  dx_i = g / N."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = x.shape, _axes(axis, x.ndim, "mean", x.shape), keepdims
        if _count(x.shape, self.axes) == 0:   # the mean of nothing is nan (without NumPy's warning)
            return get_array_module(x).full(x.sum(axis=self.axes, keepdims=keepdims).shape, np.nan, dtype=x.dtype)
        return x.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        n = _count(self.shape, self.axes) or 1   # no elements: an empty gradient either way
        return (xp.broadcast_to(_keep(g, self.axes, self.keepdims) / n, self.shape),)


def _check_nonempty(name: str, shape: tuple, axes: tuple, everything: bool) -> None:
    """An op with no identity (max, argmax) over a side of length 0 has no answer: PyTorch's
    ``RuntimeError`` over all elements, ``IndexError`` over a named dim (other sides may be 0)."""
    if everything and 0 in shape:
        raise RuntimeError(f"{name} of an empty tensor (shape {shape}): give the dim to reduce")
    empty = [a for a in axes if shape[a] == 0]
    if empty:
        raise IndexError(f"{name}: dim {empty[0]} of shape {shape} has size 0, there is nothing to reduce")


class Max(Function):
    """y = max_i x_i over ``axis``;  dx_i = g at the maximum (split evenly between ties)."""

    pick = staticmethod(lambda x, axes: x.max(axis=axes, keepdims=True))

    def forward(self, x, axis=None, keepdims=False):
        name = type(self).__name__.lower()
        self.axes, self.keepdims = _axes(axis, x.ndim, name, x.shape), keepdims
        _check_nonempty(name, x.shape, self.axes, axis is None)
        y = self.pick(x, self.axes)
        self.winners = x == y
        return y if keepdims else y.reshape([n for i, n in enumerate(y.shape) if i not in self.axes])

    def backward(self, g):
        share = self.winners / self.winners.sum(axis=self.axes, keepdims=True)
        return (_keep(g, self.axes, self.keepdims) * share.astype(g.dtype, copy=False),)


class Min(Max):
    """y = min_i x_i over ``axis``;  dx_i = g at the minimum (split evenly between ties)."""

    pick = staticmethod(lambda x, axes: x.min(axis=axes, keepdims=True))


class Var(Function):
    """y = sum_i (x_i - mean)^2 / (N - ddof);  dx_i = g * 2 (x_i - mean) / (N - ddof)."""

    def forward(self, x, axis=None, keepdims=False, ddof=0):
        self.axes, self.keepdims = _axes(axis, x.ndim, "var", x.shape), keepdims
        n = _count(x.shape, self.axes)
        self.denom = n - ddof if n > ddof else float("nan")   # too few elements: nan, as in PyTorch
        with np.errstate(invalid="ignore", divide="ignore"):
            self.centered = x - x.sum(axis=self.axes, keepdims=True) / n
            return (self.centered * self.centered).sum(axis=self.axes, keepdims=keepdims) / self.denom

    def backward(self, g):
        return (_keep(g, self.axes, self.keepdims) * (2.0 / self.denom) * self.centered,)


class Prod(Function):
    """y = prod_i x_i over ``axis``;  dx_i = g * prod_{j != i} x_j.

    The product of the others is computed without dividing by x_i (which may be
    0): with the reduced axes moved last and flattened to one of length N, it is
    the exclusive cumulative product from the left times the one from the right.
    """

    def forward(self, x, axis=None, keepdims=False):
        self.x, self.axes, self.keepdims = x, _axes(axis, x.ndim, "prod", x.shape), keepdims
        return x.prod(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        x, axes = self.x, self.axes
        kept = [a for a in range(x.ndim) if a not in axes]
        moved = x.transpose(kept + list(axes)).reshape(*[x.shape[a] for a in kept], -1)    # (..., N)
        ones = xp.ones(moved.shape[:-1] + (1,), dtype=x.dtype)
        left = xp.cumprod(xp.concatenate([ones, moved[..., :-1]], axis=-1), axis=-1)
        right = xp.cumprod(xp.concatenate([ones, moved[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
        others = (left * right).reshape([x.shape[a] for a in kept] + [x.shape[a] for a in axes])
        others = others.transpose(np.argsort(kept + list(axes)))                           # back to x's order
        return (_keep(g, axes, self.keepdims) * others,)


class Norm(Function):
    """y = (sum_i |x_i|^p)^(1/p) over ``axis`` (p >= 1);  dx_i = g * sign(x_i) |x_i|^(p-1) / y^(p-1).

    Where y = 0 the gradient is 0 (PyTorch's choice of subgradient).
    """

    def forward(self, x, p=2.0, axis=None, keepdims=False):
        xp = get_array_module(x)
        self.x, self.p = x, p
        self.axes, self.keepdims = _axes(axis, x.ndim, "norm", x.shape), keepdims
        a = xp.abs(x)
        self.y = xp.sqrt((x * x).sum(axis=self.axes, keepdims=True)) if p == 2 else \
            (a ** p).sum(axis=self.axes, keepdims=True) ** (1.0 / p)
        return self.y if keepdims else self.y.reshape([n for i, n in enumerate(self.y.shape) if i not in self.axes])

    def backward(self, g):
        xp = get_array_module(g)
        x, y, p = self.x, self.y, self.p
        safe = xp.where(y == 0, 1, y)
        d = x / safe if p == 2 else xp.sign(x) * (xp.abs(x) / safe) ** (p - 1)
        return (_keep(g, self.axes, self.keepdims) * xp.where(y == 0, 0, d),)


# ----------------------------------------------------------------------------- public functions

class MaxMin(NamedTuple):
    """What ``max(x, dim)`` and ``min(x, dim)`` return, as in PyTorch: values and their indices."""

    values: Tensor
    indices: Tensor


def _keepdims(keepdim: bool, keepdims: bool | None) -> bool:
    return keepdim if keepdims is None else keepdims


def sum(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: bool | None = None,  # noqa: A001
        dtype: Any = None) -> Tensor:
    """Sum over ``dim`` (int, tuple, or None for all); ``dtype`` sets the accumulator and result type."""
    dtype = (np.dtype(np.int64) if x.dtype.kind in "bu" else None) if dtype is None else np.dtype(dtype)
    if dtype is not None and dtype.kind == "f" and x.dtype.kind != "f":
        x, dtype = cast(x, dtype), None
    return Sum.apply(x, axis=pick(dim, axis), keepdims=_keepdims(keepdim, keepdims), dtype=dtype)


def mean(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
         keepdims: bool | None = None) -> Tensor:
    """Arithmetic mean over ``dim`` (an integer tensor gives the default float dtype)."""
    return Mean.apply(float_input(x), axis=pick(dim, axis), keepdims=_keepdims(keepdim, keepdims))


def amax(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
         keepdims: bool | None = None) -> Tensor:
    """Largest value over ``dim`` (int, tuple or None); ties share the gradient evenly."""
    return Max.apply(x, axis=pick(dim, axis), keepdims=_keepdims(keepdim, keepdims))


def amin(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
         keepdims: bool | None = None) -> Tensor:
    """Smallest value over ``dim`` (int, tuple or None); ties share the gradient evenly."""
    return Min.apply(x, axis=pick(dim, axis), keepdims=_keepdims(keepdim, keepdims))


def _max_or_min(x: Tensor, dim: Any, keepdim: bool, axis: Any, keepdims: bool | None, big: bool) -> Any:
    if isinstance(dim, Tensor):                                   # torch.max(a, b): elementwise
        return (maximum if big else minimum)(x, dim)
    reduce = amax if big else amin
    if dim is None or axis is not None:                           # all axes, or NumPy's axis=: the values
        return reduce(x, dim, keepdim, axis=axis, keepdims=keepdims)
    keep = _keepdims(keepdim, keepdims)                           # PyTorch's dim=: (values, indices)
    if x.ndim == 0:
        return MaxMin(reduce(x, dim, keep), (argmax if big else argmin)(x, dim, keep))
    d = normalize_axis(dim, x.ndim, "max" if big else "min", x.shape)
    _check_nonempty("max" if big else "min", x.shape, (d,), False)
    where = (argmax if big else argmin)(x, d, True)               # the first winner takes the whole gradient
    values = gather(x, d, where)
    return MaxMin(values, where) if keep else MaxMin(squeeze(values, d), squeeze(where, d))


def max(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,  # noqa: A001
        keepdims: bool | None = None) -> Any:
    """PyTorch's ``max``: of everything (a 0-d tensor); over one ``dim``, the pair
    ``(values, indices)``; with another tensor, the elementwise maximum.
    NumPy's ``axis=`` (int or tuple) gives the values alone."""
    return _max_or_min(x, dim, keepdim, axis, keepdims, big=True)


def min(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,  # noqa: A001
        keepdims: bool | None = None) -> Any:
    """PyTorch's ``min``: see :func:`max`."""
    return _max_or_min(x, dim, keepdim, axis, keepdims, big=False)


def var(x: Tensor, dim: Any = None, keepdim: bool = False, *, correction: int | None = None,
        unbiased: bool | None = None, axis: Any = None, keepdims: bool | None = None,
        ddof: int | None = None) -> Tensor:
    """Variance over ``dim``: sum (x - mean)^2 / (N - correction).

    PyTorch's defaults with PyTorch's names (``correction=1``, the sample
    variance; ``unbiased=False`` means 0); NumPy's with NumPy's (``axis=`` or
    ``ddof=`` alone: ``ddof=0``, the population variance).
    """
    if unbiased is not None:
        correction = int(unbiased)
    numpy_style = axis is not None or ddof is not None
    ddof = pick(correction, ddof, "correction")
    if ddof is None:
        ddof = 0 if numpy_style else 1
    return Var.apply(float_input(x), axis=pick(dim, axis), keepdims=_keepdims(keepdim, keepdims), ddof=ddof)


def std(x: Tensor, dim: Any = None, keepdim: bool = False, *, correction: int | None = None,
        unbiased: bool | None = None, axis: Any = None, keepdims: bool | None = None,
        ddof: int | None = None) -> Tensor:
    """Standard deviation: the square root of :func:`var` (same arguments and defaults)."""
    return sqrt(var(x, dim, keepdim, correction=correction, unbiased=unbiased, axis=axis, keepdims=keepdims,
                    ddof=ddof))


def prod(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: bool | None = None,
         dtype: Any = None) -> Tensor:
    """Product over ``dim``; the gradient is exact where inputs are 0."""
    if dtype is not None:
        x = cast(x, dtype)
    return Prod.apply(x, axis=pick(dim, axis), keepdims=_keepdims(keepdim, keepdims))


def norm(x: Tensor, p: Any = 2, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
         keepdims: bool | None = None) -> Tensor:
    """The p-norm over ``dim`` (all elements by default): p >= 1, ``inf``, ``-inf``, or ``"fro"`` (= 2)."""
    axis, keep = pick(dim, axis), _keepdims(keepdim, keepdims)
    x = float_input(x)
    if p == "fro":
        p = 2
    if p in (np.inf, -np.inf):
        return (amax if p > 0 else amin)(abs_(x), axis, keep)
    if isinstance(p, str) or not p >= 1:
        raise ValueError(f"norm: p must be >= 1, inf, -inf or 'fro', got {p!r}")
    return Norm.apply(x, p=float(p), axis=axis, keepdims=keep)


def _bool_reduce(x: Tensor, dim: Any, keepdim: bool, axis: Any, keepdims: bool | None, name: str) -> Tensor:
    axes = _axes(pick(dim, axis), x.ndim, name, x.shape)
    return Tensor._wrap(getattr(x.data.astype(bool, copy=False), name)(axis=axes,
                                                                      keepdims=_keepdims(keepdim, keepdims)))


def any(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,  # noqa: A001
        keepdims: bool | None = None) -> Tensor:
    """Whether any element over ``dim`` is nonzero (a boolean tensor; no gradient)."""
    return _bool_reduce(x, dim, keepdim, axis, keepdims, "any")


def all(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,  # noqa: A001
        keepdims: bool | None = None) -> Tensor:
    """Whether every element over ``dim`` is nonzero (a boolean tensor; no gradient)."""
    return _bool_reduce(x, dim, keepdim, axis, keepdims, "all")


def _arg(x: Tensor, dim: Any, keepdim: bool, axis: Any, keepdims: bool | None, name: str) -> Tensor:
    """argmax/argmin: over everything (flat index) or one axis, int64, no gradient."""
    dim, keep = pick(dim, axis), _keepdims(keepdim, keepdims)
    if dim is None:
        _check_nonempty(name, x.shape, (), True)
        out = getattr(x.data, name)()
        return Tensor._wrap(out.reshape((1,) * x.ndim) if keep else out)
    if x.ndim == 0:
        normalize_axis(dim, 0, name, x.shape)
        return Tensor._wrap(get_array_module(x.data).zeros((), dtype=np.int64))
    d = normalize_axis(dim, x.ndim, name, x.shape)
    _check_nonempty(name, x.shape, (d,), False)
    return Tensor._wrap(getattr(x.data, name)(axis=d, keepdims=keep))


def argmax(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
           keepdims: bool | None = None) -> Tensor:
    """Index of the largest value (over everything, flattened, or along ``dim``); not differentiable."""
    return _arg(x, dim, keepdim, axis, keepdims, "argmax")


def argmin(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
           keepdims: bool | None = None) -> Tensor:
    """Index of the smallest value; see :func:`argmax`."""
    return _arg(x, dim, keepdim, axis, keepdims, "argmin")
