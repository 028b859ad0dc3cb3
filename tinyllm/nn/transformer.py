"""The Transformer block: attention and a feed-forward network, each wrapped
in a residual connection with layer normalization.

Pre-LN (GPT-2):   x = x + Attn(LN_1(x));   x = x + MLP(LN_2(x))
Post-LN (BERT, "Attention Is All You Need"):
                  x = LN_1(x + Attn(x));   x = LN_2(x + MLP(x))

A decoder block of an encoder-decoder model (``cross_attention=True``) has a
third sub-layer between the two, attending from x over the encoder's output
(the memory m), normalized the same way:

Pre-LN:           x = x + CrossAttn(LN_c(x), m)
Post-LN:          x = LN_c(x + CrossAttn(x, m))
"""
from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .attention import CrossAttention, KVCache, MemoryKV, MultiHeadAttention
from .layers import MLP, LayerNorm
from .module import Module


class TransformerBlock(Module):
    """One Transformer layer (``ln_1``, ``attn``, ``ln_2``, ``mlp``, GPT-2's names; with cross-attention
    also ``ln_cross_attn`` and ``crossattention``, the names of GPT-2's cross-attention layers).

    Args:
        n_embd, n_head: width and number of heads.
        dropout: on attention weights, attention output and MLP output.
        bias: biases in Linear and LayerNorm layers.
        causal: masked (decoder) self-attention.
        norm_first: pre-LN (True, GPT-2) or post-LN (False, BERT).
        activation: "gelu" or "relu" in the MLP.
        eps: LayerNorm epsilon (1e-5 GPT-2, 1e-12 BERT).
        cross_attention: add a cross-attention sub-layer over a memory (an encoder-decoder's decoder).
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, causal: bool = True,
                 norm_first: bool = True, activation: str = "gelu", eps: float = 1e-5,
                 cross_attention: bool = False) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.ln_1 = LayerNorm(n_embd, eps=eps, bias=bias)
        self.attn = MultiHeadAttention(n_embd, n_head, bias=bias, dropout=dropout, causal=causal)
        self.cross_attention = bool(cross_attention)
        if self.cross_attention:
            self.ln_cross_attn = LayerNorm(n_embd, eps=eps, bias=bias)
            self.crossattention = CrossAttention(n_embd, n_head, bias=bias, dropout=dropout)
        self.ln_2 = LayerNorm(n_embd, eps=eps, bias=bias)
        self.mlp = MLP(n_embd, activation=activation, bias=bias, dropout=dropout)

    def forward(self, x: Tensor, padding_mask: Any = None, cache: KVCache | None = None, memory: Tensor | None = None,
                memory_mask: Any = None, memory_cache: MemoryKV | None = None) -> Tensor:
        """(B, T, C) -> (B, T, C).

        Args:
            padding_mask: (B, T_keys) True for real tokens of ``x`` (see :class:`MultiHeadAttention`).
            cache: the self-attention :class:`KVCache` (decoding).
            memory: (B, Tk, C) what cross-attention reads (a block built with ``cross_attention``).
            memory_mask: (B, Tk) True for real memory positions.
            memory_cache: a :class:`MemoryKV`: the memory's keys and values, computed once (decoding).
        """
        if not self.cross_attention and (memory is not None or memory_cache is not None):
            raise ValueError("this block has no cross-attention: build it with cross_attention=True to pass a memory")
        if self.cross_attention and memory is None and not (memory_cache is not None and memory_cache.filled):
            raise ValueError("a block with cross-attention needs a memory (B, Tk, C)")
        if self.norm_first:
            x = x + self.attn(self.ln_1(x), padding_mask, cache)              # (B, T, C)
            if self.cross_attention:
                x = x + self.crossattention(self.ln_cross_attn(x), memory, memory_mask, memory_cache)
            return x + self.mlp(self.ln_2(x))                                 # (B, T, C)
        x = self.ln_1(x + self.attn(x, padding_mask, cache))                  # (B, T, C)
        if self.cross_attention:
            x = self.ln_cross_attn(x + self.crossattention(x, memory, memory_mask, memory_cache))
        return self.ln_2(x + self.mlp(x))                                     # (B, T, C)

    def extra_repr(self) -> str:
        return ("pre-LN" if self.norm_first else "post-LN") + (", cross-attention" if self.cross_attention else "")
