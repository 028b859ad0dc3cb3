"""Scaled dot-product attention over heads, as one graph node (:class:`Attention`)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend, kernels
from ..backend import get_array_module
from ..tensor import Function, Tensor
from .dropout import _uniform_dtype

_MASK_CACHE: dict = {}


def causal_bias(tq: int, tk: int, dtype: Any, xp: Any) -> Any:
    """(tq, tk) additive mask: 0 where query i may see key j (j <= i + tk - tq), -inf elsewhere.

    With a KV cache the tq queries are the LAST tq positions of the tk keys.
    """
    key = (tq, tk, str(dtype), xp.__name__)
    bias = _MASK_CACHE.get(key)
    if bias is None:
        allowed = xp.tril(xp.ones((tq, tk), dtype=bool), k=tk - tq)
        bias = xp.where(allowed, 0.0, -xp.inf).astype(dtype)
        if len(_MASK_CACHE) > 64:
            _MASK_CACHE.clear()
        _MASK_CACHE[key] = bias
    return bias


class AttentionReference:
    """The formula, for NumPy and CuPy alike; saves P and the dropout scale."""

    def forward(self, q: Any, k: Any, v: Any, scale: float, causal: bool, mask: Any, dropout_p: float,
                out: Any = None) -> Any:
        xp = get_array_module(q)
        self.q, self.k, self.v, self.scale = q, k, v, scale
        s = q @ k.swapaxes(-1, -2) * scale                                  # (..., Tq, Tk)
        if causal:
            s = s + causal_bias(s.shape[-2], s.shape[-1], s.dtype, xp)
        if mask is not None:
            s = xp.where(mask, s, -xp.inf)
        m = s.max(axis=-1, keepdims=True)
        e = xp.exp(s - xp.where(xp.isfinite(m), m, 0))                       # a row with no key: all 0 ...
        sums = e.sum(axis=-1, keepdims=True)
        self.p = e / xp.where(sums == 0, 1, sums)                            # ... and stays 0
        self.drop = None
        if dropout_p > 0.0:
            keep = backend.rng(xp).random(self.p.shape, dtype=_uniform_dtype(self.p.dtype)) >= dropout_p
            self.drop = keep * self.p.dtype.type(1.0 / (1.0 - dropout_p))
        self.pd = self.p if self.drop is None else self.p * self.drop         # P'
        return self.pd @ v                                                   # (..., Tq, dv)

    def weights(self) -> Any:
        return self.p

    def backward(self, g: Any, needs_grad: tuple, out: tuple | None = None) -> tuple:
        """(dQ, dK, dV), None where ``needs_grad`` says no. (``out``, arrays a kernel may write
        the results into, is not used here: the caller copies what it gets.)"""
        dv = self.pd.swapaxes(-1, -2) @ g if needs_grad[2] else None
        dp = g @ self.v.swapaxes(-1, -2)                                     # dP'
        if self.drop is not None:
            dp = dp * self.drop                                              # dP
        ds = self.p * (dp - (dp * self.p).sum(axis=-1, keepdims=True)) * self.scale
        dq = ds @ self.k if needs_grad[0] else None
        dk = ds.swapaxes(-1, -2) @ self.q if needs_grad[1] else None
        return dq, dk, dv


class Attention(Function):
    """Scaled dot-product attention over heads, as one node:
        S = Q K^T * scale + M,   P = softmax(S),   Y = dropout(P) V
    (M is 0 where attending is allowed and -inf elsewhere). Backward:
        dV = P'^T dY,   dP = dY V^T (through the dropout mask),
        dS = P * (dP - rowsum(dP * P)),   dQ = dS K * scale,   dK = dS^T Q * scale.
    Shapes: Q (..., Tq, d), K (..., Tk, d), V (..., Tk, dv) -> Y (..., Tq, dv).
    A row with no allowed key gets all-zero weights (and output).
    The formula is :class:`AttentionReference`; ``kernels.select`` may run a
    kernel instead (``kernels/cpu/attention.py``: by query spans, skipping the
    masked scores, on every core; ``kernels/cuda/attention.py``).

    ``out`` (forward) and ``out`` (backward, three arrays) are where the caller
    would like Y and dQ, dK, dV: an implementation may write them there (and
    return those arrays) or return arrays of its own; the caller checks which.
    """

    def forward(self, q, k, v, scale=1.0, causal=False, mask=None, dropout_p=0.0, weights_out=None, out=None):
        self.impl = kernels.select("attention", q, k, v, reference=AttentionReference)
        y = self.impl.forward(q, k, v, scale, causal, mask, dropout_p, out=out)
        if weights_out is not None:
            weights_out.append(self.impl.weights())
        return y

    def backward(self, g, out=None):
        return self.impl.backward(g, self.needs_grad, out=out)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Any = None, causal: bool = False,
              dropout_p: float = 0.0, scale: float | None = None, weights_out: list | None = None) -> Tensor:
    """softmax(Q K^T / sqrt(d) + mask) V for every head at once.

    Args:
        q, k, v: (..., T, d) query, key and value tensors (e.g. (B, nh, T, hs)).
        mask: boolean array broadcastable to (..., Tq, Tk); True where attending is allowed.
        causal: forbid query i from seeing keys after it (aligned at the end with a KV cache).
        dropout_p: dropout on the attention weights (training only; pass 0 in eval).
        scale: defaults to 1/sqrt(d).
        weights_out: if a list, the attention weights (..., Tq, Tk) are appended to it.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if mask is not None:
        mask = mask.data if isinstance(mask, Tensor) else mask
        if getattr(mask, "dtype", np.dtype(bool)).kind == "f":             # PyTorch's additive float mask
            if not bool(((mask == 0) | (mask == -np.inf)).all()):
                from .activations import attention_with_bias  # noqa: PLC0415  (it builds on this package)
                return attention_with_bias(q, k, v, mask, causal, dropout_p, scale, weights_out)
            mask = mask == 0                                                 # 0 / -inf: allowed / not
        mask = get_array_module(q.data).asarray(mask, dtype=bool)
    return Attention.apply(q, k, v, scale=scale, causal=causal, mask=mask,
                           dropout_p=dropout_p, weights_out=weights_out)
