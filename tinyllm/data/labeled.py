"""Labeled data for fine-tuning: (text, label) examples and (prompt, response) pairs.

Formats:

* classification, CSV/TSV with a header row holding ``text`` and ``label``
  columns (other columns are ignored), or JSONL with one
  ``{"text": ..., "label": ...}`` object per line;
* instruction tuning, JSONL with one ``{"prompt": ..., "response": ...}`` per line.

Labels may be strings ("positive") or integers. Either way the distinct
labels are sorted (numbers numerically) and numbered 0..K-1; ``label_names[k]``
is the label with id k, so integer labels 0..K-1 keep their values.

Every problem is reported with the file, the line and what is wrong, e.g.
"labels.csv line 7: missing 'label' column".
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..validate import FileError, parse_json, read_file
from .errors import DataError
from .slicing import IGNORE_INDEX
from .text import decode_utf8
from .tokenizers import Tokenizer

_INT = re.compile(r"^[+-]?\d{1,18}$")
MAX_LABELED_BYTES = 2 << 30   # examples are held in memory as Python strings: beyond this, use a corpus


def read_data_text(path: str | os.PathLike) -> str:
    """The text of a data file: a regular file of bounded size, UTF-8, not empty (DataError otherwise)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data path '{path}' does not exist")
    text = decode_utf8(read_file(p, "labeled-data file", max_bytes=MAX_LABELED_BYTES), path)
    if not text.strip():
        raise DataError(f"data file '{path}' is empty")
    return text


def _jsonl_objects(path: str | os.PathLike, keys: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line, checked to be an object with string ``keys``."""
    name = Path(path).name
    for lineno, line in enumerate(read_data_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = parse_json(line, name)
        except FileError as exc:
            what = exc.what.removeprefix("not valid JSON (").removesuffix(")") if exc.what.startswith(
                "not valid JSON (") else exc.what
            raise DataError(f"{name} line {lineno}: invalid JSON ({what})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{name} line {lineno}: expected a JSON object with keys "
                            f"{', '.join(repr(k) for k in keys)}")
        for key in keys:
            if key not in obj:
                raise DataError(f"{name} line {lineno}: missing '{key}' key")
        yield lineno, obj


def _csv_rows(path: str | os.PathLike, delimiter: str) -> Iterator[tuple[int, dict]]:
    """(line number, row) for each record after the header, checked to have 'text' and 'label'."""
    name = Path(path).name
    reader = csv.reader(io.StringIO(read_data_text(path), newline=""), delimiter=delimiter)
    try:
        header = next(reader)
        for col in ("text", "label"):
            if col not in header:
                raise DataError(f"{name} line 1: missing '{col}' column (the header has: {', '.join(header)})")
        end = reader.line_num
        for row in reader:
            lineno, end = end + 1, reader.line_num  # a quoted field may span lines: report the first
            if not any(field.strip() for field in row):
                continue
            if len(row) != len(header):
                missing = [c for c in ("text", "label") if header.index(c) >= len(row)]
                if missing:
                    raise DataError(f"{name} line {lineno}: missing '{missing[0]}' column")
                raise DataError(f"{name} line {lineno}: {len(row)} fields, but the header has {len(header)} "
                                "(quote text that contains the delimiter)")
            yield lineno, dict(zip(header, row))
    except csv.Error as exc:
        raise DataError(f"{name} line {reader.line_num}: malformed CSV ({exc})") from None


def load_labeled(path: str | os.PathLike) -> tuple[list[str], np.ndarray, list[str]]:
    """Read classification examples from a .csv, .tsv or .jsonl file.

    Returns:
        texts: the N texts.
        labels: int64 (N,), label ids in 0..K-1.
        label_names: K names, ``label_names[labels[i]]`` is example i's label.

    Raises:
        DataError: unknown extension, empty file, a missing column/key, an
            empty text or label, invalid JSON, mixed label types, or fewer than
            two classes; with the line number where there is one.
    """
    name = Path(path).name
    ext = Path(path).suffix.lower()
    if ext in (".csv", ".tsv"):
        records = _csv_rows(path, "\t" if ext == ".tsv" else ",")
    elif ext in (".jsonl", ".ndjson"):
        records = _jsonl_objects(path, ("text", "label"))
    else:
        raise DataError(f"unknown labeled-data format '{ext or name}' for '{path}': use .csv, .tsv or .jsonl")
    texts: list[str] = []
    raw: list[Any] = []
    for lineno, rec in records:
        text, label = rec["text"], rec["label"]
        if not isinstance(text, str):
            raise DataError(f"{name} line {lineno}: 'text' must be a string, got {type(text).__name__}")
        if not text.strip():
            raise DataError(f"{name} line {lineno}: empty text")
        if isinstance(label, str):
            label = label.strip()
            if not label:
                raise DataError(f"{name} line {lineno}: empty label")
            if ext != ".jsonl" and ext != ".ndjson" and _INT.match(label):
                label = int(label)  # CSV fields are all strings: "0"/"1" mean integer classes
        elif isinstance(label, bool) or not isinstance(label, int):
            raise DataError(f"{name} line {lineno}: 'label' must be a string or an integer, "
                            f"got {json.dumps(label)}")
        if raw and isinstance(label, int) != isinstance(raw[0], int):
            raise DataError(f"{name} line {lineno}: label {label!r} mixes numbers and names with earlier labels")
        texts.append(text)
        raw.append(label)
    if not texts:
        raise DataError(f"data file '{path}' has no examples")
    classes = sorted(set(raw))
    if len(classes) < 2:
        raise DataError(f"{name} has only 1 class ({classes[0]!r}); a classifier needs at least 2")
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[c] for c in raw], dtype=np.int64)
    return texts, labels, [str(c) for c in classes]


def load_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Read (prompt, response) pairs from a .jsonl file of ``{"prompt": ..., "response": ...}`` lines.

    An empty prompt is allowed (unconditional text); an empty response is not.
    """
    name = Path(path).name
    if Path(path).suffix.lower() not in (".jsonl", ".ndjson"):
        raise DataError(f"prompt/response pairs must be a .jsonl file, got '{path}'")
    pairs = []
    for lineno, obj in _jsonl_objects(path, ("prompt", "response")):
        for key in ("prompt", "response"):
            if not isinstance(obj[key], str):
                raise DataError(f"{name} line {lineno}: '{key}' must be a string, got {type(obj[key]).__name__}")
        if not obj["response"].strip():
            raise DataError(f"{name} line {lineno}: empty response")
        pairs.append((obj["prompt"], obj["response"]))
    if not pairs:
        raise DataError(f"data file '{path}' has no examples")
    return pairs


def encode_pair(tokenizer: Tokenizer, prompt: str, response: str, max_length: int | None = None) -> dict:
    """One language-model fine-tuning example: learn the response, not the prompt.

    The sequence is ``prompt + response + <|endoftext|>`` (the end token when
    the tokenizer has one); ``input_ids`` is all but its last id and ``labels``
    all but its first (the next token at each position), with the labels that
    fall inside the prompt set to -100 so the loss ignores them.

    Returns:
        ``{"input_ids": int64 (L,), "labels": int64 (L,)}``, cut to ``max_length``
        (keeping the start) if given; ready for :func:`~tinyllm.data.slicing.collate`.
    """
    p = tokenizer.encode(prompt)
    r = tokenizer.encode(response) + ([tokenizer.eos_id] if tokenizer.eos_id is not None else [])
    seq = np.array(p + r, dtype=np.int64)
    if len(seq) < 2:
        raise DataError("a prompt/response pair needs at least 2 tokens in all")
    labels = seq[1:].copy()
    labels[: max(len(p) - 1, 0)] = IGNORE_INDEX  # targets seq[1..len(p)-1] are prompt tokens
    inputs = seq[:-1]
    if max_length is not None:
        inputs, labels = inputs[:max_length], labels[:max_length]
    return {"input_ids": inputs, "labels": labels}


def train_val_split(n: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``n`` example indices into train and validation (each sorted).

    ``round(n * val_fraction)`` examples (at least one when val_fraction > 0)
    go to validation; ``val_fraction=0`` gives an empty validation set.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if n_val >= n:
        raise DataError(f"cannot hold out {n_val} of {n} examples for validation and still train")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
