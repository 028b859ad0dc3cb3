"""BERT: a bidirectional Transformer encoder, pre-trained by masked language
modelling (Devlin et al., 2019).

Every position sees every real (non-padding) token, left and right. Some
input tokens are hidden (``[MASK]``, a random token, or left as they are:
``tinyllm.data.mask_tokens``) and the model predicts the originals:

    e      = W_te[x_t] + W_pe[t] + W_se[s_t]       token + position + segment embeddings
    h_0    = Dropout(LN_emb(e))
    h_l    = Block_l(h_{l-1})                      post-LN: LN(h + Attn(h)), then LN(h + MLP(h))
    z      = LN(GELU(h_L W_d^T + b_d))             MLM transform
    logits = z W_te^T + b                          decoder tied to the token embeddings
    loss   = mean over masked positions of -log softmax(logits_t)[x_t]

``encode`` returns h_L (B, T, C), the features a classifier or a sentence
encoder reads. GELU is the tanh approximation (original BERT uses erf; they
differ by < 1e-3); ``exact_gelu=True`` in the config uses erf.
"""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..backend import get_array_module
from ..nn import (GELU, Dropout, Embedding, LayerNorm, LearnedPositionalEmbedding, Linear, Module, ModuleList,
                  TransformerBlock, init)
from ..tensor import Tensor
from .common import padding_mask, token_ids
from .config import BertConfig


class MLMHead(Module):
    """Masked-LM output: ``decoder(LN(GELU(dense(h))))``, (B, T, C) -> (B, T, V)."""

    def __init__(self, n_embd: int, vocab_size: int, eps: float = 1e-12, bias: bool = True) -> None:
        super().__init__()
        self.dense = Linear(n_embd, n_embd, bias)
        self.act = GELU(approximate="tanh")
        self.ln = LayerNorm(n_embd, eps=eps, bias=bias)
        self.decoder = Linear(n_embd, vocab_size, bias)

    def forward(self, h: Tensor) -> Tensor:
        z = self.ln(self.act(self.dense(h)))                          # (B, T, C) -> (B, T, C)
        return self.decoder(z)                                        # (B, T, C) -> (B, T, V)


class BERT(Module):
    """BERT-style encoder with a masked-language-model head.

    Args:
        config: a :class:`BertConfig`.

    Padding is told with ``attention_mask`` (True/1 for real tokens); without
    one every position is attended to, as in Hugging Face's BERT.
    """

    default_pooling = "cls"       # a head reads the [CLS] token, first in every input

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"BERT needs a BertConfig, got {type(config).__name__}")
        config.validate()
        c = config
        self.config = c
        self.wte = Embedding(c.vocab_size, c.n_embd, padding_idx=c.pad_id)
        self.wpe = LearnedPositionalEmbedding(c.block_size, c.n_embd)
        self.wse = Embedding(c.type_vocab_size, c.n_embd)
        self.ln_emb = LayerNorm(c.n_embd, eps=c.eps, bias=c.bias)
        self.drop = Dropout(c.dropout)
        self.h = ModuleList(TransformerBlock(c.n_embd, c.n_head, dropout=c.dropout, bias=c.bias, causal=False,
                                             norm_first=False, eps=c.eps) for _ in range(c.n_layer))
        self.mlm = MLMHead(c.n_embd, c.vocab_size, c.eps, c.bias)
        if c.tie_weights:
            self.mlm.decoder.weight = self.wte.weight                 # one (V, C) matrix in and out
        if c.exact_gelu:                                              # erf GELU, as Hugging Face's "gelu"
            for block in self.h:
                block.mlp.act = GELU(approximate="none")
            self.mlm.act = GELU(approximate="none")
        self._init_weights()

    def _init_weights(self, std: float = 0.02) -> None:
        """BERT's initialization: Linear and Embedding weights ~ N(0, 0.02^2), biases 0,
        LayerNorm gain 1 and shift 0, the padding embedding 0."""
        for m in self.modules():
            if isinstance(m, Linear):
                init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, Embedding):
                init.normal_(m.weight, 0.0, std)
            elif isinstance(m, LayerNorm):
                if m.weight is not None:
                    init.ones_(m.weight)
                if m.bias is not None:
                    init.zeros_(m.bias)
        self.wte.weight.data[self.config.pad_id] = 0

    def encode(self, idx: Any, attention_mask: Any = None, segment_ids: Any = None) -> Tensor:
        """Contextual hidden states of the last layer, (B, T) -> (B, T, C): the :class:`Backbone` interface.

        Args:
            idx: (B, T) token ids, T <= block_size.
            attention_mask: (B, T), True/1 for real tokens, False/0 for padding (never attended to).
            segment_ids: (B, T) sentence ids in [0, type_vocab_size); zeros when None.
        """
        c = self.config
        ids = token_ids(idx)
        b, t = ids.shape
        if t > c.block_size:
            raise ValueError(f"sequence length {t} exceeds block_size {c.block_size}")
        mask = None
        if attention_mask is not None:
            mask = padding_mask(attention_mask, ids.shape)
            if bool(mask.all()):
                mask = None                                           # nothing to hide: skip the masking
        if segment_ids is None:
            seg = get_array_module(ids).zeros_like(ids)               # (B, T) all sentence A
        else:
            seg = token_ids(segment_ids, "segment_ids")
            if seg.shape != ids.shape:
                raise ValueError(f"segment_ids must have shape {ids.shape} like idx, got {seg.shape}")
            if int(seg.min()) < 0 or int(seg.max()) >= c.type_vocab_size:
                raise ValueError(f"segment_ids must be in [0, {c.type_vocab_size}), "
                                 f"got min {int(seg.min())}, max {int(seg.max())}")
        e = self.wte(ids) + self.wpe(t) + self.wse(seg)               # (B, T, C) + (T, C) + (B, T, C)
        x = self.drop(self.ln_emb(e))                                 # (B, T, C)
        for block in self.h:
            x = block(x, mask)                                        # (B, T, C) -> (B, T, C)
        return x

    def forward(self, idx: Any, targets: Any = None, attention_mask: Any = None,
                segment_ids: Any = None) -> tuple[Tensor, Tensor | None]:
        """Masked-LM scores for every position, and the loss when ``targets`` are given.

        Args:
            idx, attention_mask, segment_ids: as :meth:`encode`.
            targets: (B, T) original ids at the masked positions, -100 everywhere else.

        Returns:
            logits (B, T, vocab_size) and the mean cross-entropy over the masked
            positions (a scalar Tensor), or None.
        """
        h = self.encode(idx, attention_mask, segment_ids)             # (B, T, C)
        logits = self.mlm(h)                                          # (B, T, C) -> (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits, targets, ignore_index=-100)
        return logits, loss

    def num_parameters(self, non_embedding: bool = False, trainable_only: bool = False) -> int:
        """Number of weights (tied ones once); ``non_embedding`` leaves out the position and
        segment embeddings, and the token embeddings when they are not tied to the decoder."""
        n = super().num_parameters(trainable_only)
        if non_embedding:
            n -= self.wpe.weight.size + self.wse.weight.size
            if not self.config.tie_weights:
                n -= self.wte.weight.size
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token, 6 N + 12 L H Q T (PaLM, appendix B); see ``GPT.flops_per_token``."""
        c = self.config
        t = c.block_size if seq_len is None else int(seq_len)
        return 6 * self.num_parameters(non_embedding=True) + 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * t

    def extra_repr(self) -> str:
        c = self.config
        return f"n_layer={c.n_layer}, n_head={c.n_head}, n_embd={c.n_embd}, vocab_size={c.vocab_size}"
