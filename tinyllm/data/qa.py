"""Extractive question-answering data: a context, a question, and the answer's span in the context.

Two formats:

* SQuAD v1.1 JSON: ``{"data": [{"paragraphs": [{"context": ..., "qas": [{"id": ..., "question": ...,
  "answers": [{"text": ..., "answer_start": ...}, ...]}]}]}]}`` (several reference answers allowed);
* JSONL: one object per line with ``context``, ``question``, ``answer`` (the text) and
  ``answer_start`` (its character offset in the context).

Every answer must be the text at its offset in the context; a bad entry is one
:class:`DataError` naming the file and the line (JSONL) or the question id (SQuAD).
"""
from __future__ import annotations


from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..validate import FileError, parse_json
from .errors import DataError
from .labeled import read_data_text


@dataclass
class QAExample:
    """One question on one context; ``answers`` are (text, character start) pairs, the first for training."""

    id: str
    context: str
    question: str
    answers: list[tuple[str, int]] = field(default_factory=list)


def _answer(where: str, context: str, text: Any, start: Any) -> tuple[str, int]:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: the answer must be a non-empty string")
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= len(context) - len(text):
        raise DataError(f"{where}: answer_start must be a character offset in [0, {len(context) - len(text)}], "
                        f"got {start!r}")
    if context[start:start + len(text)] != text:
        raise DataError(f"{where}: the context at answer_start {start} reads "
                        f"{context[start:start + len(text)]!r}, not the answer {text!r}")
    return text, start


def _text(where: str, row: dict, key: str) -> str:
    v = row.get(key)
    if not isinstance(v, str) or not v.strip():
        raise DataError(f"{where}: \"{key}\" must be a non-empty string")
    return v


def _squad(path: Path, obj: Any) -> list[QAExample]:
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise DataError(f"{path}: a SQuAD file is an object with a \"data\" list")
    out = []
    for a, article in enumerate(obj["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{path}: data[{a}] has no \"paragraphs\" list")
        for p, para in enumerate(paragraphs):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                raise DataError(f"{where} has no \"qas\" list")
            context = _text(where, para, "context")
            for q, qa in enumerate(para["qas"]):
                if not isinstance(qa, dict):
                    raise DataError(f"{where}.qas[{q}] is not an object")
                qid = str(qa.get("id", f"{a}-{p}-{q}"))
                here = f"{path}: question {qid}"
                answers = qa.get("answers")
                if not isinstance(answers, list) or not answers:
                    raise DataError(f"{here} has no \"answers\"")
                out.append(QAExample(qid, context, _text(here, qa, "question"),
                                     [_answer(here, context, x.get("text") if isinstance(x, dict) else None,
                                              x.get("answer_start") if isinstance(x, dict) else None)
                                      for x in answers]))
    return out


def _jsonl(path: Path, lines: list[str]) -> list[QAExample]:
    out = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            row = parse_json(line, path)
        except FileError as exc:
            raise DataError(f"{where}: {exc.what}") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with context, question, answer, answer_start")
        context = _text(where, row, "context")
        out.append(QAExample(str(row.get("id", no)), context, _text(where, row, "question"),
                             [_answer(where, context, row.get("answer"), row.get("answer_start"))]))
    return out


def load_qa(path: str | Path) -> list[QAExample]:
    """The examples of a SQuAD v1.1 ``.json`` or a ``.jsonl`` file; DataError if there are none."""
    p = Path(path)
    text = read_data_text(p)
    if p.suffix == ".jsonl":
        examples = _jsonl(p, text.splitlines())
    else:
        obj = parse_json(text, p)
        examples = _squad(p, obj)
    if not examples:
        raise DataError(f"'{p}' holds no questions")
    return examples
