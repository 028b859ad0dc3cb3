"""The attention of one new token per sequence over its KV cache, as one compiled loop.

Formula and reference: :class:`tinyllm.nn.attention.DecodeAttentionReference`. For each
sequence b and head h, with q (hs) the new token's query and K, V (n, hs) the first n
positions of the cache (the new token's own key and value included):

    s_j = scale q . K_j   (j < n),    p = softmax(s),    y = sum_j p_j V_j   (hs)

The reference runs this as array operations over all sequences and heads at once, each a
pass over memory with its own temporary; at batch 8 on a small model those few
microseconds of work cost tens of microseconds of calls. Here one call does every
(b, h): the n scores of a head in a scratch row that stays in L1 from the dot products
through the softmax to the weighted sum, the exp inlined and vectorized. The same loop
compiles for float32 (the kernel ``select`` hands out) and float64 (what the tests compare
with the reference tightly).
"""
from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from .exp import exp_neg
from .jit import jit
from .threads import KERNEL_MIN_NS, run_kernel

NS_PER_ELEMENT = 0.17   # per element of the keys and values read, on one core (2-core VM; 12 us at 8 x 4 x 36 x 32)


def exp_nonpositive(v: float) -> float:
    """e^v for v <= 0: :func:`.exp.exp_neg` for float32 (vectorizable), the library exp otherwise."""
    return math.exp(v)


@overload(exp_nonpositive, inline="always")
def _exp_nonpositive(v):
    if v == types.float32:
        return lambda v: exp_neg(v)
    return lambda v: math.exp(v)


@jit
def decode_attention_(q, k, v, n, scale, y):
    """For each row r = (b, h): y[r] = softmax(scale q[r] K^T) V over keys and values k[r, :n],
    v[r, :n]. q (R, hs), k and v (R, L >= n, hs), y (R, hs); n >= 1; ``scale`` of the arrays' type
    (no constant in the loop has a type of its own, so one loop serves float32 and float64)."""
    rows, hs = q.shape
    s = np.empty(n, dtype=q.dtype)
    zero = np.zeros(1, dtype=q.dtype)[0]                   # 0 in the arrays' type
    for r in range(rows):
        for j in range(n):
            acc = zero
            for d in range(hs):
                acc += q[r, d] * k[r, j, d]
            s[j] = acc * scale
        m = s[0]
        for j in range(1, n):
            m = max(m, s[j])
        for j in range(n):
            s[j] = exp_nonpositive(s[j] - m)
        total = s[0]                                       # >= 1: the largest score's term is e^0
        for j in range(1, n):
            total += s[j]
        for d in range(hs):
            y[r, d] = s[0] * v[r, 0, d]
        for j in range(1, n):
            p = s[j]
            for d in range(hs):
                y[r, d] += p * v[r, j, d]
        for d in range(hs):
            y[r, d] /= total

class DecodeAttention:
    """The new tokens' attention over the cache on float32 NumPy arrays: :func:`decode_attention_`,
    its rows (sequence, head) shared between cores when there is enough work (long caches)."""

    @staticmethod
    def accepts(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> bool:
        return (q.ndim == 3 and k.ndim == 4 and k.shape == v.shape and k.shape[:2] == q.shape[:2]
                and k.shape[3] == q.shape[2] > 0 and k.flags.c_contiguous and v.flags.c_contiguous)

    def forward(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, n: int, scale: float) -> np.ndarray:
        """(B, nh, hs): q (B, nh, hs) attending over the first n positions of k, v (B, nh, L, hs)."""
        b, nh, hs = q.shape
        if not 1 <= n <= k.shape[2]:
            raise ValueError(f"attend over 1..{k.shape[2]} cached positions, not {n}")
        q2 = np.ascontiguousarray(q).reshape(b * nh, hs)                      # (R, hs), R = B nh
        k3, v3 = k.reshape(b * nh, k.shape[2], hs), v.reshape(b * nh, k.shape[2], hs)   # views
        y = np.empty((b * nh, hs), dtype=q.dtype)
        sc, size = q.dtype.type(scale), 2 * b * nh * n * hs
        if size * NS_PER_ELEMENT < KERNEL_MIN_NS:                              # one core: call it directly
            decode_attention_(q2, k3, v3, n, sc, y)
        else:
            run_kernel(lambda r: decode_attention_(q2[r], k3[r], v3[r], n, sc, y[r]), b * nh, size, NS_PER_ELEMENT)
        return y.reshape(b, nh, hs)
