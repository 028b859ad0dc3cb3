"""A PyTorch BERT identical to ``tinyllm.models.BERT``, the reference for the MLM benchmark.

Same architecture (``tinyllm/models/bert.py``): token + learned position +
segment embeddings, LayerNorm, post-LN blocks (LN(x + Attn(x)), then
LN(x + MLP(x))) with a fused QKV projection and a tanh-GELU MLP of width 4C,
an MLM head LN(GELU(dense(h))) and a decoder tied to the token embeddings,
LayerNorm eps 1e-12; and the same parameter names, so a tinyllm
``state_dict()`` loads by name (:func:`load_from_tinyllm`) and both start from
the same point. Attention is PyTorch's fused ``scaled_dot_product_attention``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool) -> None:
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)                                      # (B, T, C) each
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)                  # (B, nh, T, hs)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))                       # (B, T, C)


class MLP(nn.Module):
    def __init__(self, n_embd: int, bias: bool) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class PostLNBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int, eps: float, bias: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=eps, bias=bias)
        self.attn = Attention(n_embd, n_head, bias)
        self.ln_2 = nn.LayerNorm(n_embd, eps=eps, bias=bias)
        self.mlp = MLP(n_embd, bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.ln_1(x + self.attn(x, mask))
        return self.ln_2(x + self.mlp(x))


class MLMHead(nn.Module):
    def __init__(self, n_embd: int, vocab_size: int, eps: float, bias: bool) -> None:
        super().__init__()
        self.dense = nn.Linear(n_embd, n_embd, bias=bias)
        self.ln = nn.LayerNorm(n_embd, eps=eps, bias=bias)
        self.decoder = nn.Linear(n_embd, vocab_size, bias=bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.ln(F.gelu(self.dense(h), approximate="tanh")))     # (B, T, V)


class ReferenceBERT(nn.Module):
    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
                 type_vocab_size: int = 2, pad_id: int = 0, eps: float = 1e-12, bias: bool = True) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd, padding_idx=pad_id)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.wse = nn.Embedding(type_vocab_size, n_embd)
        self.ln_emb = nn.LayerNorm(n_embd, eps=eps, bias=bias)
        self.h = nn.ModuleList([PostLNBlock(n_embd, n_head, eps, bias) for _ in range(n_layer)])
        self.mlm = MLMHead(n_embd, vocab_size, eps, bias)
        self.mlm.decoder.weight = self.wte.weight                                    # tied, as tinyllm's

    def encode(self, idx: torch.Tensor, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        t = idx.shape[1]
        seg = torch.zeros_like(idx) if segment_ids is None else segment_ids
        x = self.ln_emb(self.wte(idx) + self.wpe(torch.arange(t, device=idx.device)) + self.wse(seg))
        for block in self.h:
            x = block(x)
        return x                                                                     # (B, T, C)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.mlm(self.encode(idx))                                          # (B, T, V)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-100)

    def configure_optimizer(self, lr: float, weight_decay: float, betas=(0.9, 0.95), eps: float = 1e-8):
        decay = [p for p in self.parameters() if p.dim() >= 2]
        other = [p for p in self.parameters() if p.dim() < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                  {"params": other, "weight_decay": 0.0}], lr=lr, betas=betas, eps=eps)


def load_from_tinyllm(ref: nn.Module, state: dict) -> None:
    """Copy a tinyllm model's ``state_dict()`` into ``ref`` by name; every name must match."""
    own = ref.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(f"names differ: missing {missing[:5]}, unexpected {unexpected[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            if tuple(own[name].shape) != tuple(value.shape):
                raise ValueError(f"{name}: shape {tuple(value.shape)}, the reference has {tuple(own[name].shape)}")
            own[name].copy_(torch.from_numpy(value.copy()))
