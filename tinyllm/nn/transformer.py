"""The Transformer block: attention and a feed-forward network, each wrapped
in a residual connection with layer normalization.

Pre-LN (GPT-2):   x = x + Attn(LN_1(x));   x = x + MLP(LN_2(x))
Post-LN (BERT, "Attention Is All You Need"):
                  x = LN_1(x + Attn(x));   x = LN_2(x + MLP(x))
"""
from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .attention import KVCache, MultiHeadAttention
from .layers import MLP, LayerNorm
from .module import Module


class TransformerBlock(Module):
    """One Transformer layer (``ln_1``, ``attn``, ``ln_2``, ``mlp``, GPT-2's names).

    Args:
        n_embd, n_head: width and number of heads.
        dropout: on attention weights, attention output and MLP output.
        bias: biases in Linear and LayerNorm layers.
        causal: masked (decoder) self-attention.
        norm_first: pre-LN (True, GPT-2) or post-LN (False, BERT).
        activation: "gelu" or "relu" in the MLP.
        eps: LayerNorm epsilon (1e-5 GPT-2, 1e-12 BERT).
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, causal: bool = True,
                 norm_first: bool = True, activation: str = "gelu", eps: float = 1e-5) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.ln_1 = LayerNorm(n_embd, eps=eps, bias=bias)
        self.attn = MultiHeadAttention(n_embd, n_head, bias=bias, dropout=dropout, causal=causal)
        self.ln_2 = LayerNorm(n_embd, eps=eps, bias=bias)
        self.mlp = MLP(n_embd, activation=activation, bias=bias, dropout=dropout)

    def forward(self, x: Tensor, padding_mask: Any = None, cache: KVCache | None = None) -> Tensor:
        if self.norm_first:
            x = x + self.attn(self.ln_1(x), padding_mask, cache)              # (B, T, C)
            return x + self.mlp(self.ln_2(x))                                 # (B, T, C)
        x = self.ln_1(x + self.attn(x, padding_mask, cache))                  # (B, T, C)
        return self.ln_2(x + self.mlp(x))                                     # (B, T, C)

    def extra_repr(self) -> str:
        return "pre-LN" if self.norm_first else "post-LN"
