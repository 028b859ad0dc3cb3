"""Multi-head self-attention with a fused QKV projection and a KV cache.

For input X (B, T, C) and n_head heads of size hs = C / n_head:

    Q, K, V = split(X W_qkv^T + b_qkv)                  each (B, nh, T, hs)
    head_h  = softmax(Q_h K_h^T / sqrt(hs) + M) V_h     (B, nh, T, hs)
    Y       = concat_h(head_h) W_proj^T + b_proj        (B, T, C)

M masks what may not be seen: future positions (causal, GPT) and padding
keys (BERT batches of different lengths). Splitting the heads, attending
and merging them back is ONE graph node (:class:`SelfAttentionFunction`),
so there is no Python loop over heads and no per-head op.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from .. import backend, kernels
from ..backend import get_array_module
from ..functional import attention
from ..functional.attention import AttentionReference
from ..functional.self_attention import SelfAttentionFunction, self_attention  # noqa: F401  (nn's names)
from ..tensor import Tensor, is_grad_enabled
from .layers import Dropout, Linear
from .module import Module


# Row counts N for which OpenBLAS computes x W^T faster as (W x^T)^T: measured on one core for
# N in 4..512 and weights from 128x128 to 3072x768, with its AVX2 (Haswell) and AVX-512 (SkylakeX)
# kernels. At N = 8 the transposed order takes 0.74-0.85 of the time with AVX2 and 0.36-0.55
# with AVX-512 (1.1-1.2 for weights of 128 outputs or fewer, a fraction of a microsecond); at
# N = 16..64 in steps of 8 it is 0.4-0.85 with AVX-512 and the same (0.93-1.04) with AVX2. Other
# N do not gain with AVX2 (N = 4 and 12 lose 10-19%), so they keep the plain order. Batch 8..64
# decode steps are the case this serves; a prefill of many rows is the ordinary GEMM.
TRANSPOSED_ROWS = frozenset(range(8, 65, 8))


class ArrayLinearReference:
    """``y = x W^T + b`` for x (N, in), W (out, in), b (out) or None, on arrays (no graph node).

    For NumPy arrays of N rows in :data:`TRANSPOSED_ROWS` it is computed as ``(W x^T)^T``,
    the same product with BLAS's operands swapped (faster there; the sums may round
    differently in the last bit). The compiled kernel (``kernels/cpu/decode_linear.py``)
    is tested against it.
    """

    def forward(self, x: Any, w: Any, b: Any) -> Any:
        if x.shape[0] in TRANSPOSED_ROWS and type(x) is np.ndarray:
            y = (w @ x.T).T                                                    # (out, N) -> (N, out), a view
        else:
            y = x @ w.T                                                        # (N, in) -> (N, out)
        if b is not None:
            y += b
        return y


_ARRAY_LINEAR = ArrayLinearReference()


def array_linear(layer: Module, x: Any, impls: dict | None = None) -> Any:
    """``layer`` applied to the array ``x`` (..., in) at inference, returning an array (..., out).

    A plain :class:`Linear` is one product, ``x W^T + b`` (:class:`ArrayLinearReference`, or
    with ``impls`` the implementation ``kernels.select`` chooses once per shape and keeps
    there); any other layer in its place (LoRA, int8, ...) runs its own forward.
    """
    if type(layer) is Linear:
        w = layer.weight.data
        b = None if layer.bias is None else layer.bias.data
        x2 = x.reshape(-1, x.shape[-1])                                        # (N, in)
        impl = _ARRAY_LINEAR
        if impls is not None:
            key = ("linear", x2.shape, w.shape, b is None, x2.dtype)
            impl = impls.get(key)
            if impl is None:
                impl = impls[key] = kernels.select("decode_linear", x2, w, b, reference=ArrayLinearReference)
        return impl.forward(x2, w, b).reshape(*x.shape[:-1], w.shape[0])      # (N, out) -> (..., out)
    return layer(Tensor._wrap(x)).data


class DecodeAttentionReference:
    """The attention of one new token per sequence over the first n positions of its cache.

    For q (B, nh, hs) and the cache's keys and values K, V (B, nh, L, hs), L >= n:

        s = scale q K[:n]^T   (B, nh, n),    p = softmax(s),    y = p V[:n]   (B, nh, hs)

    No mask: the new token sees every cached position, its own included. Three array
    operations over all sequences and heads at once, on NumPy or CuPy; the compiled
    kernel (``kernels/cpu/decode_attention.py``) is tested against it.
    """

    def forward(self, q: Any, k: Any, v: Any, n: int, scale: float) -> Any:
        xp = get_array_module(q)
        s = (k[:, :, :n] @ q[..., None])[..., 0]                               # (B, nh, n)
        s *= scale
        s -= s.max(axis=-1, keepdims=True)
        xp.exp(s, out=s)
        s /= s.sum(axis=-1, keepdims=True)
        return (s[:, :, None, :] @ v[:, :, :n])[:, :, 0]                       # (B, nh, hs)


class KVCache:
    """Keys and values of the positions seen so far, for incremental decoding.

    Preallocated to ``max_len`` positions: appending the new token's key and
    value is a copy into the buffer, not a concatenation of the whole past.
    """

    def __init__(self, batch: int, n_head: int, max_len: int, head_dim: int, dtype: Any, xp: Any = None) -> None:
        xp = xp or backend.xp()
        self.k = xp.zeros((batch, n_head, max_len, head_dim), dtype=dtype)
        self.v = xp.zeros((batch, n_head, max_len, head_dim), dtype=dtype)
        self.max_len, self.pos = max_len, 0

    def append(self, k: Any, v: Any) -> tuple[Any, Any]:
        """Store k, v (B, nh, T, hs) after the past; return all keys and values so far."""
        t = k.shape[2]
        if self.pos + t > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; {self.pos} used, {t} more asked")
        self.k[:, :, self.pos:self.pos + t] = k
        self.v[:, :, self.pos:self.pos + t] = v
        self.pos += t
        return self.k[:, :, :self.pos], self.v[:, :, :self.pos]

    def reset(self) -> None:
        self.pos = 0


class KVCacheStack:
    """One :class:`KVCache` per layer of a decoder, advancing together (``stack[i]`` is layer i's)."""

    def __init__(self, caches: Iterable[KVCache]) -> None:
        self.layers = list(caches)
        if not self.layers:
            raise ValueError("a KVCacheStack needs at least one layer's cache")
        self.scratch: dict = {}          # what a decoder keeps from step to step (kernels chosen per shape)

    @property
    def pos(self) -> int:
        """Positions held (the same in every layer)."""
        return self.layers[0].pos

    def reset(self) -> None:
        for cache in self.layers:
            cache.reset()

    def __getitem__(self, i: int) -> KVCache:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)


class MultiHeadAttention(Module):
    """Multi-head self-attention: fused QKV projection ``c_attn``, output projection ``c_proj``.

    Args:
        n_embd: model width C (divisible by n_head).
        n_head: number of heads.
        bias: biases in the projections.
        dropout: dropout on the attention weights and on the output.
        causal: each position attends only to itself and earlier ones (GPT).
    """

    def __init__(self, n_embd: int, n_head: int, bias: bool = True, dropout: float = 0.0, causal: bool = False) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_embd, self.n_head, self.causal, self.dropout = n_embd, n_head, causal, dropout
        self.c_attn = Linear(n_embd, 3 * n_embd, bias)
        self.c_proj = Linear(n_embd, n_embd, bias)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x: Tensor, padding_mask: Any = None, cache: KVCache | None = None,
                return_weights: bool = False) -> Any:
        """Attend over ``x`` (B, T, C).

        Args:
            padding_mask: (B, T_keys) boolean, True for real tokens and False for padding
                (the Hugging Face ``attention_mask`` convention). With a cache it covers
                every key so far.
            cache: a :class:`KVCache`; the keys and values of ``x`` are appended to it and
                queries attend to everything cached (inference only: records no gradient).
            return_weights: also return the attention weights (B, nh, T, T_keys).
        """
        mask = None
        if padding_mask is not None:
            pm = padding_mask.data if isinstance(padding_mask, Tensor) else padding_mask
            mask = get_array_module(x.data).asarray(pm, dtype=bool)[:, None, None, :]   # (B, 1, 1, Tk)
        p = self.dropout if self.training else 0.0
        weights: list | None = [] if return_weights else None
        qkv = self.c_attn(x)                                                   # (B, T, C) -> (B, T, 3C)
        if cache is None:
            y = self_attention(qkv, self.n_head, self.causal, mask, p, weights)  # (B, T, C)
        else:
            y = self._attend_cached(qkv, cache, mask, weights)
        y = self.resid_dropout(self.c_proj(y))                                 # (B, T, C)
        return (y, Tensor._wrap(weights[0])) if return_weights else y

    def decode_step(self, x: Any, cache: KVCache, impls: dict) -> Any:
        """Attention output (B, T, C) of T new positions per sequence, on arrays (decoding).

        ``x`` (B, T, C) is their normalized input. Their keys and values are written
        in place into ``cache`` after the P cached ones, and query i attends over the
        keys up to its own position P + i (causal, aligned at the end):

            s = q K^T / sqrt(hs)   (B, nh, T, P+T),   p = softmax(s),   y = p V   (B, nh, T, hs)

        One new token (T = 1) sees every key, so it needs no mask: the attention of
        :class:`DecodeAttentionReference` (or its compiled kernel) instead of the attention
        kernel. For T > 1 (a prefill) the attention kernel runs. Either is chosen once
        per shape and kept in ``impls``. The same computation as
        :meth:`forward` with a cache, without graph nodes; inference only.
        """
        b, t, c = x.shape
        nh = self.n_head
        hs = c // nh
        xp = get_array_module(x)
        qkv = array_linear(self.c_attn, x, impls).reshape(b, t, 3, nh, hs)           # (B, T, 3C) -> (B, T, 3, nh, hs)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)                                 # each (B, nh, T, hs)
        keys, values = cache.append(k, v)                                      # (B, nh, P+T, hs), in place
        if t == 1:
            q = q[:, :, 0]                                                     # (B, nh, hs)
            key = ("decode_attention", q.shape, cache.k.shape, q.dtype)
            impl = impls.get(key)
            if impl is None:
                impl = impls[key] = kernels.select("decode_attention", q, cache.k, cache.v,
                                                   reference=DecodeAttentionReference)
            y = impl.forward(q, cache.k, cache.v, cache.pos, 1.0 / math.sqrt(hs)).reshape(b, 1, c)  # (B, 1, C)
        else:
            key = ("attention", q.shape, keys.shape, q.dtype)
            impl = impls.get(key)
            if impl is None:
                impl = impls[key] = kernels.select("attention", q, keys, values, reference=AttentionReference)
            y = impl.forward(q, keys, values, 1.0 / math.sqrt(hs), self.causal, None, 0.0)  # (B, nh, T, hs)
            y = xp.ascontiguousarray(y.transpose(0, 2, 1, 3)).reshape(b, t, c)  # (B, T, C)
        return array_linear(self.c_proj, y, impls)                             # (B, T, C)

    def _attend_cached(self, qkv: Tensor, cache: KVCache, mask: Any, weights: list | None) -> Tensor:
        if is_grad_enabled() and qkv.requires_grad:
            raise RuntimeError("the KV-cache path is for inference: run it under tinyllm.no_grad()")
        b, t, _ = qkv.shape
        hs = self.n_embd // self.n_head
        heads = qkv.data.reshape(b, t, 3, self.n_head, hs).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        k_all, v_all = cache.append(heads[1], heads[2])                        # (B, nh, Tk, hs)
        y = attention(Tensor._wrap(heads[0]), Tensor._wrap(k_all), Tensor._wrap(v_all), mask=mask,
                      causal=self.causal, weights_out=weights)                 # (B, nh, T, hs)
        return Tensor._wrap(y.data.transpose(0, 2, 1, 3).reshape(b, t, self.n_embd))

    def extra_repr(self) -> str:
        return f"n_embd={self.n_embd}, n_head={self.n_head}, causal={self.causal}"


class MemoryKV:
    """The keys and values of a memory (an encoder's output) for :class:`CrossAttention`.

    The memory does not change while a target sequence is decoded, so its keys
    and values are projected once per source and reused at every step:
    ``k``, ``v`` are (B, nh, Tk, hs) arrays, None until the first call fills them.
    """

    def __init__(self) -> None:
        self.k: Any = None
        self.v: Any = None

    @property
    def filled(self) -> bool:
        return self.k is not None

    def reset(self) -> None:
        self.k = self.v = None


class CrossAttention(Module):
    """Multi-head attention of queries from ``x`` over keys and values from ``memory``.

    For x (B, Tq, C), memory (B, Tk, C) and n_head heads of size hs = C / n_head:

        Q      = x W_q^T + b_q                              (B, Tq, C) -> (B, nh, Tq, hs)
        K | V  = memory W_kv^T + b_kv                       (B, Tk, C) -> 2 x (B, nh, Tk, hs)
        head_h = softmax(Q_h K_h^T / sqrt(hs) + M) V_h      (B, nh, Tq, hs)
        Y      = concat_h(head_h) W_proj^T + b_proj         (B, Tq, C)

    M hides the memory's padding (``memory_mask``); nothing is causal, every
    query sees every real memory position. The attention itself is the fused
    :func:`tinyllm.functional.attention` op, with its closed-form backward
    for Q, K and V. (Self-attention, where Q, K and V all come from x, keeps
    its packed fast path in :class:`MultiHeadAttention`.)

    Args:
        n_embd: model width C (divisible by n_head); the memory has the same width.
        n_head: number of heads.
        bias: biases in the projections.
        dropout: on the attention weights and on the output.
    """

    def __init__(self, n_embd: int, n_head: int, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, dropout
        self.q_proj = Linear(n_embd, n_embd, bias)
        self.kv_proj = Linear(n_embd, 2 * n_embd, bias)          # K and V of the memory in one matmul
        self.c_proj = Linear(n_embd, n_embd, bias)
        self.resid_dropout = Dropout(dropout)

    def _heads(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        hs = self.n_embd // self.n_head
        return t.reshape(b, n, self.n_head, hs).permute(0, 2, 1, 3)         # (B, n, C) -> (B, nh, n, hs)

    def memory_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """The memory's keys and values, each (B, nh, Tk, hs)."""
        if memory.ndim != 3 or memory.shape[-1] != self.n_embd:
            raise ValueError(f"memory must have shape (B, Tk, {self.n_embd}), got {tuple(memory.shape)}")
        k, v = self.kv_proj(memory).split(self.n_embd, axis=-1)             # (B, Tk, 2C) -> 2 x (B, Tk, C)
        return self._heads(k), self._heads(v)                               # 2 x (B, nh, Tk, hs)

    def forward(self, x: Tensor, memory: Tensor | None = None, memory_mask: Any = None,
                cache: MemoryKV | None = None, return_weights: bool = False) -> Any:
        """Attend from ``x`` (B, Tq, C) over ``memory`` (B, Tk, C).

        Args:
            memory_mask: (B, Tk) boolean, True for real memory positions, False for padding.
            cache: a :class:`MemoryKV`; the first call fills it from ``memory``, later
                calls reuse it and need no memory (inference only: records no gradient).
            return_weights: also return the attention weights (B, nh, Tq, Tk).
        """
        b, tq, _ = x.shape
        if cache is not None and cache.filled:
            k, v = Tensor._wrap(cache.k), Tensor._wrap(cache.v)
        else:
            if memory is None:
                raise ValueError("cross-attention needs a memory (or a filled MemoryKV cache)")
            if memory.shape[0] != b:
                raise ValueError(f"memory has batch size {memory.shape[0]}, the queries {b}")
            k, v = self.memory_kv(memory)                                   # 2 x (B, nh, Tk, hs)
            if cache is not None:
                if is_grad_enabled() and (k.requires_grad or x.requires_grad):
                    raise RuntimeError("the memory cache is for inference: run it under tinyllm.no_grad()")
                cache.k, cache.v = k.data, v.data
        mask = None
        if memory_mask is not None:
            pm = memory_mask.data if isinstance(memory_mask, Tensor) else memory_mask
            pm = get_array_module(x.data).asarray(pm, dtype=bool)
            if pm.shape != (b, k.shape[2]):
                raise ValueError(f"memory_mask must have shape {(b, k.shape[2])}, got {tuple(pm.shape)}")
            mask = pm[:, None, None, :]                                     # (B, 1, 1, Tk)
        p = self.dropout if self.training else 0.0
        weights: list | None = [] if return_weights else None
        q = self._heads(self.q_proj(x))                                     # (B, Tq, C) -> (B, nh, Tq, hs)
        y = attention(q, k, v, mask=mask, dropout_p=p, weights_out=weights)  # (B, nh, Tq, hs)
        y = y.permute(0, 2, 1, 3).reshape(b, tq, self.n_embd)              # (B, nh, Tq, hs) -> (B, Tq, C)
        y = self.resid_dropout(self.c_proj(y))                              # (B, Tq, C)
        return (y, Tensor._wrap(weights[0])) if return_weights else y

    def extra_repr(self) -> str:
        return f"n_embd={self.n_embd}, n_head={self.n_head}"
