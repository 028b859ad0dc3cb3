"""Source/target pairs for sequence-to-sequence training, and a symbol vocabulary per side.

A pairs file is either

* TSV: one pair per line, ``source<TAB>target`` (exactly one tab), or
* JSONL (``.jsonl`` / ``.json``): one object per line, ``{"source": "...", "target": "..."}``.

Blank lines are skipped. Anything else is one :class:`DataError` naming the
file and the line.

Each side is tokenized on its own, by a :class:`SymbolVocab`: ``"char"``
(every character is a symbol: spelling, copy tasks) or ``"symbols"``
(whitespace-separated symbols: ARPAbet phonemes ``HH AH0 L OW1``,
pre-tokenized words); or by a :class:`PairBPE`, ``"bpe"``: byte-level BPE
trained on that side's text (translation-like tasks; nothing is ever unknown).
Ids 0, 1, 2 are ``<pad>``, ``<s>`` (BOS) and ``</s>`` (EOS) on both sides.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..validate import FileError, parse_json
from .errors import DataError
from .labeled import read_data_text
from .tokenizers import BPETokenizer

SPECIALS = ("<pad>", "<s>", "</s>")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
SPLITS = ("char", "symbols")
TOKENIZERS = SPLITS + ("bpe",)


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The (source, target) pairs of a TSV or JSONL file, in file order.

    Raises:
        DataError: a missing or non-UTF-8 file, no pairs, or a bad line (file and line named).
    """
    p = Path(path)
    lines = read_data_text(p).splitlines()             # a regular file of bounded size, UTF-8, not empty
    jsonl = p.suffix.lower() in (".jsonl", ".json")
    pairs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            src, tgt = _json_pair(line) if jsonl else _tsv_pair(line)
        except _BadLine as exc:
            raise DataError(f"{path}, line {n}: {exc}") from None
        pairs.append((src, tgt))
    if not pairs:
        raise DataError(f"pairs file '{path}' holds no pairs")
    return pairs


class _BadLine(Exception):
    """What is wrong with one line (read_pairs adds the file and line)."""


def _checked(src: Any, tgt: Any) -> tuple[str, str]:
    if not isinstance(src, str) or not isinstance(tgt, str):
        raise _BadLine("source and target must be strings")
    if not src.strip() or not tgt.strip():
        raise _BadLine(f"the {'source' if not src.strip() else 'target'} is empty")
    return src, tgt


def _tsv_pair(line: str) -> tuple[str, str]:
    fields = line.split("\t")
    if len(fields) != 2:
        raise _BadLine(f"expected 'source<TAB>target' (one tab), found {len(fields) - 1} tabs")
    return _checked(*fields)


def _json_pair(line: str) -> tuple[str, str]:
    try:
        obj = parse_json(line, "line")
    except FileError as exc:
        raise _BadLine(exc.what) from None
    if not isinstance(obj, dict) or not {"source", "target"} <= set(obj):
        raise _BadLine('expected an object {"source": ..., "target": ...}')
    return _checked(obj["source"], obj["target"])


class SymbolVocab:
    """A fixed vocabulary of symbols (characters or whitespace-separated tokens) plus the three specials.

    Attributes:
        split: "char" or "symbols".
        symbols: the non-special symbols; symbol ``symbols[i]`` has id ``i + 3``.
    """

    kind = "symbols"
    pad_id, bos_id, eos_id = PAD_ID, BOS_ID, EOS_ID

    def __init__(self, symbols: list[str], split: str) -> None:
        if split not in SPLITS:
            raise DataError(f"a pair tokenizer is one of {', '.join(SPLITS)}, got {split!r}")
        if len(set(symbols)) != len(symbols) or set(symbols) & set(SPECIALS) or not all(
                isinstance(s, str) and s and (len(s) == 1 if split == "char" else not any(c.isspace() for c in s))
                for s in symbols):
            raise DataError(f"a {split} vocabulary needs distinct, non-empty symbols other than {SPECIALS}")
        self.split, self.symbols = split, list(symbols)
        self.ids = {s: i + len(SPECIALS) for i, s in enumerate(self.symbols)}

    @classmethod
    def from_texts(cls, texts: list[str], split: str) -> "SymbolVocab":
        """Every symbol of ``texts``, sorted (so the same texts always give the same ids)."""
        seen: set[str] = set()
        for t in texts:
            seen.update(t if split == "char" else t.split())
        return cls(sorted(seen), split)

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.symbols)

    def pieces(self, text: str) -> list[str]:
        return list(text) if self.split == "char" else text.split()

    units = pieces            # what error rates count: characters or symbols
    unit = property(lambda self: "character" if self.split == "char" else "symbol")

    def encode(self, text: str, what: str = "text") -> list[int]:
        """Symbol ids of ``text`` (no BOS/EOS); DataError naming the first unknown symbol."""
        out = []
        for s in self.pieces(text):
            i = self.ids.get(s)
            if i is None:
                raise DataError(f"{what} has the symbol {s!r}, which the {self.split} vocabulary "
                                f"({len(self.symbols)} symbols) does not hold")
            out.append(i)
        return out

    def decode(self, ids: list[int]) -> str:
        """The symbols of ``ids`` (specials left out), joined by "" (char) or " " (symbols)."""
        n = len(SPECIALS)
        return ("" if self.split == "char" else " ").join(self.symbols[i - n] for i in ids if n <= i < self.vocab_size)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "split": self.split, "symbols": self.symbols}

    @classmethod
    def from_dict(cls, obj: Any, source: str = "checkpoint") -> "SymbolVocab":
        """Rebuild from :meth:`to_dict`'s output, every value checked."""
        if not isinstance(obj, dict) or obj.get("kind") != cls.kind or not isinstance(obj.get("symbols"), list):
            raise DataError(f"the symbol vocabulary in {source} is not a table with kind 'symbols' and a list")
        try:
            return cls(obj["symbols"], obj.get("split"))
        except DataError as exc:
            raise DataError(f"the symbol vocabulary in {source}: {exc}") from None


class PairBPE:
    """Byte-level BPE (:class:`~tinyllm.data.tokenizers.BPETokenizer`) for one side of the pairs, with
    ``<pad> <s> </s>`` as its first three ids. Every text encodes (all 256 bytes are tokens);
    error rates count its words (whitespace-separated)."""

    kind = split = "bpe"
    unit = "word"
    pad_id, bos_id, eos_id = PAD_ID, BOS_ID, EOS_ID

    def __init__(self, tokenizer: BPETokenizer) -> None:
        if [tokenizer.token_to_id(t) for t in SPECIALS] != [PAD_ID, BOS_ID, EOS_ID]:
            raise DataError(f"a pair BPE tokenizer needs {' '.join(SPECIALS)} as its ids 0, 1, 2")
        self.tokenizer = tokenizer

    @classmethod
    def from_texts(cls, texts: list[str], vocab_size: int) -> "PairBPE":
        """Merges learned from ``texts`` up to ``vocab_size`` ids (at least 259: 256 bytes + 3 specials)."""
        return cls(BPETokenizer.train(texts, vocab_size, special_tokens=SPECIALS))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def units(self, text: str) -> list[str]:
        return text.split()

    def encode(self, text: str, what: str = "text") -> list[int]:
        return self.tokenizer.encode(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer.encode_batch(texts)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if 0 <= i < self.vocab_size], skip_special=True)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": json.loads(self.tokenizer.to_json())}

    @classmethod
    def from_dict(cls, obj: Any, source: str = "checkpoint") -> "PairBPE":
        """Rebuild from :meth:`to_dict`'s output, the tokenizer.json checked as any loaded one."""
        if not isinstance(obj, dict) or obj.get("kind") != cls.kind or not isinstance(obj.get("tokenizer"), dict):
            raise DataError(f"the BPE tokenizer in {source} is not a table with kind 'bpe' and a tokenizer")
        try:
            return cls(BPETokenizer.from_json(obj["tokenizer"], source))
        except DataError as exc:            # FileError included
            raise DataError(f"the BPE tokenizer in {source}: {exc}") from None


PairVocab = SymbolVocab | PairBPE


def build_vocab(kind: str, texts: list[str], vocab_size: int) -> PairVocab:
    """One side's tokenizer from that side's texts: "char", "symbols" or "bpe" (of ``vocab_size`` ids)."""
    if kind not in TOKENIZERS:
        raise DataError(f"a pair tokenizer is one of {', '.join(TOKENIZERS)}, got {kind!r}")
    return PairBPE.from_texts(texts, vocab_size) if kind == "bpe" else SymbolVocab.from_texts(texts, kind)


def encode_all(vocab: PairVocab, texts: list[str], what: str) -> list[list[int]]:
    """The ids of every text (BPE in one parallel batch; symbols name the first unknown one)."""
    if isinstance(vocab, PairBPE):
        return vocab.encode_batch(texts)
    return [vocab.encode(t, what) for t in texts]


def vocab_from_dict(obj: Any, source: str = "checkpoint") -> PairVocab:
    """A side's tokenizer saved by ``to_dict``, by its kind."""
    if isinstance(obj, dict) and obj.get("kind") == PairBPE.kind:
        return PairBPE.from_dict(obj, source)
    return SymbolVocab.from_dict(obj, source)


def pair_vocabs_to_json(src: PairVocab, tgt: PairVocab) -> str:
    """Both sides' tokenizers as one JSON text (saved as a checkpoint's tokenizer)."""
    return json.dumps({"kind": "seq2seq-pair", "source": src.to_dict(), "target": tgt.to_dict()})


def pair_vocabs_from_json(text: str, source: str = "checkpoint") -> tuple[PairVocab, PairVocab]:
    """The (source, target) tokenizers saved by :func:`pair_vocabs_to_json`."""
    try:
        obj = parse_json(text, source)
    except FileError as exc:
        raise DataError(f"tokenizer in {source}: {exc.what}") from None
    if not isinstance(obj, dict) or obj.get("kind") != "seq2seq-pair":
        raise DataError(f"tokenizer in {source} is not a sequence-to-sequence pair of vocabularies")
    return vocab_from_dict(obj.get("source"), source), vocab_from_dict(obj.get("target"), source)
