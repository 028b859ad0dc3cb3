"""Extractive question answering: the answer is a span of the context (SQuAD; Devlin et al., 2019, sec. 4.2).

    h            = backbone.encode(x, attention_mask)      (B, T) -> (B, T, C)
    [s, e]       = h W^T + b                               (B, T, C) -> (B, T, 2): start and end scores
    loss         = (CE(s, start) + CE(e, end)) / 2         windows without the answer are ignored (-100)
    answer       = argmax_{i <= j < i + L} s_i + e_j        over the context tokens of every window

A context longer than the model's window is cut into overlapping windows
(Hugging Face's ``doc_stride``): each holds the question and a slice of the
context, ``[CLS] question [SEP] context slice [SEP]`` for BERT, and
consecutive slices share ``stride`` tokens so every answer lies whole inside
some window. Each context token remembers its character span in the context,
so the best span of any window maps back to the context's characters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import functional as F
from ..backend import get_array_module
from ..nn import Dropout, Linear, Module, init
from ..tensor import Tensor
from .common import padding_mask, token_ids

IGNORE = -100


def encode_with_offsets(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``text`` and each token's character span ``(start, end)`` in it.

    Uses the tokenizer's own ``encode_with_offsets`` when it has one; a tokenizer
    of the ``tokenizers`` library (byte-level BPE, WordPiece) reports offsets
    itself; a character tokenizer has one token per character.
    """
    own = getattr(tokenizer, "encode_with_offsets", None)
    if own is not None:
        return own(text)
    lib = getattr(tokenizer, "_tok", None)
    if lib is not None and hasattr(lib, "encode"):
        enc = lib.encode(text, add_special_tokens=False)
        return list(enc.ids), [tuple(o) for o in enc.offsets]
    ids = tokenizer.encode(text)
    if len(ids) != len(text):                                          # a special token's text got merged
        ids = [tokenizer.encode(ch)[0] for ch in text]
    return list(ids), [(i, i + 1) for i in range(len(text))]


@dataclass
class Window:
    """One model input: the question and a slice of the context.

    ``offsets[t]`` is the character span in the context of token t, or None for
    question and special tokens; ``start``/``end`` are the answer's token
    positions, -100 when the answer is not wholly inside this window.
    """

    example: int
    ids: list[int]
    segment_ids: list[int]
    offsets: list[tuple[int, int] | None]
    start: int = IGNORE
    end: int = IGNORE


def answer_tokens(offsets: Sequence[tuple[int, int] | None], char_start: int, char_end: int) -> tuple[int, int]:
    """The first and last token covering characters [char_start, char_end), or (-100, -100) if any part is
    outside the tokens of ``offsets``."""
    ctx = [(t, o) for t, o in enumerate(offsets) if o is not None]
    if not ctx or char_start < ctx[0][1][0] or char_end > ctx[-1][1][1]:
        return IGNORE, IGNORE
    start = next(t for t, (a, b) in ctx if b > char_start)
    end = [t for t, (a, b) in ctx if a < char_end][-1]
    return (start, end) if start <= end else (IGNORE, IGNORE)


def make_windows(tokenizer: Any, question: str, context: str, max_length: int, stride: int, example: int = 0,
                 answer: tuple[int, int] | None = None, bert_style: bool = True) -> list[Window]:
    """Windows of ``question`` + slices of ``context`` of at most ``max_length`` tokens, overlapping by ``stride``.

    Args:
        tokenizer: any tinyllm tokenizer (for BERT style, with [CLS] and [SEP]).
        answer: the answer's character span (start, end) in the context, for training labels.
        bert_style: ``[CLS] q [SEP] ctx [SEP]`` with segment ids 0 / 1; otherwise ``q ctx`` (GPT),
            separated by the end-of-text token when the tokenizer has one.
    The question keeps at most half the window.
    """
    q_ids = tokenizer.encode(question)[:max_length // 2]
    c_ids, c_off = encode_with_offsets(tokenizer, context)
    cls, sep = (tokenizer.cls_id, tokenizer.sep_id) if bert_style else (None, None)
    if bert_style and (cls is None or sep is None):
        raise ValueError("BERT-style QA windows need a tokenizer with [CLS] and [SEP]")
    head = [cls, *q_ids, sep] if bert_style else q_ids + ([tokenizer.eos_id] if tokenizer.eos_id is not None else [])
    tail = [sep] if bert_style else []
    budget = max_length - len(head) - len(tail)
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room for the context after the question")
    if not 0 <= stride < budget:
        raise ValueError(f"stride must be in [0, {budget}) (the context tokens per window), got {stride}")
    windows, begin = [], 0
    while True:
        part = slice(begin, min(begin + budget, len(c_ids)))
        ids = head + c_ids[part] + tail
        offsets = [None] * len(head) + list(c_off[part]) + [None] * len(tail)
        segs = [0] * len(head) + [1] * (len(ids) - len(head)) if bert_style else [0] * len(ids)
        w = Window(example, ids, segs, offsets)
        if answer is not None:
            w.start, w.end = answer_tokens(offsets, *answer)
        windows.append(w)
        if part.stop >= len(c_ids):
            return windows
        begin += budget - stride


def best_span(start_logits: Any, end_logits: Any, allowed: Any, max_answer: int) -> tuple[int, int, float]:
    """argmax over i <= j < i + max_answer, both ``allowed``, of start_logits[i] + end_logits[j]:
    (i, j, score), or (-1, -1, -inf) when no position is allowed."""
    s = np.where(allowed, np.asarray(start_logits, dtype=np.float64), -np.inf)
    e = np.where(allowed, np.asarray(end_logits, dtype=np.float64), -np.inf)
    score = s[:, None] + e[None, :]                                    # (T, T) start i, end j
    t = len(s)
    i, j = np.indices((t, t))
    score = np.where((j >= i) & (j - i < max_answer), score, -np.inf)
    flat = int(score.argmax())
    if not np.isfinite(score.reshape(-1)[flat]):
        return -1, -1, float("-inf")
    return flat // t, flat % t, float(score.reshape(-1)[flat])


def decode_answer(context: str, windows: Sequence[Window], start_logits: Sequence[Any], end_logits: Sequence[Any],
                  max_answer: int = 30) -> tuple[str, int, float]:
    """The best context span over all windows of one example: (text, character start, score)."""
    best = ("", -1, float("-inf"))
    for w, s, e in zip(windows, start_logits, end_logits):
        allowed = np.array([o is not None for o in w.offsets] + [False] * (len(s) - len(w.offsets)))
        i, j, score = best_span(s, e, allowed, max_answer)
        if score > best[2]:
            a, b = w.offsets[i][0], w.offsets[j][1]
            text = context[a:b]
            lead = len(text) - len(text.lstrip())                          # byte-level BPE keeps the space
            best = (text.strip(), a + lead, score)
    return best


class SpanExtractor(Module):
    """Start and end scores for every token from any backbone (``encode`` + ``config.n_embd``),
    with Hugging Face's head name ``qa_outputs`` (a Linear C -> 2)."""

    def __init__(self, backbone: Module, dropout: float | None = None, freeze_backbone: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.freeze_backbone = bool(freeze_backbone)
        self.drop = Dropout(getattr(backbone.config, "dropout", 0.0) if dropout is None else dropout)
        self.qa_outputs = Linear(backbone.config.n_embd, 2)
        init.normal_(self.qa_outputs.weight, 0.0, 0.02)
        init.zeros_(self.qa_outputs.bias)
        if freeze_backbone:
            backbone.requires_grad_(False)

    def forward(self, idx: Any, start_positions: Any = None, end_positions: Any = None, attention_mask: Any = None,
                **extra: Any) -> tuple[tuple[Tensor, Tensor], Tensor | None]:
        """``(start_logits, end_logits)``, each (B, T), and with the answer positions (B,) the loss
        (CE(start) + CE(end)) / 2 over the windows whose answer is not -100 (padding excluded
        from the softmax; the logits returned are the raw ones, as Hugging Face's)."""
        h = self.backbone.encode(token_ids(idx), attention_mask, **extra)   # (B, T) -> (B, T, C)
        logits = self.qa_outputs(self.drop(h))                              # (B, T, C) -> (B, T, 2)
        start, end = logits[:, :, 0], logits[:, :, 1]                       # (B, T) each
        if start_positions is None or end_positions is None:
            return (start, end), None
        xp = get_array_module(logits.data)
        sp, ep = (xp.asarray(p.data if isinstance(p, Tensor) else p).astype(np.int64)
                  for p in (start_positions, end_positions))
        t = logits.shape[1]
        for name, p in (("start_positions", sp), ("end_positions", ep)):
            if p.shape != (logits.shape[0],):
                raise ValueError(f"{name} must have shape ({logits.shape[0]},), got {tuple(p.shape)}")
            if bool((((p < 0) | (p >= t)) & (p != IGNORE)).any()):
                raise ValueError(f"{name} must be token positions in [0, {t}) or -100")
        if attention_mask is not None:                                      # padding is never an answer
            pad = ~padding_mask(attention_mask, tuple(start.shape))
            start, end = start.masked_fill(pad, -1e9), end.masked_fill(pad, -1e9)
        loss = (F.cross_entropy(start, sp, ignore_index=IGNORE) + F.cross_entropy(end, ep, ignore_index=IGNORE)) / 2
        return (logits[:, :, 0], logits[:, :, 1]), loss

    def extra_repr(self) -> str:
        return f"freeze_backbone={self.freeze_backbone}"
