"""Scaled dot-product attention over heads, as one graph node (:class:`Attention`)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from .. import cpu_kernels as C
from .. import cuda_kernels as K
from ..backend import get_array_module
from ..tensor import Function, Tensor
from .layers import _uniform_dtype
from .rows import over_rows

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
        self.drop = self.stream = None
        if not self.fused:                                              # the reference
            y = self._forward_rows(q, k, v, scale, causal, mask, dropout_p, xp)
            if weights_out is not None:
                weights_out.append(self.p)
            return y
        s = q @ k.swapaxes(-1, -2)                                      # (..., Tq, Tk)
        if mask is not None:
            s = xp.where(mask, s, -xp.inf)
        K.attention_softmax_(s, causal, scale)                          # the GPU: scale, mask, softmax in one kernel
        self.p = s                                                      # (..., Tq, Tk)
        if weights_out is not None:
            weights_out.append(s)
        if dropout_p > 0.0:                                             # the mask is drawn in the kernel
            self.dropout_p, self.stream = dropout_p, backend.rng(xp).reserve(s.size)
            s = K.dropout(s, dropout_p, *self.stream)
        self.pd = s
        return s @ v                                                    # (..., Tq, dv)

    def _forward_rows(self, q, k, v, scale, causal, mask, dropout_p, xp):
        """The reference, over the leading axis in blocks on every core (``rows.over_rows``): each
        block's products run on one BLAS thread, its scores stay in cache through the softmax.
        Leading axes broadcast as in ``@``; a missing one is added (and removed after)."""
        tq, tk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
        shape = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2],
                                    mask.shape[:-2] if mask is not None else ())
        lead = shape or (1,)
        q, k, v = (xp.broadcast_to(a, lead + a.shape[-2:]) for a in (q, k, v))
        mask = None if mask is None else xp.broadcast_to(mask, lead + (tq, tk))
        p = xp.empty(lead + (tq, tk), dtype=xp.result_type(q, k))
        y = xp.empty(lead + (tq, dv), dtype=xp.result_type(q, v))
        if dropout_p > 0.0:                                             # drawn whole: the same numbers
            keep = backend.rng(xp).random(p.shape, dtype=_uniform_dtype(p.dtype)) >= dropout_p
            self.drop = keep * p.dtype.type(1.0 / (1.0 - dropout_p))

        def block(r):
            pr = xp.matmul(q[r] * scale, k[r].swapaxes(-1, -2), out=p[r])  # scale on the smaller Q
            s = self._softmax_(pr, causal, None if mask is None else mask[r], xp)
            if s is not pr:                                             # a mask made a new array
                pr[...] = s
            if self.drop is not None:
                s = s * self.drop[r]
            xp.matmul(s, v[r], out=y[r])

        with backend.one_blas_thread():
            over_rows(block, lead[0], p.size, xp)
        self.p = p.reshape(shape + (tq, tk))
        return y.reshape(shape + (tq, dv))

    @staticmethod
    def _softmax_(s, causal, mask, xp):
        """Masked scores -> attention weights, in place where it can; returns them. float32
        without a key mask takes the compiled kernel; the rest is the reference."""
        tq, tk = s.shape[-2:]
        if mask is None and C.supported(s) and s.flags.c_contiguous:   # the CPU: one compiled loop
            s2 = s.reshape(-1, tk)
            if causal:
                C.kernels().causal_softmax_(s2, tq, tk - tq)
            else:
                C.kernels().softmax_(s2)
            return s
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
        if not self.fused:
            return self._backward_rows(g, xp)
        gv = self.pd.swapaxes(-1, -2) @ g if self.needs_grad[2] else None
        dp = g @ v.swapaxes(-1, -2)                                     # (..., Tq, Tk)
        if self.stream is not None:
            dp = K.dropout(dp, self.dropout_p, *self.stream)
        ds = K.attention_softmax_backward_(dp, p, scale)                # the GPU: dS * scale, one kernel
        gq = ds @ k if self.needs_grad[0] else None
        gk = ds.swapaxes(-1, -2) @ q if self.needs_grad[1] else None
        return gq, gk, gv

    def _backward_rows(self, g, xp):
        """The reference backward, in blocks of the leading axis as :meth:`_forward_rows`."""
        shape, (tq, tk) = self.p.shape[:-2], self.p.shape[-2:]
        lead = shape or (1,)
        q, k, v, g = (xp.broadcast_to(a, lead + a.shape[-2:]) for a in (self.q, self.k, self.v, g))
        p = self.p.reshape(lead + (tq, tk))
        drop = None if self.drop is None else self.drop.reshape(p.shape)
        dtype = xp.result_type(g, p)
        gq = xp.empty(lead + q.shape[-2:], dtype=dtype) if self.needs_grad[0] else None
        gk = xp.empty(lead + k.shape[-2:], dtype=dtype) if self.needs_grad[1] else None
        gv = xp.empty(lead + v.shape[-2:], dtype=dtype) if self.needs_grad[2] else None

        def block(r):
            if gv is not None:
                pd = p[r] if drop is None else p[r] * drop[r]
                xp.matmul(pd.swapaxes(-1, -2), g[r], out=gv[r])
            ds = g[r] @ v[r].swapaxes(-1, -2)                           # dP, (rows, ..., Tq, Tk)
            if drop is not None:
                ds *= drop[r]
            if C.supported(ds, p) and p[r].flags.c_contiguous:         # the CPU: one compiled loop
                C.kernels().softmax_backward_(ds.reshape(-1, tk), p[r].reshape(-1, tk))
            else:
                ds -= xp.einsum("...i,...i->...", ds, p[r])[..., None]  # rowsum(dP * P), no product array
                ds *= p[r]                                              # dS (without the scale)
            if gq is not None:
                xp.matmul(ds, k[r] * self.scale, out=gq[r])
            if gk is not None:
                xp.matmul(ds.swapaxes(-1, -2), q[r] * self.scale, out=gk[r])

        with backend.one_blas_thread():
            over_rows(block, lead[0], p.size, xp)
        return tuple(None if a is None else a.reshape(shape + a.shape[-2:]) for a in (gq, gk, gv))


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
