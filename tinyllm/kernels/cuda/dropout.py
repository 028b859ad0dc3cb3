"""Dropout with its mask drawn inside the kernel from the counter-based generator.
Formula: :class:`tinyllm.functional.dropout.Dropout`; the generator: ``backend.CounterRNG``."""
from __future__ import annotations

from typing import Any

from ... import backend
from . import NO_FMA, cached, cp


def dropout(x: Any, p: float, key: int, offset: int) -> Any:
    """x * keep / (1 - p) with keep = (uniform number i of the stream at ``offset``) >= p.

    The mask is never stored: backward calls this again on the gradient with the
    same key and offset, which draws the same numbers (they are a hash of the
    position), so dx = g * keep / (1 - p) costs no memory for the mask.
    """
    k = cached("dropout", lambda cp: cp.ElementwiseKernel(
        "T x, T p, T scale, uint64 key, uint64 offset", "T y",
        backend.SPLITMIX_UNIFORM + "y = u >= p ? x * scale : (T)0;", "tinyllm_dropout", options=NO_FMA))
    t = x.dtype.type
    return k(x, t(p), t(1.0 / (1.0 - p)), cp().uint64(key), cp().uint64(offset % (1 << 64)))


class Dropout:
    """Dropout of CuPy arrays: the same numbers as ``backend.rng().random`` would draw."""

    def forward(self, x: Any, p: float) -> Any:
        self.p, self.stream = p, backend.rng(cp()).reserve(x.size)
        return dropout(x, p, *self.stream)

    def backward(self, g: Any) -> Any:
        return dropout(g, self.p, *self.stream)                        # the same numbers: the same mask
