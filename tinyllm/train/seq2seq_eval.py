"""Using a trained encoder-decoder: restore it, translate sources, score the outputs.

Scores of a hypothesis h against a reference r, over symbols (characters or
phonemes):

    token error rate     TER = sum_i edit(h_i, r_i) / sum_i |r_i|   (PER for phonemes, CER for characters)
    sequence error rate  SER = #{i : h_i != r_i} / N                 (WER of grapheme-to-phoneme: whole words)

``edit`` is the Levenshtein distance (substitutions, insertions, deletions,
each costing 1). BLEU and chrF, for translation-like tasks, come from
``sacrebleu`` when it is installed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checkpoint import CheckpointError, load_checkpoint
from ..data.pairs import PairVocab, pair_vocabs_from_json


@dataclass
class RestoredSeq2Seq:
    model: Any
    src_vocab: PairVocab
    tgt_vocab: PairVocab
    checkpoint: Any = None


def is_seq2seq_checkpoint(ckpt: Any) -> bool:
    return ckpt.config.get("model", {}).get("kind") == "seq2seq"


def restore_seq2seq(path: str | os.PathLike, prefer: str = "best") -> RestoredSeq2Seq:
    """The model and both vocabularies of a seq2seq run or checkpoint directory, every piece checked."""
    from ..models import registry  # noqa: PLC0415

    ckpt = load_checkpoint(path, prefer=prefer, with_optimizer=False)
    if not is_seq2seq_checkpoint(ckpt):
        raise CheckpointError(f"'{path}' holds a {ckpt.config['model'].get('kind')} model, not a seq2seq one")
    try:
        model = registry.get("seq2seq").build(ckpt.config["model"].get("config"))
        model.load_state_dict(ckpt.weights, strict=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {ckpt.path}: unusable seq2seq model ({exc})") from None
    src, tgt = pair_vocabs_from_json(ckpt.tokenizer_json or "", str(ckpt.path))
    c = model.config
    if (src.vocab_size, tgt.vocab_size) != (c.source_vocab, c.vocab_size):
        raise CheckpointError(f"checkpoint {ckpt.path}: its vocabularies ({src.vocab_size}, {tgt.vocab_size}) "
                              f"are not the model's ({c.source_vocab}, {c.vocab_size})")
    return RestoredSeq2Seq(model.eval(), src, tgt, ckpt)


def translate(model: Any, src_vocab: PairVocab, tgt_vocab: PairVocab, sources: list[str], beam: int = 1,
              max_new_tokens: int | None = None, alpha: float = 0.6, batch_size: int = 64) -> list[str]:
    """Decode every source (greedy when ``beam`` is 1), in batches of sources of similar lengths."""
    from ..decoding.beam import beam_search, greedy_search  # noqa: PLC0415

    limit = model.config.source_length
    steps = model.config.block_size - 1 if max_new_tokens is None else max_new_tokens
    encoded = []
    for i, s in enumerate(sources):
        ids = src_vocab.encode(s, f"source {i + 1}")
        if not ids:
            raise ValueError(f"source {i + 1} is empty")
        if len(ids) > limit:
            raise ValueError(f"source {i + 1} has {len(ids)} symbols, more than the model's source length {limit}")
        encoded.append(ids)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: list[str] = [""] * len(encoded)
    for j in range(0, len(order), batch_size):
        rows = order[j:j + batch_size]
        src = np.full((len(rows), max(len(encoded[i]) for i in rows)), src_vocab.pad_id, dtype=np.int64)
        for r, i in enumerate(rows):
            src[r, :len(encoded[i])] = encoded[i]                          # (B, S), right-padded
        if beam == 1:
            hyps = greedy_search(model, src, steps)
        else:
            hyps = [b[0] for b in beam_search(model, src, beam, steps, alpha)]
        for i, h in zip(rows, hyps):
            out[i] = tgt_vocab.decode(h.tokens)
    return out


def edit_distance(a: list[Any], b: list[Any]) -> int:
    """Levenshtein distance between two sequences (one row of the table at a time)."""
    prev = np.arange(len(b) + 1)
    for i, x in enumerate(a, 1):
        cur = np.empty_like(prev)
        cur[0] = i
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return int(prev[-1])


def error_rates(hyps: list[list[Any]], refs: list[list[Any]]) -> dict[str, float]:
    """``{"token_error_rate", "sequence_error_rate"}`` of symbol sequences (see the module docstring)."""
    if len(hyps) != len(refs) or not refs:
        raise ValueError(f"need as many hypotheses as references (>= 1), got {len(hyps)} and {len(refs)}")
    edits = sum(edit_distance(h, r) for h, r in zip(hyps, refs))
    total = sum(len(r) for r in refs)
    wrong = sum(h != r for h, r in zip(hyps, refs))
    return {"token_error_rate": edits / max(total, 1), "sequence_error_rate": wrong / len(refs)}


def corpus_scores(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu), or {} when sacrebleu is not installed."""
    try:
        import sacrebleu  # noqa: PLC0415
    except ImportError:
        return {}
    return {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score, "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score}
