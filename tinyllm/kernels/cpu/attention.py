"""Attention on the CPU: by query spans, in row blocks on every core, with compiled softmax loops.

Formula and reference: :class:`tinyllm.functional.attention.Attention`.
What this adds to the formula, all for speed: causal attention runs by
query spans (:func:`query_spans`) and never computes the scores it would
mask; the leading (batch, head) axis is cut into blocks, one per core
(:func:`.threads.over_rows`), each block's products on one BLAS thread and
its scores in cache through the softmax; the softmax and its backward are
compiled loops (:func:`causal_softmax_`, :func:`softmax_`,
:func:`softmax_backward_`) where no key mask is given.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ... import backend
from .exp import exp_neg
from .jit import F, inline, jit
from .threads import over_rows


@inline
def row_max_(s, i, n, scale):
    """max over j < n of scale * s[i, j] (-inf when n = 0), in eight running maxima: a single
    running max is a chain of dependent compares that LLVM will not vectorize. A NaN never wins
    (``max`` keeps the running value), as with one running max: the row's sum is then NaN, and
    its weights are 0 but for the NaN itself, which stays."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = F(-np.inf)
    j = 0
    while j + 8 <= n:
        m0, m1 = max(m0, s[i, j] * scale), max(m1, s[i, j + 1] * scale)
        m2, m3 = max(m2, s[i, j + 2] * scale), max(m3, s[i, j + 3] * scale)
        m4, m5 = max(m4, s[i, j + 4] * scale), max(m5, s[i, j + 5] * scale)
        m6, m7 = max(m6, s[i, j + 6] * scale), max(m7, s[i, j + 7] * scale)
        j += 8
    m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for jj in range(j, n):
        m = max(m, s[i, jj] * scale)
    return m


@jit
def causal_softmax_(s, tq, offset, scale):
    """In place, rows of unscaled scores s (R, Tk) = Q K^T, row i being query (i mod tq): keys j
    with j <= (i mod tq) + offset are allowed (offset = Tk - Tq with a KV cache), the rest get
    weight 0; allowed ones get softmax(scale * s) over the allowed. A row with no allowed key is all 0."""
    n, c = s.shape
    for i in range(n):
        last = min(i % tq + offset, c - 1)                   # the last key this query sees
        m = row_max_(s, i, last + 1, scale)
        d = F(0.0)
        for j in range(last + 1):
            e = exp_neg(s[i, j] * scale - m)
            s[i, j] = e
            d += e
        inv = F(1.0) / d if d > F(0.0) else F(0.0)
        for j in range(last + 1):
            s[i, j] *= inv
        for j in range(max(last + 1, 0), c):
            s[i, j] = F(0.0)


@jit
def softmax_(s, scale):
    """In place, rows of s (R, C): s <- scale * s, then s = e^(s - max) / sum e^(s - max); a row
    of -inf becomes 0."""
    n, c = s.shape
    for i in range(n):
        m = row_max_(s, i, c, scale)
        if m == F(-np.inf):
            m = F(0.0)
        d = F(0.0)
        for j in range(c):
            e = exp_neg(s[i, j] * scale - m)
            s[i, j] = e
            d += e
        inv = F(1.0) / d if d > F(0.0) else F(0.0)
        for j in range(c):
            s[i, j] *= inv


@jit
def softmax_backward_(dp, p, scale):
    """In place, rows: dp = scale * p (dp - sum(dp p)), the gradient of the (unscaled) scores
    from that of the weights (scale = 1 for a plain softmax)."""
    n, c = p.shape
    for i in range(n):
        s = F(0.0)
        for j in range(c):
            s += dp[i, j] * p[i, j]
        for j in range(c):
            dp[i, j] = p[i, j] * (dp[i, j] - s) * scale


QUERY_BLOCK = 64  # causal attention runs over spans of this many queries


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


def _masked_softmax_(s: np.ndarray, causal: bool, mask: Any, scale: np.float32) -> np.ndarray:
    """Unscaled scores Q K^T -> attention weights softmax(scale * s + M), in place where it can;
    returns them. Without a key mask a compiled loop; with one, NumPy (fully masked rows get
    zero weights)."""
    tq, tk = s.shape[-2:]
    if mask is None and s.flags.c_contiguous:
        s2 = s.reshape(-1, tk)
        if causal:
            causal_softmax_(s2, tq, tk - tq, scale)
        else:
            softmax_(s2, scale)
        return s
    allowed = np.tril(np.ones((tq, tk), dtype=bool), k=tk - tq) if causal else True
    if mask is not None:
        allowed = allowed & mask
    s = np.where(allowed, s, -np.inf)
    s *= scale
    m = s.max(axis=-1, keepdims=True)
    np.copyto(m, 0, where=~np.isfinite(m))                             # fully masked rows ...
    s -= m
    np.exp(s, out=s)
    denom = s.sum(axis=-1, keepdims=True)
    np.copyto(denom, 1, where=denom == 0)                             # ... get zero weights
    s *= 1 / denom
    return s


def _into_or_new(out: Any, shape: tuple, zero: bool) -> np.ndarray:
    """``out`` when the caller gave an array of ``shape`` to write into (zeroed if ``zero``),
    else a new float32 array (zeros if ``zero``)."""
    if out is None or out.shape != shape:
        return (np.zeros if zero else np.empty)(shape, dtype=np.float32)
    if zero:
        out[...] = 0
    return out


def _shaped(a: np.ndarray, shape: tuple) -> np.ndarray:
    """``a`` reshaped to ``shape``: ``a`` itself when it has that shape (an ``out=`` array stays itself)."""
    return a if a.shape == shape else a.reshape(shape)


class Attention:
    """Scaled dot-product attention on float32 NumPy arrays. Leading axes broadcast as in ``@``;
    a missing one is added (and removed after). Keeps the weights of each span (and the dropout
    scale of each, drawn span by span in order).

    The scale goes into the softmax loops (forward) and into dS (backward), so the products
    read Q and K where they are (strided views of a packed q|k|v) without scaled copies; and
    ``out=`` arrays (strided views too: the heads of a (B, T, C) result) are written in place."""

    def forward(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, causal: bool, mask: Any,
                dropout_p: float, out: np.ndarray | None = None) -> np.ndarray:
        self.q, self.k, self.v, self.scale = q, k, v, scale
        tq, tk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
        shape = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2],
                                    mask.shape[:-2] if mask is not None else ())
        lead = shape or (1,)
        q, k, v = (np.broadcast_to(a, lead + a.shape[-2:]) for a in (q, k, v))
        mask = None if mask is None else np.broadcast_to(mask, lead + (tq, tk))
        self.spans = query_spans(tq, tk, causal)
        self.ps = [np.empty(lead + (b - a, kb), dtype=np.float32) for a, b, kb in self.spans]   # weights per span
        self.drops = [None] * len(self.spans)
        if dropout_p > 0.0:                                             # drawn span by span, in order
            rng, keep_scale = backend.rng(np), np.float32(1.0 / (1.0 - dropout_p))
            self.drops = [(rng.random(p.shape, dtype=np.float32) >= dropout_p) * keep_scale for p in self.ps]
        y = _into_or_new(out, lead + (tq, dv), zero=False)
        scale32 = np.float32(scale)

        def block(r):
            for (a, b, kb), p, drop in zip(self.spans, self.ps, self.drops):
                pr = np.matmul(q[r, ..., a:b, :], k[r, ..., :kb, :].swapaxes(-1, -2), out=p[r])   # Q K^T
                s = _masked_softmax_(pr, causal, None if mask is None else mask[r, ..., a:b, :kb], scale32)
                if s is not pr:                                         # a mask made a new array
                    pr[...] = s
                if drop is not None:
                    s = s * drop[r]
                np.matmul(s, v[r, ..., :kb, :], out=y[r, ..., a:b, :])

        with backend.one_blas_thread():
            over_rows(block, lead[0], sum(p.size for p in self.ps))
        self.shape = shape
        return _shaped(y, shape + (tq, dv))

    def weights(self) -> np.ndarray:
        """The attention weights (..., Tq, Tk): 0 where a span skipped keys."""
        (tq, tk), lead = (self.spans[-1][1], self.spans[-1][2]), self.ps[0].shape[:-2]
        if len(self.spans) == 1:
            return self.ps[0].reshape(self.shape + (tq, tk))
        p = np.zeros(lead + (tq, tk), dtype=np.float32)
        for (a, b, kb), pa in zip(self.spans, self.ps):
            p[..., a:b, :kb] = pa
        return p.reshape(self.shape + (tq, tk))

    def backward(self, g: np.ndarray, needs_grad: tuple, out: tuple | None = None) -> tuple:
        """(dQ, dK, dV), span by span; keys and values sum the gradients of every span that saw them
        (the span that sees all keys first, writing dK and dV; the others add theirs).
        ``out``: three arrays (dQ, dK, dV) to write into, or None."""
        shape, spans = self.shape, self.spans
        lead = shape or (1,)
        q, k, v, g = (np.broadcast_to(a, lead + a.shape[-2:]) for a in (self.q, self.k, self.v, g))
        out = out or (None, None, None)
        gq = _into_or_new(out[0], lead + q.shape[-2:], zero=False) if needs_grad[0] else None
        gk = _into_or_new(out[1], lead + k.shape[-2:], zero=False) if needs_grad[1] else None
        gv = _into_or_new(out[2], lead + v.shape[-2:], zero=False) if needs_grad[2] else None
        scale32 = np.float32(self.scale)
        # The last span sees all Tk keys (query_spans): it goes first and writes every row of dK and
        # dV, so they need no zeroing; each later span adds its product, made in a scratch array.
        order = sorted(range(len(spans)), key=lambda i: -spans[i][2])

        def block(r):
            tmp = np.empty(v[r].shape[:-1] + (max(q.shape[-1], v.shape[-1]),), dtype=np.float32)
            first = True

            def into(out, x, y):                                        # out = x @ y, or out += x @ y
                if first:
                    np.matmul(x, y, out=out)
                else:
                    t = np.matmul(x, y, out=tmp[..., :x.shape[-2], :y.shape[-1]])
                    out += t

            for i in order:
                (a, b, kb), p, drop = spans[i], self.ps[i], self.drops[i]
                pr, gr = p[r], g[r, ..., a:b, :]
                if gv is not None:                                      # dV = P'^T dY
                    into(gv[r, ..., :kb, :], (pr if drop is None else pr * drop[r]).swapaxes(-1, -2), gr)
                ds = gr @ v[r, ..., :kb, :].swapaxes(-1, -2)            # dP, (rows, ..., b-a, kb)
                if drop is not None:
                    ds *= drop[r]
                if pr.flags.c_contiguous:                               # dS = scale P (dP - rowsum(dP P))
                    softmax_backward_(ds.reshape(-1, kb), pr.reshape(-1, kb), scale32)
                else:
                    ds -= np.einsum("...i,...i->...", ds, pr)[..., None]  # rowsum(dP * P), no product array
                    ds *= pr
                    ds *= scale32
                if gq is not None:                                      # dQ = dS K
                    np.matmul(ds, k[r, ..., :kb, :], out=gq[r, ..., a:b, :])
                if gk is not None:                                      # dK = dS^T Q
                    into(gk[r, ..., :kb, :], ds.swapaxes(-1, -2), q[r, ..., a:b, :])
                first = False

        with backend.one_blas_thread():
            over_rows(block, lead[0], sum(p.size for p in self.ps))
        return tuple(None if a is None else _shaped(a, shape + a.shape[-2:]) for a in (gq, gk, gv))
