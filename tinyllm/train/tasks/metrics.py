"""Task metrics, computed here (no scikit-learn): entity-level precision/recall/F1 for tagging
(the conlleval / seqeval definitions) and exact match / F1 for extractive QA (the SQuAD v1.1 script's).

Entities: a chunk starts at B-x or S-x, at I-x / E-x after O or after a chunk of another type,
and ends before O, B-, S- or a change of type, or after E- / S- (conlleval's lenient reading of
IOB1/IOB2/IOBES alike). An entity counts as found only when its type, first and last word all match.

    precision = |found & true| / |found|,  recall = |found & true| / |true|,  F1 = 2 P R / (P + R)

SQuAD: both strings are normalised (lower case, punctuation and the articles a/an/the removed,
whitespace collapsed); exact match is equality, F1 the harmonic mean of the precision and recall
of their word bags; each takes the best over the reference answers.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence


def _split(tag: str) -> tuple[str, str]:
    """("B", "PER") from "B-PER"; seqeval's reading of any string: first character, then the type."""
    return tag[0], tag[1:].split("-", 1)[-1] or "_"


def _ends(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    return (prev in ("E", "S") or (prev in ("B", "I") and tag in ("B", "S", "O"))
            or (prev not in ("O", ".") and prev_type != kind))


def _starts(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    return (tag in ("B", "S") or (prev in ("E", "S", "O") and tag in ("E", "I"))
            or (tag not in ("O", ".") and prev_type != kind))


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The chunks of one tag sequence, as (type, first word, last word)."""
    out, prev, prev_type, begin = [], "O", "", 0
    for i, tag in enumerate(list(tags) + ["O"]):
        p, kind = _split(tag)
        if _ends(prev, p, prev_type, kind) and prev not in ("O", "."):
            out.append((prev_type, begin, i - 1))
        if _starts(prev, p, prev_type, kind):
            begin = i
        prev, prev_type = p, kind
    return out


@dataclass
class EntityScores:
    precision: float
    recall: float
    f1: float
    true: int
    predicted: int
    correct: int
    per_type: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)   # P, R, F1, support


def _prf(correct: int, pred: int, true: int) -> tuple[float, float, float]:
    p = correct / pred if pred else 0.0
    r = correct / true if true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def entity_scores(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> EntityScores:
    """Micro-averaged entity precision/recall/F1 over sentences, and the same per entity type."""
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} true sentences but {len(pred)} predicted")
    t_all, p_all = set(), set()
    for s, (t, p) in enumerate(zip(true, pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {s}: {len(t)} true tags but {len(p)} predicted")
        t_all |= {(s, *e) for e in entities(t)}
        p_all |= {(s, *e) for e in entities(p)}
    good = t_all & p_all
    per_type = {}
    for kind in sorted({e[1] for e in t_all | p_all}):
        c = sum(e[1] == kind for e in good)
        n_t, n_p = sum(e[1] == kind for e in t_all), sum(e[1] == kind for e in p_all)
        per_type[kind] = (*_prf(c, n_p, n_t), n_t)
    return EntityScores(*_prf(len(good), len(p_all), len(t_all)), len(t_all), len(p_all), len(good), per_type)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    return float(max(normalize_answer(prediction) == normalize_answer(a) for a in answers))


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """The best word-bag F1 of ``prediction`` against any reference answer."""
    best = 0.0
    pred = normalize_answer(prediction).split()
    for a in answers:
        ref = normalize_answer(a).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            p, r = common / len(pred), common / len(ref)
            best = max(best, 2 * p * r / (p + r))
        elif not pred and not ref:
            best = 1.0
    return best
