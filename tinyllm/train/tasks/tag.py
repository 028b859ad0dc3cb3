"""The ``tag`` task: a tag for every word, with a linear or CRF :class:`~tinyllm.models.tagging.TokenClassifier`.

Words become sub-word pieces; the first piece of a word carries its tag, the
rest (and [CLS] / [SEP] / padding) are -100. BERT inputs are
``[CLS] pieces [SEP]``, GPT inputs the pieces alone. A byte-level BPE encodes
each word after the first with its leading space (as it appears in running
text); a character tokenizer gets a space token between words.
Sentences longer than the window keep their first words; in evaluation the
words cut off count as predicted "O".
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import backend
from ...data import DataError
from ...data.tagging import Sentence, load_tagged, tag_names
from ...models.crf import SCHEMES, allowed_transitions
from ...models.tagging import IGNORE, TokenClassifier
from ...tensor import no_grad
from .metrics import EntityScores, entity_scores


def word_pieces(tokenizer: Any, words: list[str], room: int | None = None) -> tuple[list[int], list[int | None], int]:
    """The ids of a sentence's words, per id the index of its word (None: a separator), and how many
    words were kept: all of them, or those whose pieces fit whole in ``room`` ids."""
    ids: list[int] = []
    owner: list[int | None] = []
    space = tokenizer.encode(" ") if tokenizer.kind == "char" else []
    for w, word in enumerate(words):
        sep = space if w else []
        pieces = tokenizer.encode((" " if w and tokenizer.kind == "bpe" else "") + word)
        if not pieces:
            raise DataError(f"word {word!r} encodes to no tokens")
        if room is not None and len(ids) + len(sep) + len(pieces) > room:
            return ids, owner, w
        ids += sep + pieces
        owner += [None] * len(sep) + [w] * len(pieces)
    return ids, owner, len(words)


def scheme_of(tags: list[str]) -> str | None:
    """"BIOES" or "BIO" when every tag fits that scheme, else None (no CRF constraints)."""
    for scheme in SCHEMES:
        try:
            allowed_transitions(tags, scheme)
            return scheme
        except ValueError:
            continue
    return None


@dataclass
class Encoded:
    arrays: dict[str, np.ndarray]           # idx, attention_mask, labels
    kept: list[int]                         # words of each sentence inside the window


def encode_sentences(sentences: list[Sentence], tokenizer: Any, block_size: int, lm_kind: str,
                     names: list[str]) -> Encoded:
    """Token ids, attention mask and piece labels (N, T) of tagged sentences."""
    from ...data import pad_batch  # noqa: PLC0415
    from ...models.tagging import align_labels  # noqa: PLC0415

    index = {t: i for i, t in enumerate(names)}
    bert = lm_kind == "bert" and tokenizer.cls_id is not None
    room = block_size - 2 if bert else block_size
    seqs, labels, kept = [], [], []
    for s, (words, tags) in enumerate(sentences):
        unknown = [t for t in tags if t not in index]
        if unknown:
            raise DataError(f"sentence {s + 1} has tag {unknown[0]!r}, which the model was not trained on "
                            f"(its tags: {', '.join(names)})")
        ids, owner, n = word_pieces(tokenizer, words, room)
        lab = align_labels(owner, [index[t] for t in tags])
        if bert:
            ids, lab = [tokenizer.cls_id, *ids, tokenizer.sep_id], [IGNORE, *lab, IGNORE]
        if n == 0:
            raise DataError(f"sentence {s + 1}: its first word does not fit in the window of {block_size} tokens")
        seqs.append(ids)
        labels.append(lab)
        kept.append(n)
    length = max(len(x) for x in seqs)
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    idx, mask = pad_batch(seqs, length, pad_id=pad)
    lab_arr = np.full((len(seqs), length), IGNORE, dtype=np.int64)
    for i, lab in enumerate(labels):
        lab_arr[i, :len(lab)] = lab
    return Encoded({"idx": idx, "attention_mask": mask, "labels": lab_arr}, kept)


def prepare(data: str, tokenizer: Any, block_size: int, lm_kind: str, task_info: dict,
            options: dict) -> tuple[dict, dict, str]:
    """Arrays for training, the task record (tags, scheme, CRF) and a description of the data."""
    sentences = load_tagged(data)
    names = tag_names(sentences)
    if "tags" in task_info:
        extra = [t for t in names if t not in task_info["tags"]]
        if extra:
            raise DataError(f"'{data}' has tag {extra[0]!r}, which the run was not trained on")
        names = task_info["tags"]
    if len(names) < 2:
        raise DataError(f"'{data}' uses one tag only ({names[0]}); tagging needs at least 2")
    crf = bool(task_info.get("crf", options.get("crf", False)))
    info = {**task_info, "tags": names, "crf": crf, "scheme": scheme_of(names) if crf else None}
    enc = encode_sentences(sentences, tokenizer, block_size, lm_kind, names)
    words = sum(len(w) for w, _ in sentences)
    return enc.arrays, info, (f"{len(sentences)} sentences, {words} words, {len(names)} tags "
                              f"({', '.join(names[:8])}{' ...' if len(names) > 8 else ''})")


def build(backbone: Any, lm_kind: str, backbone_config: dict, task_info: dict,
          options: dict) -> tuple[TokenClassifier, dict]:
    """A fresh tagger head on ``backbone`` and its checkpoint model section."""
    names, crf, scheme = task_info["tags"], task_info["crf"], task_info.get("scheme")
    freeze = bool(options.get("freeze_backbone", False))
    model = TokenClassifier(backbone, len(names), crf=crf, tags=names, scheme=scheme, freeze_backbone=freeze)
    return model, {"kind": "tagger", "config": {"backbone": lm_kind, "backbone_config": backbone_config,
                                                "tags": names, "crf": crf, "scheme": scheme,
                                                "freeze_backbone": freeze}}


def from_section(backbone: Any, cfg: dict) -> TokenClassifier:
    """The tagger of a checkpoint's model section."""
    return TokenClassifier(backbone, len(cfg["tags"]), crf=bool(cfg["crf"]), tags=cfg["tags"],
                           scheme=cfg.get("scheme"), freeze_backbone=bool(cfg.get("freeze_backbone", False)))


@dataclass
class TagReport:
    scores: EntityScores
    sentences: int
    words: int
    token_accuracy: float
    seconds: float
    worst: list[tuple[int, list[str], list[str], list[str]]]      # (errors, words, true, predicted)


@no_grad()
def evaluate(model: TokenClassifier, tokenizer: Any, lm_kind: str, names: list[str], data: str,
             batch_size: int = 32, worst: int = 5) -> TagReport:
    """Entity precision/recall/F1 of a tagger on a tagged file, and its worst sentences."""
    start = time.perf_counter()
    sentences = load_tagged(data)
    enc = encode_sentences(sentences, tokenizer, model.backbone.config.block_size, lm_kind, names)
    a = enc.arrays
    preds: list[list[int]] = []
    for i in range(0, len(sentences), batch_size):
        rows = slice(i, i + batch_size)
        starts = a["labels"][rows] != IGNORE
        preds += model.predict(backend.asarray(a["idx"][rows]), starts,
                               attention_mask=backend.asarray(a["attention_mask"][rows]))
    true, pred, table = [], [], []
    right = total = 0
    for (words, tags), p, n in zip(sentences, preds, enc.kept):
        guess = [names[j] for j in p[:n]] + ["O"] * (len(words) - n)
        true.append(tags)
        pred.append(guess)
        errors = sum(t != g for t, g in zip(tags, guess))
        right += len(words) - errors
        total += len(words)
        table.append((errors, words, tags, guess))
    table.sort(key=lambda r: -r[0])
    return TagReport(entity_scores(true, pred), len(sentences), total, right / max(total, 1),
                     time.perf_counter() - start, [r for r in table[:worst] if r[0] > 0])


def format_report(report: TagReport) -> list[str]:
    """The figures and the worst sentences as text lines."""
    s = report.scores
    lines = [(f"entities    precision {s.precision:.2%}  recall {s.recall:.2%}  F1 {s.f1:.2%}  "
              f"({s.correct} of {s.true} found, {s.predicted} predicted)"),
             (f"tokens      accuracy {report.token_accuracy:.2%} over {report.words} words "
              f"in {report.sentences} sentences")]
    if s.per_type:
        lines.append(f"{'type':<14}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>9}")
        for kind, (p, r, f, n) in s.per_type.items():
            lines.append(f"{kind:<14}{p:>10.2%}{r:>10.2%}{f:>10.2%}{n:>9}")
    if report.worst:
        lines.append("worst sentences (word true/predicted, wrong ones marked *):")
        for errors, words, tags, guess in report.worst:
            shown = " ".join(f"{w}/{t}" + ("" if t == g else f"/{g}*") for w, t, g in zip(words, tags, guess))
            lines.append(f"  {errors} wrong: {shown[:160]}{' ...' if len(shown) > 160 else ''}")
    return lines
