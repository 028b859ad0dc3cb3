"""Ops that rearrange elements: pad, flip, roll, repeat, repeat_interleave, chunk,
unflatten, tril/triu, diagonal/diag, meshgrid.

Where an op is a composition of the primitives in :mod:`.shape` (slicing,
concatenation, ``where``) it is written as one, and the engine differentiates
it; ``Roll``, ``Tile``, ``Diagonal`` and ``Diag`` have their own backward.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .axes import ShapeError, normalize_axis
from .shape import _shape_arg, broadcast_to, concat, getitem, permute, reshape, split, where


class Roll(Function):
    """y = x shifted cyclically by ``shifts`` along ``axes``;  dx = g shifted back."""

    def forward(self, x, shifts=(), axes=()):
        self.shifts, self.axes = shifts, axes
        return get_array_module(x).roll(x, shifts, axes)

    def backward(self, g):
        return (get_array_module(g).roll(g, tuple(-s for s in self.shifts), self.axes),)


class Tile(Function):
    """y = x repeated ``reps[i]`` times along axis i (PyTorch's ``repeat``);
    dx = g summed over the copies: g viewed as (r0, n0, r1, n1, ...) summed over the r axes."""

    def forward(self, x, reps=()):
        self.shape = (1,) * (len(reps) - x.ndim) + x.shape
        return get_array_module(x).tile(x.reshape(self.shape), reps)

    def backward(self, g):
        split_shape = [n for r, s in zip(g.shape, self.shape) for n in (r // s, s)]
        summed = g.reshape(split_shape).sum(axis=tuple(range(0, len(split_shape), 2)))
        return (summed,)


class Diagonal(Function):
    """y[..., i] = x[..., i, i + offset] over axes (a1, a2) (moved last);  dx = g written back there."""

    def forward(self, x, offset=0, a1=0, a2=1):
        self.shape, self.offset, self.a1, self.a2 = x.shape, offset, a1, a2
        return get_array_module(x).diagonal(x, offset, a1, a2).copy()

    def backward(self, g):
        xp = get_array_module(g)
        dx = xp.zeros(self.shape, dtype=g.dtype)
        view = xp.moveaxis(dx, (self.a1, self.a2), (-2, -1))        # a view: writes land in dx
        n = g.shape[-1]
        rows = xp.arange(n) + max(-self.offset, 0)
        view[..., rows, rows + self.offset] = g
        return (dx,)


class Diag(Function):
    """Y = the matrix with v on diagonal k (zeros elsewhere);  dv = the k-th diagonal of G."""

    def forward(self, v, k=0):
        self.k = k
        return get_array_module(v).diag(v, k)

    def backward(self, g):
        return (get_array_module(g).diagonal(g, self.k).copy(),)


# ----------------------------------------------------------------------------- public functions

def flip(x: Tensor, dims: Any) -> Tensor:
    """Reverse the order of elements along ``dims``."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    axes = {normalize_axis(d, x.ndim, "flip", x.shape) for d in dims}
    if not x.ndim:
        return x
    return getitem(x, tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(x.ndim)))


def roll(x: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    """Shift elements cyclically; without ``dims`` over the flattened tensor (shape kept)."""
    if dims is None:
        return reshape(roll(reshape(x, -1), shifts, 0), x.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
    axes = tuple(normalize_axis(d, x.ndim, "roll", x.shape) for d in dims)
    return Roll.apply(x, shifts=shifts, axes=axes)


def repeat(x: Tensor, *sizes: Any) -> Tensor:
    """PyTorch's ``repeat`` (NumPy's ``tile``): the whole tensor repeated ``sizes[i]`` times along axis i."""
    reps = _shape_arg(sizes)
    if len(reps) < x.ndim:
        raise ShapeError(f"repeat: {len(reps)} repeat counts for a tensor of shape {x.shape} (need >= {x.ndim})")
    if any(r < 0 for r in reps):
        raise ValueError(f"repeat: counts must be >= 0, got {reps}")
    return Tile.apply(x, reps=tuple(int(r) for r in reps))


def repeat_interleave(x: Tensor, repeats: Any, dim: int | None = None) -> Tensor:
    """Each element repeated ``repeats`` times (an int, or one count per element) along ``dim``
    (over the flattened tensor without it)."""
    if dim is None:
        x, dim = reshape(x, -1), 0
    d = normalize_axis(dim, x.ndim, "repeat_interleave", x.shape)
    counts = repeats.data if isinstance(repeats, Tensor) else repeats
    xp = get_array_module(x.data)
    index = xp.repeat(xp.arange(x.shape[d]), xp.asarray(counts))
    return getitem(x, (slice(None),) * d + (index,))


def chunk(x: Tensor, chunks: int, dim: int = 0) -> list:
    """At most ``chunks`` pieces of ceil(n / chunks) along ``dim`` (the last may be smaller)."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = x.shape[normalize_axis(dim, x.ndim, "chunk", x.shape)]
    return split(x, max(math.ceil(n / chunks), 1), dim)


def unflatten(x: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    """Split axis ``dim`` into axes of ``sizes`` (one may be -1)."""
    d = normalize_axis(dim, x.ndim, "unflatten", x.shape)
    return reshape(x, x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


def _triangle(x: Tensor, diagonal: int, lower: bool, name: str) -> Tensor:
    if x.ndim < 2:
        raise ValueError(f"{name} needs at least 2 dimensions, got shape {x.shape}")
    xp = get_array_module(x.data)
    n, m = x.shape[-2:]
    keep = xp.tri(n, m, diagonal, dtype=bool)
    return where(keep if lower else ~xp.tri(n, m, diagonal - 1, dtype=bool), x, 0)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two axes (j <= i + diagonal); zeros above."""
    return _triangle(x, diagonal, True, "tril")


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two axes (j >= i + diagonal); zeros below."""
    return _triangle(x, diagonal, False, "triu")


def diagonal(x: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal over axes ``dim1``, ``dim2`` (offset above it when positive), as a new last axis."""
    a1, a2 = (normalize_axis(d, x.ndim, "diagonal", x.shape) for d in (dim1, dim2))
    if a1 == a2:
        raise ValueError(f"diagonal: dim1 and dim2 are the same axis ({a1})")
    return Diagonal.apply(x, offset=offset, a1=a1, a2=a2)


def diag(x: Tensor, diagonal: int = 0) -> Tensor:
    """A 1-d tensor: the matrix with it on diagonal ``diagonal``; a 2-d one: that diagonal."""
    if x.ndim == 1:
        return Diag.apply(x, k=diagonal)
    if x.ndim == 2:
        return Diagonal.apply(x, offset=diagonal, a1=0, a2=1)
    raise ValueError(f"diag needs a 1-d or 2-d tensor, got shape {x.shape}")


def meshgrid(*tensors: Any, indexing: str = "ij") -> list:
    """Coordinate grids of 1-d tensors: ``indexing="ij"`` (matrix, PyTorch's default) or "xy"."""
    ts = list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else list(tensors)
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    for t in ts:
        if t.ndim > 1:
            raise ValueError(f"meshgrid takes 1-d tensors, got shape {t.shape}")
    axes = list(range(len(ts)))
    if indexing == "xy" and len(ts) >= 2:               # x varies along the columns, y along the rows
        axes[0], axes[1] = 1, 0
    grid = [0] * len(ts)
    for t, a in zip(ts, axes):
        grid[a] = t.size
    out = []
    for t, a in zip(ts, axes):
        shape = [1] * len(ts)
        shape[a] = t.size
        out.append(broadcast_to(reshape(t, tuple(shape)), tuple(grid)))
    return out


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """PyTorch's ``F.pad``: ``pad = (left, right)`` for the last axis, then
    ``(left, right)`` of the one before, and so on. ``mode`` is "constant" (``value``),
    "reflect" (mirrored without the edge: ``d c b | a b c d | c b a``) or
    "replicate" (the edge repeated). Negative amounts crop (constant mode)."""
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: {tuple(pad)} needs an even length of at most 2 x {x.ndim} for shape {x.shape}")
    if mode not in ("constant", "reflect", "replicate"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect' or 'replicate', got {mode!r}")
    xp = get_array_module(x.data)
    for i in range(len(pad) // 2):
        axis, left, right = x.ndim - 1 - i, int(pad[2 * i]), int(pad[2 * i + 1])
        n = x.shape[axis]
        if mode == "constant" and (left < 0 or right < 0):
            x = getitem(x, (slice(None),) * axis + (slice(max(-left, 0), n - max(-right, 0)),))
            left, right, n = max(left, 0), max(right, 0), x.shape[axis]
        if mode == "reflect" and (left >= n or right >= n):
            raise ValueError(f"pad: reflect padding of {left}, {right} needs more than that many elements "
                             f"along dim {axis} of shape {x.shape}")
        if mode != "constant" and n == 0:
            raise ValueError(f"pad: {mode} padding of an empty dim {axis}")
        pieces = []
        for amount, side in ((left, "left"), (right, "right")):
            if amount <= 0:
                pieces.append(None)
                continue
            if mode == "constant":
                shape = x.shape[:axis] + (amount,) + x.shape[axis + 1:]
                pieces.append(Tensor._wrap(xp.full(shape, value, dtype=x.dtype)))
                continue
            if mode == "reflect":
                idx = np.arange(amount, 0, -1) if side == "left" else np.arange(n - 2, n - 2 - amount, -1)
            else:
                idx = np.zeros(amount, dtype=np.int64) if side == "left" else np.full(amount, n - 1)
            pieces.append(getitem(x, (slice(None),) * axis + (xp.asarray(idx),)))
        parts = [p for p in (pieces[0], x, pieces[1]) if p is not None]
        x = concat(parts, axis) if len(parts) > 1 else x
    return x


__all__ = ["chunk", "diag", "diagonal", "flip", "meshgrid", "pad", "repeat", "repeat_interleave", "roll",
           "tril", "triu", "unflatten", "unbind", "narrow", "movedim"]


def unbind(x: Tensor, dim: int = 0) -> tuple:
    """The slices of ``x`` along ``dim``, each without that axis."""
    d = normalize_axis(dim, x.ndim, "unbind", x.shape)
    if x.ndim == 0:
        raise ValueError("unbind: a 0-d tensor has no axis")
    return tuple(getitem(x, (slice(None),) * d + (i,)) for i in range(x.shape[d]))


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    """``length`` elements of ``x`` from ``start`` along ``dim``."""
    d = normalize_axis(dim, x.ndim, "narrow", x.shape)
    n = x.shape[d]
    start = start + n if start < 0 else start
    if not (0 <= start <= n and 0 <= length <= n - start):
        raise IndexError(f"narrow: start {start} and length {length} do not fit {n} elements of dim {d}")
    return getitem(x, (slice(None),) * d + (slice(start, start + length),))


def movedim(x: Tensor, source: Any, destination: Any) -> Tensor:
    """Move axes ``source`` to positions ``destination``; the others keep their order."""
    src = [normalize_axis(s, x.ndim, "movedim", x.shape) for s in ((source,) if isinstance(source, int) else source)]
    dst = [normalize_axis(s, x.ndim, "movedim", x.shape)
           for s in ((destination,) if isinstance(destination, int) else destination)]
    if len(src) != len(dst):
        raise ValueError(f"movedim: {len(src)} source dims for {len(dst)} destinations")
    order = [a for a in range(x.ndim) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(x, *order) if x.ndim else x
