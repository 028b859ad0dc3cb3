"""Scaled dot-product attention over heads, as one graph node (:class:`Attention`)."""
from __future__ import annotations

import math
from typing import Any

from .. import backend
from .. import cuda_kernels as K
from ..backend import get_array_module
from ..tensor import Function, Tensor
from .layers import _uniform_dtype

# ----------------------------------------------------------------------------- attention

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


class Attention(Function):
    """Scaled dot-product attention over heads, as one node:
        S = Q K^T * scale + M,   P = softmax(S),   Y = dropout(P) V
    (M is 0 where attending is allowed and -inf elsewhere). Backward:
        dV = P'^T dY,   dP = dY V^T (through the dropout mask),
        dS = P * (dP - rowsum(dP * P)),   dQ = dS K * scale,   dK = dS^T Q * scale.
    Shapes: Q (..., Tq, d), K (..., Tk, d), V (..., Tk, dv) -> Y (..., Tq, dv).
    A row with no allowed key gets all-zero weights (and output).
    """

    def forward(self, q, k, v, scale=1.0, causal=False, mask=None, dropout_p=0.0, weights_out=None):
        xp = get_array_module(q)
        self.q, self.k, self.v, self.scale = q, k, v, scale
        self.fused = K.supported(q) and k.shape[-2] <= K.MAX_ROW
        if self.fused:                                      # the GPU: scale, mask and softmax in one kernel
            s = q @ k.swapaxes(-1, -2)                                  # (..., Tq, Tk)
            if mask is not None:
                s = xp.where(mask, s, -xp.inf)
            K.attention_softmax_(s, causal, scale)
        else:
            s = backend.small_matmul(q * scale, k.swapaxes(-1, -2))    # (..., Tq, Tk), scale on the smaller Q
            s = self._softmax_(s, causal, mask, xp)
        self.p = s                                                    # (..., Tq, Tk)
        if weights_out is not None:
            weights_out.append(s)
        self.drop = self.stream = None
        if dropout_p > 0.0 and K.supported(s):                          # the GPU: mask drawn in the kernel
            self.dropout_p, self.stream = dropout_p, backend.rng(xp).reserve(s.size)
            s = K.dropout(s, dropout_p, *self.stream)
        elif dropout_p > 0.0:
            keep = backend.rng(xp).random(s.shape, dtype=_uniform_dtype(s.dtype)) >= dropout_p
            self.drop = keep * s.dtype.type(1.0 / (1.0 - dropout_p))
            s = s * self.drop
        self.pd = s
        return backend.small_matmul(s, v)                             # (..., Tq, dv)

    @staticmethod
    def _softmax_(s, causal, mask, xp):
        """The reference: masked scores -> attention weights, in place where it can; returns them."""
        if causal:
            s += causal_bias(s.shape[-2], s.shape[-1], s.dtype, xp)
        if mask is not None:
            s = xp.where(mask, s, -xp.inf)
        m = s.max(axis=-1, keepdims=True)
        if causal or mask is not None:
            xp.copyto(m, 0, where=~xp.isfinite(m))                     # fully masked rows ...
        s -= m
        xp.exp(s, out=s)
        denom = s.sum(axis=-1, keepdims=True)
        if causal or mask is not None:
            xp.copyto(denom, 1, where=denom == 0)                     # ... get zero weights
        s *= 1 / denom
        return s

    def backward(self, g):
        xp = get_array_module(g)
        q, k, v, p, scale = self.q, self.k, self.v, self.p, self.scale
        gv = backend.small_matmul(self.pd.swapaxes(-1, -2), g) if self.needs_grad[2] else None
        dp = backend.small_matmul(g, v.swapaxes(-1, -2))               # (..., Tq, Tk)
        if self.drop is not None:
            dp *= self.drop
        elif self.stream is not None:
            dp = K.dropout(dp, self.dropout_p, *self.stream)
        if self.fused:                                                  # the GPU: dS * scale, one kernel
            ds = K.attention_softmax_backward_(dp, p, scale)
            gq = ds @ k if self.needs_grad[0] else None
            gk = ds.swapaxes(-1, -2) @ q if self.needs_grad[1] else None
            return gq, gk, gv
        ds = dp
        ds -= xp.einsum("...i,...i->...", dp, p)[..., None]            # rowsum(dP * P), no product array
        ds *= p                                                       # dS (without the scale)
        gq = backend.small_matmul(ds, k * scale) if self.needs_grad[0] else None
        gk = backend.small_matmul(ds.swapaxes(-1, -2), q * scale) if self.needs_grad[1] else None
        return gq, gk, gv


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
        mask = get_array_module(q.data).asarray(mask, dtype=bool)
    return Attention.apply(q, k, v, scale=scale, causal=causal, mask=mask,
                           dropout_p=dropout_p, weights_out=weights_out)
