"""Embedding lookup as one graph node."""
from __future__ import annotations

from typing import Any

from .. import backend
from ..backend import get_array_module
from ..tensor import Function, Tensor


class Embedding(Function):
    """y[...] = W[idx[...]] (row lookup);  dW = scatter-add of g into the rows used
    (rows used twice get both gradients; the ``padding_idx`` row gets none).
    The formula is all there is: indexing and ``backend.scatter_add`` are the
    array library's own fast paths, so there is no kernel to choose."""

    def forward(self, w, idx=None, padding_idx=None):
        self.shape, self.idx, self.padding_idx = w.shape, idx, padding_idx
        return w[idx]

    def backward(self, g):
        dw = backend.scatter_add(self.shape, self.idx, g)
        if self.padding_idx is not None:
            dw[self.padding_idx] = 0
        return (dw,)


def embedding(weight: Tensor, idx: Any, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (V, C) picked by the integer array ``idx`` (...) -> (..., C)."""
    idx = idx.data if isinstance(idx, Tensor) else get_array_module(weight.data).asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding indices must be integers, got {idx.dtype}")
    if idx.size and backend.is_cupy_array(idx):   # one reduction; see backend.check about waiting
        backend.check((idx < 0) | (idx >= weight.shape[0]), f"embedding index out of range [0, {weight.shape[0]})")
    elif idx.size and (int(idx.min()) < 0 or int(idx.max()) >= weight.shape[0]):
        raise IndexError(f"embedding index out of range [0, {weight.shape[0]}): "
                         f"min {int(idx.min())}, max {int(idx.max())}")
    return Embedding.apply(weight, idx=idx, padding_idx=padding_idx)
