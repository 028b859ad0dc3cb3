"""Hypothesis strategies for the gradient-check suite.

Finite differences are only trustworthy where the function is smooth within
``eps`` of the point, so every value strategy here keeps away from kinks and
domain edges:

- ``SMOOTH``          anywhere in [-2, 2] (exp, tanh, add, mul, ...)
- ``POSITIVE``        [0.5, 2] (log, sqrt, the base of pow)
- ``AWAY_FROM_ZERO``  |x| in [0.1, 2] (abs, relu, a divisor)
- ``away_from(...)``  [-2, 2] but more than ``gap`` from given points (clip bounds)
- ``distinct_arrays`` values at least 0.02 apart (max, min, maximum, minimum: no ties)

Shapes run from 0-d to 4-d with sides of 1 to 3 (size-1 axes included, so
broadcasting over them is exercised), kept tiny because a gradient check costs
two forward passes per input element.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def floats(lo: float, hi: float) -> st.SearchStrategy:
    """Finite float64 values in [lo, hi]."""
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


SMOOTH = floats(-2.0, 2.0)
POSITIVE = floats(0.5, 2.0)
AWAY_FROM_ZERO = st.one_of(floats(0.1, 2.0), floats(-2.0, -0.1))


def away_from(*points: float, gap: float = 0.05, lo: float = -2.0, hi: float = 2.0) -> st.SearchStrategy:
    """Values in [lo, hi] farther than ``gap`` from every point (e.g. clip bounds)."""
    return floats(lo, hi).filter(lambda v: all(abs(v - p) > gap for p in points))


# ----------------------------------------------------------------------------- shapes

def side(lo: int = 1, hi: int = 3) -> st.SearchStrategy:
    return st.integers(lo, hi)


@st.composite
def shapes(draw: st.DrawFn, min_dims: int = 0, max_dims: int = 4, min_side: int = 1) -> tuple:
    """A shape of ``min_dims`` to ``max_dims`` axes; sides up to 3 (up to 2 in 4-d, to stay tiny)."""
    ndim = draw(st.integers(min_dims, max_dims))
    hi = 2 if ndim >= 4 else 3
    return tuple(draw(st.lists(side(min_side, hi), min_size=ndim, max_size=ndim)))


def broadcastable_shapes(num: int = 2, min_dims: int = 0, max_dims: int = 4) -> st.SearchStrategy:
    """``num`` shapes that broadcast together (size-1 and missing leading axes included)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=num, min_dims=min_dims, max_dims=max_dims,
                                             min_side=1, max_side=3).map(lambda b: b.input_shapes)


# ----------------------------------------------------------------------------- arrays

def arrays(shape: tuple, elements: st.SearchStrategy = SMOOTH) -> st.SearchStrategy:
    """float64 arrays of ``shape`` drawn from ``elements``."""
    return hnp.arrays(np.float64, shape, elements=elements)


def distinct_arrays(*shapes_: tuple) -> st.SearchStrategy:
    """float64 arrays of the given shapes whose values are all different from each
    other (at least 0.02 apart, across all the arrays), so max/min have no ties."""
    sizes = [math.prod(s) for s in shapes_]
    grid = st.integers(-150, 150).map(lambda i: i / 50)

    def cut(flat: np.ndarray) -> tuple:
        bounds = np.cumsum(sizes)[:-1]
        return tuple(part.reshape(s) for part, s in zip(np.split(flat, bounds), shapes_))

    return hnp.arrays(np.float64, sum(sizes), elements=grid, unique=True).map(cut)


def grid_arrays(shape: tuple, step: float = 2.0 ** -10) -> st.SearchStrategy:
    """float64 arrays on a grid of ``step`` within (-2, 2): exact in float16, as is x +- step."""
    return hnp.arrays(np.float64, shape, elements=st.integers(-1800, 1800).map(lambda i: i * step))


def index_arrays(n: int, max_dims: int = 2) -> st.SearchStrategy:
    """Integer arrays (0-d to ``max_dims``-d, maybe empty) of indices into an axis of
    length n; negative indices and duplicates included."""
    return hnp.arrays(np.int64, shapes(0, max_dims, min_side=0), elements=st.integers(-n, n - 1))


# ----------------------------------------------------------------------------- axes

@st.composite
def axes(draw: st.DrawFn, ndim: int, allow_none: bool = True) -> int | tuple | None:
    """An ``axis`` argument for a reduction over an ``ndim``-d array: None, an int
    (maybe negative) or a tuple of distinct axes (maybe empty or negative)."""
    options = ["none"] if allow_none or ndim == 0 else []
    if ndim:
        options += ["int", "tuple"]
    kind = draw(st.sampled_from(options))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
    return tuple(a - ndim if draw(st.booleans()) else a for a in chosen)


@st.composite
def one_axis(draw: st.DrawFn, ndim: int) -> int:
    """A single axis of an ``ndim``-d array (ndim >= 1), maybe negative."""
    return draw(st.integers(-ndim, ndim - 1))
