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


QUERY_BLOCK = 64  # causal attention on the CPU runs over spans of this many queries


def query_spans(tq: int, tk: int, causal: bool) -> list:
    """``(a, b, kb)`` triples: queries a..b-1 attend to keys 0..kb-1, spans covering all tq queries.

    Causal attention skips the scores it would mask anyway. The span of
    queries a..b-1 (the last tq of tk positions) can only see keys
    0..b-1+tk-tq, so it attends over those alone: the all-masked upper-right
    part of the score matrix is never computed. At T = 256 and spans of 64
    that is 6 blocks of the 16, about 40% less work in the products and the
    softmax (FlashAttention's causal kernels skip it the same way). One span
    when not causal, for short sequences, and with fewer keys than queries.
    """
    if not causal or tq <= QUERY_BLOCK or tk < tq:
        return [(0, tq, tk)]
    return [(a, min(a + QUERY_BLOCK, tq), min(a + QUERY_BLOCK, tq) + tk - tq) for a in range(0, tq, QUERY_BLOCK)]


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
                weights_out.append(self._weights(xp))
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
        """The CPU path, over the leading axis in blocks on every core (``rows.over_rows``): each
        block's products run on one BLAS thread, its scores stay in cache through the softmax.
        Causal attention goes by query spans (:func:`query_spans`) and never computes the scores
        it would mask. Leading axes broadcast as in ``@``; a missing one is added (and removed after)."""
        tq, tk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
        shape = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2],
                                    mask.shape[:-2] if mask is not None else ())
        lead = shape or (1,)
        q, k, v = (xp.broadcast_to(a, lead + a.shape[-2:]) for a in (q, k, v))
        mask = None if mask is None else xp.broadcast_to(mask, lead + (tq, tk))
        self.spans = query_spans(tq, tk, causal and xp is np)
        dtype = xp.result_type(q, k)
        self.ps = [xp.empty(lead + (b - a, kb), dtype=dtype) for a, b, kb in self.spans]   # weights per span
        self.drops = [None] * len(self.spans)
        if dropout_p > 0.0:                                             # drawn span by span, in order
            rng, keep_scale = backend.rng(xp), dtype.type(1.0 / (1.0 - dropout_p))
            self.drops = [(rng.random(p.shape, dtype=_uniform_dtype(dtype)) >= dropout_p) * keep_scale
                          for p in self.ps]
        y = xp.empty(lead + (tq, dv), dtype=xp.result_type(q, v))

        def block(r):
            for (a, b, kb), p, drop in zip(self.spans, self.ps, self.drops):
                pr = xp.matmul(q[r, ..., a:b, :] * scale, k[r, ..., :kb, :].swapaxes(-1, -2), out=p[r])
                s = self._softmax_(pr, causal, None if mask is None else mask[r, ..., a:b, :kb], xp)
                if s is not pr:                                         # a mask made a new array
                    pr[...] = s
                if drop is not None:
                    s = s * drop[r]
                xp.matmul(s, v[r, ..., :kb, :], out=y[r, ..., a:b, :])  # scale was on the smaller Q

        with backend.one_blas_thread():
            over_rows(block, lead[0], sum(p.size for p in self.ps), xp)
        self.shape = shape
        return y.reshape(shape + (tq, dv))

    def _weights(self, xp):
        """The attention weights (..., Tq, Tk) of :meth:`_forward_rows`: 0 where a span skipped keys."""
        (tq, tk), lead = (self.spans[-1][1], self.spans[-1][2]), self.ps[0].shape[:-2]
        if len(self.spans) == 1:
            return self.ps[0].reshape(self.shape + (tq, tk))
        p = xp.zeros(lead + (tq, tk), dtype=self.ps[0].dtype)
        for (a, b, kb), pa in zip(self.spans, self.ps):
            p[..., a:b, :kb] = pa
        return p.reshape(self.shape + (tq, tk))

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
        if not self.fused:
            return self._backward_rows(g, xp)
        q, k, v, p, scale = self.q, self.k, self.v, self.p, self.scale
        gv = self.pd.swapaxes(-1, -2) @ g if self.needs_grad[2] else None
        dp = g @ v.swapaxes(-1, -2)                                     # (..., Tq, Tk)
        if self.stream is not None:
            dp = K.dropout(dp, self.dropout_p, *self.stream)
        ds = K.attention_softmax_backward_(dp, p, scale)                # the GPU: dS * scale, one kernel
        gq = ds @ k if self.needs_grad[0] else None
        gk = ds.swapaxes(-1, -2) @ q if self.needs_grad[1] else None
        return gq, gk, gv

    def _backward_rows(self, g, xp):
        """The backward of :meth:`_forward_rows`, span by span; keys and values sum the
        gradients of every span that saw them."""
        shape, spans = self.shape, self.spans
        lead = shape or (1,)
        q, k, v, g = (xp.broadcast_to(a, lead + a.shape[-2:]) for a in (self.q, self.k, self.v, g))
        dtype = xp.result_type(g, self.ps[0])
        new = xp.empty if len(spans) == 1 else xp.zeros                 # several spans add up
        gq = xp.empty(lead + q.shape[-2:], dtype=dtype) if self.needs_grad[0] else None
        gk = new(lead + k.shape[-2:], dtype=dtype) if self.needs_grad[1] else None
        gv = new(lead + v.shape[-2:], dtype=dtype) if self.needs_grad[2] else None

        def into(out, a, b):                                            # out = a @ b, or out += a @ b
            if len(spans) == 1:
                xp.matmul(a, b, out=out)
            else:
                out += a @ b

        def block(r):
            for (a, b, kb), p, drop in zip(spans, self.ps, self.drops):
                pr, gr = p[r], g[r, ..., a:b, :]
                if gv is not None:                                      # dV = P'^T dY
                    into(gv[r, ..., :kb, :], (pr if drop is None else pr * drop[r]).swapaxes(-1, -2), gr)
                ds = gr @ v[r, ..., :kb, :].swapaxes(-1, -2)            # dP, (rows, ..., b-a, kb)
                if drop is not None:
                    ds *= drop[r]
                if C.supported(ds, pr) and pr.flags.c_contiguous:      # the CPU: one compiled loop
                    C.kernels().softmax_backward_(ds.reshape(-1, kb), pr.reshape(-1, kb))
                else:
                    ds -= xp.einsum("...i,...i->...", ds, pr)[..., None]  # rowsum(dP * P), no product array
                    ds *= pr                                            # dS (without the scale)
                if gq is not None:
                    xp.matmul(ds, k[r, ..., :kb, :] * self.scale, out=gq[r, ..., a:b, :])
                if gk is not None:
                    into(gk[r, ..., :kb, :], ds.swapaxes(-1, -2), q[r, ..., a:b, :] * self.scale)

        with backend.one_blas_thread():
            over_rows(block, lead[0], sum(p.size for p in self.ps), xp)
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
        if getattr(mask, "dtype", np.dtype(bool)).kind == "f":             # PyTorch's additive float mask
            if not bool(((mask == 0) | (mask == -np.inf)).all()):
                from .activations import attention_with_bias  # noqa: PLC0415  (it builds on this package)
                return attention_with_bias(q, k, v, mask, causal, dropout_p, scale, weights_out)
            mask = mask == 0                                                 # 0 / -inf: allowed / not
        mask = get_array_module(q.data).asarray(mask, dtype=bool)
    return Attention.apply(q, k, v, scale=scale, causal=causal, mask=mask,
                           dropout_p=dropout_p, weights_out=weights_out)
