"""Token tagging: a label for every word (named entities, chunks, roles) from any backbone.

    h      = backbone.encode(x, attention_mask)     (B, T) -> (B, T, C)
    logits = Dropout(h) W^T + b                      (B, T, C) -> (B, T, K) one score per tag and token
    loss   = cross-entropy over the labelled tokens  (linear head)
           | CRF negative log-likelihood over the words' first pieces   (``crf=True``)

Words are split into sub-word pieces by the tokenizer; only a word's first
piece carries its label, the other pieces (and [CLS], [SEP], padding) have
label -100 and are ignored (:func:`align_labels`). The CRF scores the sequence
of first pieces: they are gathered into a (B, W, K) tensor of word emissions,
padded on the right, so the chain runs over words and never over a
continuation piece.

The backbone is anything with ``encode(idx, attention_mask) -> (B, T, C)`` and
``config.n_embd`` (GPT, BERT, or any other encoder).
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from .. import functional as F
from ..backend import get_array_module, to_numpy
from ..nn import Dropout, Linear, Module, init
from ..tensor import Tensor
from .common import padding_mask, token_ids
from .crf import CRF

IGNORE = -100


def align_labels(word_ids: Sequence[int | None], word_labels: Sequence[int]) -> list[int]:
    """Token labels from word labels: the first piece of word w gets ``word_labels[w]``,
    later pieces of the same word and tokens of no word (``None``: [CLS], [SEP]) get -100.

    >>> align_labels([None, 0, 1, 1, 2, None], [3, 4, 5])
    [-100, 3, 4, -100, 5, -100]
    """
    out, prev = [], None
    for w in word_ids:
        if w is None or w == prev:
            out.append(IGNORE)
        else:
            if not 0 <= w < len(word_labels):
                raise ValueError(f"word id {w} is out of range for {len(word_labels)} word labels")
            out.append(int(word_labels[w]))
        prev = w
    return out


def gather_words(x: Tensor, starts: Any) -> tuple[Tensor, Any]:
    """The rows of ``x`` (B, T, K) at the True positions of ``starts`` (B, T), packed to the left:
    (B, W, K) with W the most starts in a row, and the (B, W) mask of real words."""
    xp = get_array_module(x.data)
    s = xp.asarray(starts).astype(bool)
    counts = s.sum(axis=1)                                             # (B,) words per row
    w = max(int(counts.max()), 1)
    b = s.shape[0]
    order = xp.argsort(~s, axis=1, kind="stable")[:, :w]               # (B, W) positions of the starts, in order
    mask = xp.arange(w)[None, :] < counts[:, None]                     # (B, W)
    rows = xp.arange(b)[:, None]
    return x[rows, order], mask                                        # (B, T, K) -> (B, W, K)


class TokenClassifier(Module):
    """A tag for every token of a backbone's output: a linear layer ``classifier``, optionally
    followed by a :class:`CRF` ``crf``.

    Args:
        backbone: any model with ``encode(idx, attention_mask) -> (B, T, C)`` and ``config.n_embd``.
        num_tags: K (>= 2).
        crf: score tag sequences with a linear-chain CRF instead of each token alone.
        tags, scheme: the tag names and "BIO"/"BIOES" to forbid impossible CRF transitions.
        dropout: on the hidden states; default the backbone's dropout.
        freeze_backbone: train the head only.
    """

    def __init__(self, backbone: Module, num_tags: int, crf: bool = False, tags: Sequence[str] | None = None,
                 scheme: str | None = None, dropout: float | None = None, freeze_backbone: bool = False) -> None:
        super().__init__()
        if isinstance(num_tags, bool) or not isinstance(num_tags, numbers.Integral) or num_tags < 2:
            raise ValueError(f"num_tags must be an integer >= 2, got {num_tags!r}")
        c = backbone.config.n_embd
        self.num_tags, self.use_crf, self.freeze_backbone = int(num_tags), bool(crf), bool(freeze_backbone)
        self.backbone = backbone
        self.drop = Dropout(getattr(backbone.config, "dropout", 0.0) if dropout is None else dropout)
        self.classifier = Linear(c, self.num_tags)
        init.normal_(self.classifier.weight, 0.0, 0.02)
        init.zeros_(self.classifier.bias)
        if crf:
            self.crf = CRF(self.num_tags, tags, scheme)
        if freeze_backbone:
            backbone.requires_grad_(False)

    def emissions(self, idx: Any, attention_mask: Any = None, **extra: Any) -> Tensor:
        """Per-token tag scores (B, T) -> (B, T, K)."""
        h = self.backbone.encode(token_ids(idx), attention_mask, **extra)   # (B, T) -> (B, T, C)
        return self.classifier(self.drop(h))                                # (B, T, C) -> (B, T, K)

    def forward(self, idx: Any, labels: Any = None, attention_mask: Any = None,
                **extra: Any) -> tuple[Tensor, Tensor | None]:
        """Tag scores (B, T, K) and, with ``labels`` (B, T) (-100 = ignored), the loss.

        Linear head: mean cross-entropy over the labelled tokens. CRF: mean over
        sequences of the CRF's negative log-likelihood of the labelled tokens' tags.
        """
        logits = self.emissions(idx, attention_mask, **extra)
        if labels is None:
            return logits, None
        xp = get_array_module(logits.data)
        y = xp.asarray(labels.data if isinstance(labels, Tensor) else labels).astype(np.int64)
        if tuple(y.shape) != tuple(logits.shape[:2]):
            raise ValueError(f"labels must have shape {tuple(logits.shape[:2])}, got {tuple(y.shape)}")
        if not self.use_crf:
            return logits, F.cross_entropy(logits, y, ignore_index=IGNORE)
        starts = y != IGNORE
        if not bool(starts.any(axis=1).all()):
            raise ValueError("every sequence needs at least one labelled token for the CRF")
        words, mask = gather_words(logits, starts)                      # (B, W, K), (B, W)
        word_tags, _ = gather_words(Tensor(y[:, :, None]), starts)
        return logits, self.crf(words, word_tags.data[:, :, 0], mask)

    def predict(self, idx: Any, word_starts: Any, attention_mask: Any = None, **extra: Any) -> list[list[int]]:
        """The tag id of every word (the positions where ``word_starts`` (B, T) is True), per sequence:
        the argmax per token, or the CRF's Viterbi path over the words."""
        logits = self.emissions(idx, attention_mask, **extra)
        b, t, _ = logits.shape
        starts = to_numpy(padding_mask(word_starts, (b, t), "word_starts"))
        if not self.use_crf:
            pred = to_numpy(logits.data).argmax(axis=-1)
            return [pred[i][starts[i]].tolist() for i in range(b)]
        xp = get_array_module(logits.data)
        words, mask = gather_words(logits, xp.asarray(starts))
        mask[~xp.asarray(starts).any(axis=1), 0] = True                 # an empty row decodes one dummy word
        path, _ = self.crf.decode(words, mask)
        path = to_numpy(path)
        return [path[i, :int(starts[i].sum())].tolist() for i in range(b)]

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, crf={self.use_crf}, freeze_backbone={self.freeze_backbone}"
