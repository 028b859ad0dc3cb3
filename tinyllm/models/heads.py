"""A sequence classifier: a fresh linear head on any pre-trained :class:`Backbone` (GPT, BERT).

    h      = backbone.encode(x)           (B, T) -> (B, T, C) hidden states
    u      = pool(h)                      (B, T, C) -> (B, C), one vector per sequence:
               "cls"    the first token (BERT's [CLS])
               "last"   the last real token (GPT: the only one that has read the whole text);
                        with ``pad_id`` set, Hugging Face's rule: the rightmost token whose id is not
                        ``pad_id`` (position 0 if there is none), whatever the attention mask says
               "mean"   the mean over real tokens
               "pooler" tanh(W h_first + b), BERT's pooler, trained with the head
    logits = Dropout(u) W_c^T + b_c       (B, C) -> (B, K)   (``bias=False``: no b_c)
    loss   = cross-entropy(logits, labels)

With ``freeze_backbone`` the backbone's weights get ``requires_grad=False``:
no graph is recorded through it, only the head learns (a linear probe).

A GPT classifier fine-tuned by ``tinyllm finetune`` is Hugging Face's
``GPT2ForSequenceClassification`` exactly (:func:`classifier_options`): "last"
pooling by ``pad_id``, no bias, so ``tinyllm export`` writes it losslessly.
"""
from __future__ import annotations

import numbers
from typing import Any

from .. import functional as F
from ..backend import get_array_module
from ..nn import Dropout, Linear, Module, init
from ..tensor import Tensor
from .backbone import check_backbone
from .common import padding_mask, token_ids
from .embedding import mean_pool
from .registry import get as get_kind
from .registry import kind_of

POOLINGS = ("cls", "last", "mean", "pooler")


class SequenceClassifier(Module):
    """Classify whole sequences with a pre-trained backbone and a new linear head ``classifier``.

    Args:
        backbone: a :class:`~tinyllm.models.Backbone` such as a GPT or a BERT (its weights
            usually loaded from a checkpoint).
        num_classes: number of labels K (>= 2).
        pooling: one of ``POOLINGS``; default the backbone's ``default_pooling``
            ("last" for GPT, "cls" for BERT).
        freeze_backbone: train the head only.
        dropout: on the pooled vector; default the backbone's dropout.
        bias: give the classifier a bias b_c (Hugging Face's GPT-2 head has none).
        pad_id: with "last" pooling, pool the rightmost token whose id is not ``pad_id``
            (Hugging Face's ``GPT2ForSequenceClassification`` rule) instead of the mask's last True.
    """

    def __init__(self, backbone: Module, num_classes: int, pooling: str | None = None,
                 freeze_backbone: bool = False, dropout: float | None = None, bias: bool = True,
                 pad_id: int | None = None) -> None:
        super().__init__()
        check_backbone(backbone)
        known = kind_of(backbone)
        kind = known.name if known else type(backbone).__name__
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        pooling = pooling or backbone.default_pooling
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if pad_id is not None and (pooling != "last" or isinstance(pad_id, bool)
                                   or not isinstance(pad_id, numbers.Integral) or pad_id < 0):
            raise ValueError(f"pad_id must be a token id (an integer >= 0) used with 'last' pooling, got {pad_id!r}")
        c = backbone.config.n_embd
        self.kind, self.num_classes, self.pooling = kind, int(num_classes), pooling
        self.bias, self.pad_id = bool(bias), None if pad_id is None else int(pad_id)
        self.backbone = backbone
        if pooling == "pooler":
            self.pooler = Linear(c, c)
            init.normal_(self.pooler.weight, 0.0, 0.02)
            init.zeros_(self.pooler.bias)
        self.drop = Dropout(backbone.config.dropout if dropout is None else dropout)
        self.classifier = Linear(c, self.num_classes, bias=self.bias)
        init.normal_(self.classifier.weight, 0.0, 0.02)
        if self.bias:
            init.zeros_(self.classifier.bias)
        self.freeze_backbone = bool(freeze_backbone)
        if freeze_backbone:
            backbone.requires_grad_(False)

    @classmethod
    def from_backbone_state(cls, kind: str, config: dict[str, Any], state_dict: dict[str, Any], num_classes: int,
                            pooling: str | None = None, freeze_backbone: bool = False) -> "SequenceClassifier":
        """Build a ``kind`` backbone from its config dict, load a checkpoint's weights into it
        (strictly: every name must match), and put a fresh head on it."""
        backbone = get_kind(kind).build(config)
        backbone.load_state_dict(state_dict, strict=True)
        return cls(backbone, num_classes, pooling, freeze_backbone)

    def pool(self, h: Tensor, attention_mask: Any = None, idx: Any = None) -> Tensor:
        """One vector per sequence from the hidden states, (B, T, C) -> (B, C) (``idx``: the token ids,
        which "last" pooling with a ``pad_id`` reads)."""
        b, t, _ = h.shape
        if self.pooling in ("cls", "pooler"):
            u = h[:, 0, :]                                            # (B, T, C) -> (B, C)
            return (self.pooler(u)).tanh() if self.pooling == "pooler" else u
        if self.pooling == "mean":
            return mean_pool(h, attention_mask)                       # (B, T, C) -> (B, C)
        xp = get_array_module(h.data)
        if self.pad_id is not None and idx is not None:               # GPT2ForSequenceClassification's rule
            real = xp.asarray(idx) != self.pad_id                      # (B, T)
            last = (xp.arange(t)[None, :] * real).argmax(axis=1)       # (B,) rightmost non-pad, 0 if none
            return h[xp.arange(b), last]                               # (B, T, C) -> (B, C)
        if attention_mask is None:
            return h[:, -1, :]                                        # (B, T, C) -> (B, C)
        mask = padding_mask(attention_mask, (b, t))
        last = t - 1 - mask[:, ::-1].argmax(axis=1)                   # (B,) index of the last real token
        return h[xp.arange(b), last]                                  # (B, T, C) -> (B, C)

    def forward(self, idx: Any, labels: Any = None, attention_mask: Any = None,
                segment_ids: Any = None) -> tuple[Tensor, Tensor | None]:
        """Class scores (B, num_classes) and, with ``labels`` (B,) in [0, K), the mean cross-entropy.

        ``attention_mask`` (B, T): True/1 for real tokens, False/0 for padding.
        ``segment_ids`` (a backbone that takes them, such as BERT): sentence A/B ids for pair tasks.
        """
        ids = token_ids(idx)
        extra = {} if segment_ids is None else {"segment_ids": segment_ids}
        h = self.backbone.encode(ids, attention_mask, **extra)            # (B, T) -> (B, T, C)
        u = self.pool(h, attention_mask, ids)                             # (B, T, C) -> (B, C)
        logits = self.classifier(self.drop(u))                            # (B, C) -> (B, K)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return logits, loss

    def extra_repr(self) -> str:
        return f"{self.kind}, num_classes={self.num_classes}, pooling={self.pooling!r}, " \
               f"freeze_backbone={self.freeze_backbone}" + ("" if self.bias else ", bias=False") \
               + ("" if self.pad_id is None else f", pad_id={self.pad_id}")


def classifier_options(kind: str, pooling: str | None, tokenizer: Any) -> dict[str, Any]:
    """``bias`` and ``pad_id`` of a new classifier: Hugging Face's GPT-2 head (no bias, the rightmost
    token that is not the padding id ``classification_arrays`` pads with) for a GPT with "last" pooling,
    the defaults otherwise."""
    if kind != "gpt" or (pooling or "last") != "last":
        return {"bias": True, "pad_id": None}
    pad = getattr(tokenizer, "pad_id", None)
    return {"bias": False, "pad_id": 0 if pad is None else int(pad)}
