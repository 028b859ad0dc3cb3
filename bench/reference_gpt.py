"""A PyTorch GPT identical to ``tinyllm.models.GPT``, the reference for the benchmarks.

Same architecture (GPT-2: learned positions, pre-LN blocks, fused QKV,
tanh-GELU MLP, final LayerNorm, LM head tied to the token embedding), same
parameter names, so weights copy across with :func:`load_from_tinyllm` and
both start from the same point. Attention uses PyTorch's fused
``scaled_dot_product_attention``: the reference is PyTorch at its eager best.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.mlp_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.drop = nn.Dropout(dropout)

    def attend(self, x: torch.Tensor, cache: list | None) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        if cache is not None:  # [k, v] of the past, grown in place
            if cache:
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        causal = cache is None or q.shape[2] > 1
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.drop(self.c_proj(y.transpose(1, 2).reshape(b, t, c)))

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        x = x + self.attend(self.ln_1(x), cache)
        return x + self.drop(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")))


class ReferenceGPT(nn.Module):
    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
                 dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([Block(n_embd, n_head, dropout, bias) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif "ln" not in name:
                nn.init.zeros_(p)

    def encode(self, idx: torch.Tensor, caches: list | None = None) -> torch.Tensor:
        """Final hidden states (after ``ln_f``), (B, T) -> (B, T, C), as tinyllm's ``GPT.encode``."""
        t = idx.shape[1]
        start = caches[0][0].shape[2] if caches and caches[0] else 0
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(start, start + t, device=idx.device)))
        for i, block in enumerate(self.h):
            x = block(x, caches[i] if caches is not None else None)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, caches: list | None = None):
        x = self.encode(idx, caches)
        if targets is None:
            return x[:, -1:] @ self.wte.weight.T, None
        logits = x @ self.wte.weight.T
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-100)

    def configure_optimizer(self, lr: float, weight_decay: float, betas=(0.9, 0.95), eps: float = 1e-8):
        decay = [p for p in self.parameters() if p.dim() >= 2]
        other = [p for p in self.parameters() if p.dim() < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                  {"params": other, "weight_decay": 0.0}], lr=lr, betas=betas, eps=eps)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy decoding: the plain PyTorch loop with a KV cache, as tinyllm's ``generate`` computes it.

        Within the context each new token is one step over the cache (keys and values
        concatenated onto it). Past ``block_size`` the window slides and, with learned
        positions, every position of it changes: each token is then one forward of the
        last ``block_size`` tokens without a cache (nanoGPT's crop-and-forward loop).
        """
        self.eval()
        caches: list = [[] for _ in self.h]
        logits, _ = self(idx[:, -self.block_size:], caches=caches)   # prefill
        for i in range(max_new_tokens):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            idx = torch.cat([idx, nxt], dim=1)
            if i == max_new_tokens - 1:
                break                                                     # (no scores after the last token)
            if idx.shape[1] > self.block_size:                            # the window slides: recompute it
                logits, _ = self(idx[:, -self.block_size:])
            else:
                logits, _ = self(nxt, caches=caches)
        return idx


# tinyllm name -> reference name (Linear weights share PyTorch's (out, in) layout).
def _ref_name(name: str) -> str:
    return (name.replace("attn.c_attn", "c_attn").replace("attn.c_proj", "c_proj")
            .replace("mlp.c_fc", "c_fc").replace("mlp.c_proj", "mlp_proj"))


def load_from_tinyllm(ref: ReferenceGPT, state: dict) -> None:
    """Copy a tinyllm GPT's ``state_dict()`` into ``ref`` (so both start from the same weights)."""
    own = ref.state_dict()
    with torch.no_grad():
        for name, value in state.items():
            if name == "lm_head.weight":
                continue  # tied to wte
            own[_ref_name(name)].copy_(torch.from_numpy(value.copy()))
