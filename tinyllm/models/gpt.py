"""GPT-2: a decoder-only Transformer language model (Radford et al., 2019).

Given tokens x_1..x_T, the model scores every possible next token at every
position at once; causal attention keeps position t from seeing t+1..T:

    h_0    = W_te[x_t] + W_pe[t]                  token + learned position embeddings
    h_l    = Block_l(h_{l-1}),  l = 1..L          pre-LN: h + Attn(LN(h)), then h + MLP(LN(h))
    logits = LN_f(h_L) W_te^T                     the output layer reuses W_te (tied)
    loss   = mean_t -log softmax(logits_t)[x_{t+1}]

Parameter names are GPT-2's (``wte``, ``wpe``, ``h.0.attn.c_attn``, ``ln_f``,
``lm_head``), so Hugging Face checkpoints map onto them one to one
(``tinyllm.models.hf``). For decoding (``tinyllm.decoding.generate``) it
scores the next token of a prompt and keeps the keys and values of past
positions (a KV cache per layer), so each new token costs one position, not T.
"""
from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from .. import backend, kernels
from .. import functional as F
from ..nn import (Dropout, Embedding, KVCache, LayerNorm, LearnedPositionalEmbedding, Linear, Module, ModuleList,
                  TransformerBlock, init)
from ..functional.gelu import GeluReference
from ..functional.layer_norm import LayerNormReference
from ..nn.attention import KVCacheStack, array_linear
from ..nn.layers import GELU
from ..tensor import Tensor, is_grad_enabled
from .common import padding_mask, reject_extra, token_ids
from .config import GPTConfig
from .registry import kind_of

# Multiply-adds below which a decode step's products run on ONE OpenBLAS thread. OpenBLAS
# shares any product of more than 2^18 multiply-adds (a matrix-vector one of more than 9216)
# between its threads, and tinyllm lets its idle workers sleep (OPENBLAS_THREAD_TIMEOUT=4,
# see tinyllm/__init__.py), so each such product of a decode step wakes a worker: tens of
# microseconds, for products that take 2 to 30 on one core at batch 1 to 8 of a small
# model. 2^20 keeps the GPT-2-124M shape's products (from 1.8M multiply-adds at batch 1,
# memory-bound) on every thread.
ONE_THREAD_WORK = 1 << 20


class GPT(Module):
    """GPT-2-style language model.

    Args:
        config: a :class:`GPTConfig` (sizes, dropout, bias, weight tying).

    Attributes:
        config: the configuration it was built from.
        tokenizer: the tokenizer of a Hugging Face checkpoint loaded by
            :meth:`from_pretrained`, else None.
    """

    default_pooling = "last"      # a head reads the last real token: the only one that has seen the whole text

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        config.validate()
        c = config
        self.config = c
        self.wte = Embedding(c.vocab_size, c.n_embd)
        self.wpe = LearnedPositionalEmbedding(c.block_size, c.n_embd)
        self.drop = Dropout(c.dropout)
        self.h = ModuleList(TransformerBlock(c.n_embd, c.n_head, dropout=c.dropout, bias=c.bias, causal=True,
                                             norm_first=True, eps=1e-5) for _ in range(c.n_layer))
        self.ln_f = LayerNorm(c.n_embd, eps=1e-5, bias=c.bias)
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.wte.weight        # one (V, C) matrix: embedding in, scores out
        init.gpt2_init_(self, c.n_layer)
        self.tokenizer: Any = None

    # ------------------------------------------------------------------ forward
    def forward(self, idx: Any, targets: Any = None) -> tuple[Tensor, Tensor | None]:
        """Next-token scores for every position, and the loss when ``targets`` are given.

        Args:
            idx: (B, T) integer token ids, T <= block_size.
            targets: (B, T) integer ids of the next tokens; -100 marks positions to ignore.

        Returns:
            logits (B, T, vocab_size) and the mean cross-entropy (a scalar Tensor) or None.
        """
        x = self._hidden(token_ids(idx))                                # (B, T) -> (B, T, C)
        logits = self.lm_head(x)                                        # (B, T, C) -> (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits, targets, ignore_index=-100)
        return logits, loss

    def encode(self, idx: Any, attention_mask: Any = None, **extra: Any) -> Tensor:
        """Final hidden states (after ``ln_f``), (B, T) -> (B, T, C): the :class:`Backbone` interface.

        ``attention_mask`` (B, T), True/1 for real tokens, hides padding keys;
        with right padding (the usual case) causal attention already keeps each
        real token from seeing the padding after it. No other input is taken.
        """
        reject_extra(extra, "a GPT backbone")
        ids = token_ids(idx)
        mask = None if attention_mask is None else padding_mask(attention_mask, ids.shape)
        return self._hidden(ids, mask)

    def _hidden(self, idx: Any, mask: Any = None, caches: KVCacheStack | None = None) -> Tensor:
        """Embeddings, the blocks and ``ln_f``; with ``caches``, positions continue after the cached ones."""
        b, t = idx.shape
        offset = caches.pos if caches is not None else 0
        if offset + t > self.config.block_size:
            raise ValueError(f"sequence length {offset + t} exceeds block_size {self.config.block_size}")
        tok = self.wte(idx)                                             # (B, T) -> (B, T, C)
        pos = self.wpe(t, offset)                                       # (T, C), positions offset..offset+T-1
        x = self.drop(tok + pos)                                        # (B, T, C) + (T, C) -> (B, T, C)
        for i, block in enumerate(self.h):
            x = block(x, mask, None if caches is None else caches[i])   # (B, T, C) -> (B, T, C)
        return self.ln_f(x)                                             # (B, T, C)

    # ------------------------------------------------------------------ decoding (tinyllm.decoding.Decoder)
    def new_cache(self, batch: int) -> KVCacheStack:
        """Empty keys and values for ``batch`` sequences: one :class:`KVCache` per block, block_size long."""
        c, w = self.config, self.ln_f.weight.data              # the activations' dtype (wte may be int8)
        return KVCacheStack(KVCache(batch, c.n_head, c.block_size, c.n_embd // c.n_head, w.dtype,
                                    backend.get_array_module(w)) for _ in range(c.n_layer))

    def next_logits(self, idx: Any, cache: KVCacheStack | None = None) -> Any:
        """Scores (B, V) of the token after ``idx`` (B, T), computed for the last position only.

        With ``cache``, ``idx`` continues the cached positions (their keys and
        values are appended); inference only (run under ``no_grad``), which in
        eval mode runs :meth:`decode_step`, on arrays.
        See :func:`tinyllm.decoding.generate` for the decoding loop.
        """
        ids = token_ids(idx)
        if cache is not None and not self.training and not is_grad_enabled():
            return self.decode_step(ids, cache)
        x = self._hidden(ids, caches=cache)                            # (B, T, C)
        return self.lm_head(x[:, -1:, :]).data[:, -1, :]               # (B, 1, C) -> (B, 1, V) -> (B, V)

    def decode_step(self, ids: Any, cache: KVCacheStack) -> Any:
        """Scores (B, V) of the next token after ``ids`` (B, T), which continue the P = ``cache.pos``
        cached positions: a prompt's prefill (T > 1) or one new token (T = 1).

        The forward of :meth:`_hidden` on the arrays themselves (no graph nodes,
        each layer's keys and values written in place into its cache, the kernels
        chosen once per shape and kept in ``cache.scratch``):

            x = W_te[ids] + W_pe[P..P+T-1]                            (B, T, C)
            x = x + Attn(LN_1(x));  x = x + MLP(LN_2(x))              per block
            logits = LN_f(x_last) W_te^T                              (B, V)

        Layers other than the plain ones (LoRA, int8) run their own forward.
        Eval mode, no gradients (dropout is the identity). When every product of the step
        is under :data:`ONE_THREAD_WORK` multiply-adds, the step runs on one OpenBLAS thread.
        """
        b, t = ids.shape
        pos, scratch = cache.pos, cache.scratch
        if pos + t > self.config.block_size:
            raise ValueError(f"sequence length {pos + t} exceeds block_size {self.config.block_size}")
        wte, wpe = self.wte, self.wpe
        x = wte.weight.data[ids] if type(wte) is Embedding else wte(ids).data                 # (B, T, C)
        x = x + (wpe.weight.data[pos:pos + t] if type(wpe) is LearnedPositionalEmbedding else wpe(t, pos).data)
        c = self.config
        small = max(b * t * 4 * c.n_embd, b * c.vocab_size) * c.n_embd <= ONE_THREAD_WORK   # the largest product
        with backend.one_blas_thread() if small and type(x) is np.ndarray else contextlib.nullcontext():
            u = _norm(self.h[0].ln_1, x, scratch)                                  # LN_1(x) (B, T, C)
            for i, block in enumerate(self.h):
                a = block.attn.decode_step(u, cache[i], scratch)                  # (B, T, C)
                u = _add_norm(block.ln_2, x, a, scratch)                          # x += a; LN_2(x)
                mlp = block.mlp
                h = array_linear(mlp.c_fc, u, scratch)                            # (B, T, C) -> (B, T, 4C)
                m = array_linear(mlp.c_proj, _activation(mlp.act, h, scratch), scratch)  # (B, T, 4C) -> (B, T, C)
                after = self.h[i + 1].ln_1 if i + 1 < len(self.h) else self.ln_f
                u = _add_norm(after, x, m, scratch)                               # x += m; the next LN(x)
            return array_linear(self.lm_head, u[:, -1], scratch)                  # (B, C) -> (B, V)

    # ------------------------------------------------------------------ size
    def num_parameters(self, non_embedding: bool = False, trainable_only: bool = False) -> int:
        """Number of weights (tied ones once). ``non_embedding`` leaves out the position
        embeddings, and the token embeddings too when they are not tied to the output
        layer (tied, they are the output layer's matmul weight), as nanoGPT counts."""
        n = super().num_parameters(trainable_only)
        if non_embedding:
            n -= self.wpe.weight.size
            if not self.config.tie_weights:
                n -= self.wte.weight.size
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token, forward and backward (PaLM, appendix B):
        6 N + 12 L H Q T, with N non-embedding parameters, L layers, H heads of size Q
        and a context of T tokens (block_size unless ``seq_len`` is given)."""
        c = self.config
        t = c.block_size if seq_len is None else int(seq_len)
        return 6 * self.num_parameters(non_embedding=True) + 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * t

    @classmethod
    def from_pretrained(cls, path: Any) -> "GPT":
        """Load a local Hugging Face GPT-2 directory (``config.json`` + ``model.safetensors``).

        The tokenizer in the directory, if any, is attached as ``model.tokenizer``.
        Nothing is downloaded. See :func:`tinyllm.models.hf.load_pretrained`.
        """
        kind = kind_of(cls)         # the reader is on the registry record: gpt.py never imports hf.py
        if kind is None or kind.load_pretrained is None:
            raise ValueError(f"no Hugging Face reader is registered for {cls.__name__}")
        model, tokenizer = kind.load_pretrained(path)
        model.tokenizer = tokenizer
        return model

    def extra_repr(self) -> str:
        c = self.config
        return f"n_layer={c.n_layer}, n_head={c.n_head}, n_embd={c.n_embd}, vocab_size={c.vocab_size}"


def _norm(layer: Module, x: Any, impls: dict) -> Any:
    """``layer`` (a LayerNorm) on the array ``x``, with the kernel chosen once per shape (kept in ``impls``)."""
    if type(layer) is not LayerNorm:
        return layer(Tensor._wrap(x)).data
    w, b = layer.weight, layer.bias
    w, b = (None if w is None else w.data), (None if b is None else b.data)
    key = ("layer_norm", x.shape, x.dtype)
    impl = impls.get(key)
    if impl is None:
        impl = impls[key] = kernels.select("layer_norm", x, w, b, reference=LayerNormReference)
    return impl.forward(x, w, b, layer.eps)


class AddLayerNormReference:
    """A pre-LN block's residual step: ``x += r`` in place, then ``LN(x)`` (the layer norm's
    reference forward). The compiled kernel (``kernels/cpu/decode_norm.py``) is tested against it."""

    def forward(self, x: Any, r: Any, w: Any, b: Any, eps: float) -> Any:
        x += r
        return LayerNormReference().forward(x, w, b, eps)


def _add_norm(layer: Module, x: Any, r: Any, impls: dict) -> Any:
    """``x += r``, then ``layer`` (a LayerNorm) on x: one kernel chosen once per shape (kept in ``impls``)."""
    if type(layer) is not LayerNorm:
        x += r
        return _norm(layer, x, impls)
    w, b = layer.weight, layer.bias
    w, b = (None if w is None else w.data), (None if b is None else b.data)
    key = ("add_layer_norm", x.shape, x.dtype)
    impl = impls.get(key)
    if impl is None:
        impl = impls[key] = kernels.select("add_layer_norm", x, r, w, b, reference=AddLayerNormReference)
    return impl.forward(x, r, w, b, layer.eps)


def _activation(layer: Module, x: Any, impls: dict) -> Any:
    """The MLP's activation on the array ``x``: tanh-GELU through its kernel (chosen once per shape), else the layer."""
    if type(layer) is not GELU:
        return layer(Tensor._wrap(x)).data
    key = ("gelu", x.shape, x.dtype)
    impl = impls.get(key)
    if impl is None:
        impl = impls[key] = kernels.select("gelu", x, reference=GeluReference)
    return impl.forward(x)
