"""Sentence embeddings trained contrastively (InfoNCE; SimCSE, Sentence-BERT).

A sentence becomes one vector: the backbone's hidden states averaged over its
real tokens,

    u = sum_t m_t h_t / sum_t m_t          (m_t = 1 for real tokens, 0 for padding)

and a batch of B pairs (a_i, b_i) that mean the same thing (a paraphrase, or
two noisy copies of a sentence) is trained so that u(a_i) is closer to u(b_i)
than to any other u(b_j): the InfoNCE loss over cosine similarities / tau

    L = -(1/B) sum_i log( exp(s_ii) / sum_j exp(s_ij) ),   s_ij = cos(u(a_i), u(b_j)) / tau

(``tinyllm.nn.losses.contrastive_loss``), averaged over both directions.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..backend import get_array_module
from ..nn import Module
from ..nn.losses import contrastive_loss
from ..tensor import Tensor
from .backbone import check_backbone
from .common import inference, padding_mask, token_ids


def mean_pool(hidden: Tensor, attention_mask: Any = None) -> Tensor:
    """Mean of the hidden states over real tokens, (B, T, C) -> (B, C).

    ``attention_mask`` (B, T): True/1 for real tokens; None averages every position.
    A row with no real token gives a zero vector.
    """
    if attention_mask is None:
        return hidden.mean(axis=1)                                     # (B, T, C) -> (B, C)
    b, t, _ = hidden.shape
    xp = get_array_module(hidden.data)
    m = padding_mask(attention_mask, (b, t)).astype(hidden.dtype)     # (B, T) of 0/1
    count = xp.maximum(m.sum(axis=1, keepdims=True), 1)                # (B, 1) real tokens per row
    weights = Tensor._wrap((m / count)[:, :, None])                    # (B, T, 1), rows sum to 1
    return (hidden * weights).sum(axis=1)                              # (B, T, C) -> (B, C)


def info_nce_loss(z_a: Tensor, z_b: Tensor, temperature: float = 0.05, symmetric: bool = True) -> Tensor:
    """InfoNCE of B paired embeddings (row i of z_a matches row i of z_b), on cosine similarities."""
    return contrastive_loss(z_a, z_b, temperature=temperature, symmetric=symmetric, normalize=True)


class SentenceEncoder(Module):
    """Mean-pooled sentence embeddings from any :class:`~tinyllm.models.Backbone` (GPT, BERT).

    Args:
        backbone: a model with ``encode(idx, attention_mask) -> (B, T, C)`` and ``config.n_embd``.
    """

    def __init__(self, backbone: Module) -> None:
        super().__init__()
        check_backbone(backbone, pooling=False)
        self.backbone = backbone

    def forward(self, idx: Any, attention_mask: Any = None) -> Tensor:
        """Sentence vectors (B, C) of token ids (B, T) (not normalized)."""
        ids = token_ids(idx)
        h = self.backbone.encode(ids, attention_mask=attention_mask)   # (B, T) -> (B, T, C)
        return mean_pool(h, attention_mask)                            # (B, T, C) -> (B, C)

    def loss(self, idx_a: Any, idx_b: Any, mask_a: Any = None, mask_b: Any = None, temperature: float = 0.05,
             symmetric: bool = True) -> Tensor:
        """InfoNCE loss of a batch of pairs: row i of ``idx_a`` and row i of ``idx_b`` are positives."""
        return info_nce_loss(self(idx_a, mask_a), self(idx_b, mask_b), temperature, symmetric)

    def embed(self, idx: Any, attention_mask: Any = None) -> np.ndarray:
        """Unit-length sentence vectors as a NumPy array (N, C), computed in eval mode without a graph."""
        with inference(self):
            u = backend.to_numpy(self(idx, attention_mask).data).astype(np.float64)       # (N, C)
        return u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
