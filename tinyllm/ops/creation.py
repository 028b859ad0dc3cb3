"""Making tensors: zeros, ones, full, empty, arange, linspace, eye, random ones, and ``*_like``.

PyTorch's signatures and defaults: sizes as ``zeros(2, 3)`` or ``zeros((2, 3))``;
``dtype`` (floating values default to the default dtype, float32; ``arange`` of
ints gives int64); ``requires_grad`` (floating dtypes only). The tensors live on
the active backend. Random draws come from the generator that
``tinyllm.manual_seed`` seeds (:func:`tinyllm.backend.rng`, NumPy's PCG64
whatever the backend, as ``nn.init`` does), so a seed gives the same numbers
on CPU and GPU.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor


def _size(size: tuple) -> tuple:
    """``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` alike, as non-negative ints."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = tuple(int(n) for n in size)
    if any(n < 0 for n in out):
        raise ValueError(f"a size cannot be negative, got {out}")
    return out


def _dtype(dtype: Any, floating: bool = True) -> np.dtype:
    return backend.get_default_dtype() if dtype is None and floating else np.dtype(dtype)


def _make(arr: Any, requires_grad: bool) -> Tensor:
    """A new leaf around ``arr`` (moved to the active backend)."""
    return Tensor(backend.asarray(arr), requires_grad=requires_grad)


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    return _make(backend.xp().zeros(_size(size), dtype=_dtype(dtype)), requires_grad)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    return _make(backend.xp().ones(_size(size), dtype=_dtype(dtype)), requires_grad)


def empty(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor whose values are whatever the memory held (fill it before reading)."""
    return _make(backend.xp().empty(_size(size), dtype=_dtype(dtype)), requires_grad)


def full(size: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``fill_value``; its dtype by default follows the value (bool, int64 or the default float)."""
    if dtype is None:
        dtype = bool if isinstance(fill_value, bool) else np.int64 if isinstance(fill_value, int) else None
    return _make(backend.xp().full(_size((size,)), fill_value, dtype=_dtype(dtype)), requires_grad)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``start, start + step, ...`` below ``end`` (``arange(n)`` is 0..n-1); int64 when all
    the arguments are ints, else the default float dtype."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must not be 0")
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, (int, np.integer)) for v in (start, end, step)) else None
    return _make(backend.xp().arange(start, end, step, dtype=_dtype(dtype)), requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    if steps < 0:
        raise ValueError(f"linspace: steps must be >= 0, got {steps}")
    return _make(backend.xp().linspace(start, end, int(steps), dtype=_dtype(dtype)), requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """The n x m identity (ones on the diagonal)."""
    return _make(backend.xp().eye(n, m, dtype=_dtype(dtype)), requires_grad)


def _random_dtype(dtype: Any) -> np.dtype:
    dt = _dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"rand/randn draw floating values, got dtype {dt}")
    return dt


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    dt = _random_dtype(dtype)
    return _make(backend.rng(np).random(_size(size)).astype(dt), requires_grad)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    dt = _random_dtype(dtype)
    return _make(backend.rng(np).standard_normal(_size(size)).astype(dt), requires_grad)


def randint(low: int, high: int | None = None, size: Any = None, dtype: Any = np.int64) -> Tensor:
    """Integers drawn uniformly from [low, high) (``randint(high, size)`` starts at 0)."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint needs a size: randint(low, high, size) or randint(high, size)")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    return _make(backend.rng(np).integers(low, high, _size((size,))).astype(np.dtype(dtype)), False)


def randperm(n: int, dtype: Any = np.int64) -> Tensor:
    """A random permutation of 0..n-1."""
    return _make(backend.rng(np).permutation(int(n)).astype(np.dtype(dtype)), False)


def _like(x: Tensor, dtype: Any) -> tuple:
    return x.shape, (x.dtype if dtype is None else np.dtype(dtype))


def zeros_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros of ``x``'s shape and dtype."""
    shape, dt = _like(x, dtype)
    return zeros(shape, dtype=dt, requires_grad=requires_grad)


def ones_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones of ``x``'s shape and dtype."""
    shape, dt = _like(x, dtype)
    return ones(shape, dtype=dt, requires_grad=requires_grad)


def empty_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uninitialized values of ``x``'s shape and dtype."""
    shape, dt = _like(x, dtype)
    return empty(shape, dtype=dt, requires_grad=requires_grad)


def full_like(x: Tensor, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` in ``x``'s shape and dtype."""
    shape, dt = _like(x, dtype)
    return full(shape, fill_value, dtype=dt, requires_grad=requires_grad)


def rand_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) of ``x``'s shape (and floating dtype)."""
    shape, dt = _like(x, dtype)
    return rand(shape, dtype=dt, requires_grad=requires_grad)


def randn_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples of ``x``'s shape (and floating dtype)."""
    shape, dt = _like(x, dtype)
    return randn(shape, dtype=dt, requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor over ``array`` itself, dtype kept, memory shared (PyTorch's ``from_numpy``)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array)


def is_tensor(obj: Any) -> bool:
    """Whether ``obj`` is a tinyllm Tensor."""
    return isinstance(obj, Tensor)


def numel(x: Tensor) -> int:
    """The number of elements of ``x``."""
    return x.numel()
