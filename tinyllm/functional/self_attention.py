"""Multi-head self-attention of packed q|k|v as one graph node: split heads, attend, merge heads."""
from __future__ import annotations

import math
from typing import Any

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .attention import Attention


class SelfAttentionFunction(Function):
    """(B, T, 3C) packed q|k|v -> (B, T, C): split heads, scaled dot-product attention, merge heads.

    The math (and its backward) is :class:`tinyllm.functional.Attention`, whose
    implementation on the CPU also skips the causal mask's all-masked scores
    (:func:`tinyllm.kernels.cpu.attention.query_spans`); this node only
    reshapes around it: forward views qkv as (3, B, nh, T, hs), and backward
    packs dQ, dK, dV into one (B, T, 3C) gradient.
    """

    def forward(self, qkv, n_head=1, causal=False, mask=None, dropout_p=0.0, weights_out=None):
        xp = get_array_module(qkv)
        b, t, c3 = qkv.shape
        hs = c3 // (3 * n_head)
        self.shape = (b, t, n_head, hs)
        q, k, v = qkv.reshape(b, t, 3, n_head, hs).transpose(2, 0, 3, 1, 4)   # each (B, nh, T, hs)
        self.core = Attention.__new__(Attention)
        self.core.needs_grad = (True, True, True)
        out = xp.empty((b, t, n_head, hs), dtype=qkv.dtype)                   # the merged heads, (B, T, nh, hs)
        heads = out.transpose(0, 2, 1, 3)                                      # ... seen as (B, nh, T, hs)
        y = self.core.forward(q, k, v, scale=1.0 / math.sqrt(hs), causal=causal, mask=mask,
                              dropout_p=dropout_p, weights_out=weights_out, out=heads)   # (B, nh, T, hs)
        if y is not heads:                                                     # an implementation of its own
            heads[...] = y
        return out.reshape(b, t, n_head * hs)                                  # (B, T, C)

    def backward(self, g):
        b, t, nh, hs = self.shape
        gy = g.reshape(b, t, nh, hs).transpose(0, 2, 1, 3)                     # (B, nh, T, hs)
        dqkv = get_array_module(g).empty((b, t, 3, nh, hs), dtype=g.dtype)
        parts = tuple(dqkv.transpose(2, 0, 3, 1, 4))                           # dQ, dK, dV: (B, nh, T, hs) views
        for d, grad in zip(parts, self.core.backward(gy, out=parts)):
            if grad is not d:                                                  # not written in place
                d[...] = grad
        return (dqkv.reshape(b, t, 3 * nh * hs),)


def self_attention(qkv: Tensor, n_head: int, causal: bool = False, mask: Any = None,
                   dropout_p: float = 0.0, weights_out: list | None = None) -> Tensor:
    """Multi-head attention of packed ``qkv`` (B, T, 3C) with itself -> (B, T, C).

    ``mask``: boolean, broadcastable to (B, nh, T, T), True where attending is allowed.
    """
    if qkv.shape[-1] % (3 * n_head):
        raise ValueError(f"qkv width {qkv.shape[-1]} is not 3 * n_head ({n_head}) * head size")
    if mask is not None:
        mask = get_array_module(qkv.data).asarray(mask.data if isinstance(mask, Tensor) else mask, dtype=bool)
    return SelfAttentionFunction.apply(qkv, n_head=n_head, causal=causal, mask=mask,
                                       dropout_p=dropout_p, weights_out=weights_out)
