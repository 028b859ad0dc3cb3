"""Token-tagging data: sentences of words, each word with a tag (named entities, chunks, roles).

Two formats:

* CoNLL-style text: one ``token tag`` per line, whitespace-separated (more
  columns are allowed, as in CoNLL-2003: the token is the first, the tag the
  last), a blank line between sentences; ``-DOCSTART-`` lines are skipped.
* JSONL (``.jsonl`` / ``.json``): one object per line, ``{"tokens": [...], "tags": [...]}``
  with as many tags as tokens.

A bad line is one :class:`DataError` naming the file and the line number.
"""
from __future__ import annotations


from pathlib import Path

from ..validate import FileError, parse_json
from .errors import DataError
from .labeled import read_data_text

Sentence = tuple[list[str], list[str]]


def _read_lines(path: Path) -> list[str]:
    return read_data_text(path).splitlines()


def _jsonl(path: Path, lines: list[str]) -> list[Sentence]:
    out = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = parse_json(line, path)
        except FileError as exc:
            raise DataError(f"{path}:{no}: {exc.what}") from None
        if not isinstance(row, dict) or "tokens" not in row or "tags" not in row:
            raise DataError(f"{path}:{no}: expected an object with \"tokens\" and \"tags\"")
        tokens, tags = row["tokens"], row["tags"]
        if not isinstance(tokens, list) or not isinstance(tags, list) \
                or not all(isinstance(t, str) and t.strip() for t in tokens + tags):
            raise DataError(f"{path}:{no}: \"tokens\" and \"tags\" must be lists of non-empty strings")
        if len(tokens) != len(tags):
            raise DataError(f"{path}:{no}: {len(tokens)} tokens but {len(tags)} tags")
        if tokens:
            out.append((tokens, tags))
    return out


def _conll(path: Path, lines: list[str]) -> list[Sentence]:
    out: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    for no, line in enumerate(lines + [""], 1):
        cols = line.split()
        if not cols:
            if words:
                out.append((words, tags))
            words, tags = [], []
            continue
        if cols[0] == "-DOCSTART-":
            continue
        if len(cols) < 2:
            raise DataError(f"{path}:{no}: expected 'token tag', got {line.strip()!r}")
        words.append(cols[0])
        tags.append(cols[-1])
    return out


def load_tagged(path: str | Path) -> list[Sentence]:
    """The (words, tags) sentences of a CoNLL-style or JSONL file; DataError if there are none."""
    p = Path(path)
    lines = _read_lines(p)
    sentences = _jsonl(p, lines) if p.suffix in (".jsonl", ".json") else _conll(p, lines)
    if not sentences:
        raise DataError(f"'{p}' holds no tagged sentences")
    return sentences


def tag_names(sentences: list[Sentence]) -> list[str]:
    """The tags used, "O" first when present, then sorted (a stable id for every tag)."""
    seen = {t for _, tags in sentences for t in tags}
    return (["O"] if "O" in seen else []) + sorted(seen - {"O"})
