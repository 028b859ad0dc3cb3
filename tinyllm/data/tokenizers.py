"""Tokenizers: text to integer ids and back, behind one small interface.

Two kinds, both saved as JSON (never pickle):

* :class:`CharTokenizer` - one id per character, vocabulary = the sorted
  unique characters of a corpus (Karpathy's char-rnn / nanoGPT's
  ``shakespeare_char``). Tiny vocabulary, long sequences, nothing to train.
* :class:`BPETokenizer` - byte-level byte-pair encoding (GPT-2). Text is
  turned into UTF-8 bytes, each byte is shown as a printable character, and the
  most frequent adjacent pairs are merged into new tokens until the vocabulary
  has the size asked for. Because the 256 byte values are all in the initial
  alphabet, *every* string can be encoded and ``decode(encode(s)) == s``. The
  merge training and encoding run in Hugging Face's ``tokenizers`` library;
  GPT-2's own ``tokenizer.json`` loads with :meth:`BPETokenizer.from_file`.

Special tokens are whole strings with ids of their own: ``[PAD] [CLS] [SEP]
[MASK]`` for BERT-style models, ``<|endoftext|>`` to separate documents for
GPT-style ones. Both kinds recognise a special token written out in the text
and give it its id; ``pad_id``, ``cls_id``, ``sep_id``, ``mask_id`` and
``eos_id`` are ``None`` when the tokenizer lacks that token.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import tokenizers as hf  # Hugging Face's library (this module is tinyllm.data.tokenizers)

from ..validate import FileError, check_char_tokenizer, check_hf_tokenizer
from ..validate.schema import LIMITS
from .errors import DataError, UnknownCharactersError
from .text import iter_text
from .tokenizer_files import _read_json, library_call

PAD, CLS, SEP, MASK, EOS = "[PAD]", "[CLS]", "[SEP]", "[MASK]", "<|endoftext|>"
BERT_SPECIALS = (PAD, CLS, SEP, MASK)
GPT_SPECIALS = (EOS,)


def _atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Tokenizer(ABC):
    """The interface every tokenizer has: encode, decode, vocab_size, special ids, save/load."""

    kind: ClassVar[str]  # "char" or "bpe": what load_tokenizer() looks for

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``."""

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids of each string in ``texts``."""
        return [self.encode(t) for t in texts]

    def encode_array(self, text: str) -> np.ndarray:
        """The ids of ``text`` as a 1-D int64 array (what corpus encoding uses, chunk by chunk)."""
        return np.asarray(self.encode(text), dtype=np.int64)

    @abstractmethod
    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """The text of token ids ``ids`` (special tokens written out unless ``skip_special``)."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """The number of distinct ids, special tokens included (ids run 0..vocab_size-1)."""

    @abstractmethod
    def token_to_id(self, token: str) -> int | None:
        """The id of a token string (e.g. ``"[PAD]"``), or None if it is not in the vocabulary."""

    @abstractmethod
    def to_json(self) -> str:
        """The tokenizer serialized as a JSON string (what :meth:`save` writes)."""

    @property
    @abstractmethod
    def special_tokens(self) -> list[str]:
        """The special token strings, in id order."""

    # The special ids, None when the token is absent.
    @property
    def pad_id(self) -> int | None:
        return self.token_to_id(PAD)

    @property
    def cls_id(self) -> int | None:
        return self.token_to_id(CLS)

    @property
    def sep_id(self) -> int | None:
        return self.token_to_id(SEP)

    @property
    def mask_id(self) -> int | None:
        return self.token_to_id(MASK)

    @property
    def eos_id(self) -> int | None:
        return self.token_to_id(EOS)

    @property
    def special_ids(self) -> list[int]:
        """The ids of all special tokens (what a special-tokens mask compares against)."""
        return [self.token_to_id(t) for t in self.special_tokens]

    def fingerprint(self) -> str:
        """A short hash of the serialized tokenizer: equal fingerprints encode alike.

        Stored beside token files so that ids are never read back with a
        different tokenizer than the one that wrote them.
        """
        canonical = json.dumps(json.loads(self.to_json()), sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to ``path`` as JSON (atomically: a crash leaves the old file)."""
        _atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Load a tokenizer saved by :meth:`save` (of this class, or any kind when called on the base)."""
        tok = load_tokenizer(path)
        if cls is not Tokenizer and not isinstance(tok, cls):
            raise DataError(f"tokenizer file '{path}' holds a {tok.kind} tokenizer, not a {cls.kind} one")
        return tok

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if arr.size == 0:
            return []
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"decode needs a flat sequence of integer ids, got shape {arr.shape} of {arr.dtype}")
        bad = (arr < 0) | (arr >= self.vocab_size)
        if bad.any():
            raise DataError(f"token id {int(arr[bad][0])} is outside the vocabulary (size {self.vocab_size})")
        return arr.tolist()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, special_tokens={self.special_tokens})"


class CharTokenizer(Tokenizer):
    """One token per character: id ``i`` is the ``i``-th of the sorted characters, specials after.

    Args:
        chars: the vocabulary characters (each a single character, no repeats).
        special_tokens: whole-string tokens given the ids after the characters.

    Encoding a character that is not in the vocabulary raises
    :class:`~tinyllm.data.errors.UnknownCharactersError` naming it and its position.
    """

    kind = "char"

    def __init__(self, chars: Sequence[str], special_tokens: Sequence[str] = ()) -> None:
        chars = list(chars)
        if not chars:
            raise DataError("a character tokenizer needs at least one character")
        if any(len(c) != 1 for c in chars):
            raise DataError("every entry of a character vocabulary must be a single character")
        if len(set(chars)) != len(chars):
            raise DataError("the character vocabulary has repeated characters")
        if len(set(special_tokens)) != len(special_tokens) or any(not t for t in special_tokens):
            raise DataError(f"special tokens must be distinct non-empty strings, got {list(special_tokens)}")
        clash = [t for t in special_tokens if t in chars]
        if clash:
            raise DataError(f"special token {clash[0]!r} is also a vocabulary character")
        self.chars = chars
        self._specials = list(special_tokens)
        self._itos = chars + self._specials
        self._stoi = {s: i for i, s in enumerate(self._itos)}
        # Encoding looks code points up in a sorted table with np.searchsorted.
        codes = np.array([ord(c) for c in chars], dtype=np.int64)
        order = np.argsort(codes)
        self._codes, self._code_ids = codes[order], order.astype(np.int64)
        # Longest first, so that one special token that is a prefix of another never wins.
        self._special_re = (re.compile("(" + "|".join(re.escape(t) for t in sorted(self._specials, key=len,
                                                                                    reverse=True)) + ")")
                            if self._specials else None)

    @classmethod
    def from_text(cls, text: str | Iterable[str], special_tokens: Sequence[str] = ()) -> CharTokenizer:
        """A tokenizer whose vocabulary is the sorted unique characters of ``text``
        (a string, or an iterable of strings such as :func:`~tinyllm.data.text.iter_text`'s chunks)."""
        chars: set[str] = set()
        for piece in [text] if isinstance(text, str) else text:
            chars.update(piece)
        if not chars:
            raise DataError("cannot build a character vocabulary from empty text")
        return cls(sorted(chars - set(special_tokens)), special_tokens)

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    @property
    def special_tokens(self) -> list[str]:
        return list(self._specials)

    def token_to_id(self, token: str) -> int | None:
        return self._stoi.get(token)

    def _encode_plain(self, text: str, offset: int, unknown: dict[str, int]) -> np.ndarray:
        """Ids of text with no special tokens in it; unknown characters are collected, not raised."""
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
        pos = np.searchsorted(self._codes, codes)
        pos_clipped = np.minimum(pos, len(self._codes) - 1)
        known = self._codes[pos_clipped] == codes
        if not known.all():
            for i in np.flatnonzero(~known)[:1000].tolist():
                unknown.setdefault(text[i], offset + i)
        return self._code_ids[pos_clipped]

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``, one per character (a special token written out counts as one)."""
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        """:meth:`encode` as an int64 array, without the list (a corpus chunk at a time)."""
        pieces = self._special_re.split(text) if self._special_re else [text]
        out, unknown, offset = [], {}, 0
        for k, piece in enumerate(pieces):  # odd k: a special token captured by the split
            if k % 2:
                out.append(np.array([self._stoi[piece]], dtype=np.int64))
            elif piece:
                out.append(self._encode_plain(piece, offset, unknown))
            offset += len(piece)
        if unknown:
            raise UnknownCharactersError(list(unknown), list(unknown.values()))
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        first_special = len(self.chars)
        return "".join(self._itos[i] for i in self._check_ids(ids) if not (skip_special and i >= first_special))

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "version": 1, "chars": self.chars,
                           "special_tokens": self._specials})

    @classmethod
    def from_json(cls, obj: dict, source: str = "<json>") -> CharTokenizer:
        """Rebuild a tokenizer from the parsed JSON that :meth:`to_json` wrote (checked field by field)."""
        chars, specials = check_char_tokenizer(obj, source)
        try:
            return cls(chars, specials)
        except DataError as exc:
            raise FileError(source, str(exc)) from None


class LibraryTokenizer(Tokenizer):
    """A tokenizer run by the ``tokenizers`` library (``self._tok``): what every such model shares.

    Subclasses set ``self._tok`` and ``self._specials`` (the special tokens' strings) and say
    how they are built and checked (byte-level BPE here; WordPiece in ``models/hf_wordpiece.py``).
    """

    _tok: hf.Tokenizer
    _specials: list[str]

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def special_tokens(self) -> list[str]:
        return list(self._specials)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """The ids of each string, encoded in parallel by the library."""
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """The text of ``ids`` (byte-level BPE: bytes that do not form whole UTF-8 characters become U+FFFD)."""
        return self._tok.decode(self._check_ids(ids), skip_special_tokens=skip_special)

    def to_json(self) -> str:
        return self._tok.to_str()

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and each piece's character span in ``text``."""
        enc = self._tok.encode(text, add_special_tokens=False)
        return list(enc.ids), [tuple(o) for o in enc.offsets]


class BPETokenizer(LibraryTokenizer):
    """Byte-level BPE (GPT-2 style), trained and run by the ``tokenizers`` library.

    Build one with :meth:`train` (from strings), :meth:`train_from_files`, or
    :meth:`from_file` (a saved ``tokenizer.json``, e.g. GPT-2's).
    """

    kind = "bpe"

    def __init__(self, tokenizer: hf.Tokenizer) -> None:
        self._tok = tokenizer
        added = tokenizer.get_added_tokens_decoder()  # {id: AddedToken}
        self._specials = [added[i].content for i in sorted(added) if added[i].special]

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, special_tokens: Sequence[str] = GPT_SPECIALS,
              min_frequency: int = 2) -> BPETokenizer:
        """Learn byte-level BPE merges from an iterable of strings.

        Args:
            texts: the training corpus, as strings (documents, lines or chunks).
            vocab_size: the size wanted, special tokens and the 256 byte tokens
                included; a small corpus may run out of pairs to merge first.
            special_tokens: whole-string tokens, given the first ids.
            min_frequency: pairs seen fewer times than this are never merged.
        """
        floor = 256 + len(special_tokens)
        if vocab_size < floor:
            raise DataError(f"a byte-level BPE vocabulary needs at least {floor} tokens "
                            f"(256 bytes + {len(special_tokens)} special), got vocab_size={vocab_size}")
        tok = hf.Tokenizer(hf.models.BPE())
        # add_prefix_space=False keeps decode(encode(s)) == s exact (no space invented at the start).
        tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = hf.decoders.ByteLevel()
        trainer = hf.trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(special_tokens),
            initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is unknown
            show_progress=False)
        tok.train_from_iterator(texts, trainer)
        return cls(tok)

    @classmethod
    def train_from_files(cls, paths: Sequence[str | os.PathLike], vocab_size: int,
                         special_tokens: Sequence[str] = GPT_SPECIALS, min_frequency: int = 2) -> BPETokenizer:
        """Like :meth:`train`, streaming the text of files or directories of .txt files."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        texts = (chunk for p in paths for chunk in iter_text(p))
        return cls.train(texts, vocab_size, special_tokens, min_frequency)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> BPETokenizer:
        """Load a Hugging Face ``tokenizer.json`` holding a BPE model (GPT-2's, or one :meth:`save` wrote)."""
        return cls.from_json(_read_json(path), str(path))

    @classmethod
    def from_json(cls, obj: dict, source: str = "<json>") -> BPETokenizer:
        """Rebuild a tokenizer from a parsed Hugging Face ``tokenizer.json``."""
        kind = check_hf_tokenizer(obj, source)
        if kind != "BPE":
            raise DataError(f"tokenizer file '{source}' holds a {kind or 'unknown'} model; "
                            "only BPE tokenizer.json files are supported")
        tok = cls(library_call(source, "tokenizer.json", hf.Tokenizer.from_str, json.dumps(obj)))
        if tok.vocab_size > LIMITS["vocab_size"]:
            raise FileError(source, f"has {tok.vocab_size:,} tokens, more than tinyllm uses ({LIMITS['vocab_size']:,})")
        return tok


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load any saved tokenizer, detecting its kind from the JSON.

    Args:
        path: a file written by :meth:`Tokenizer.save`, a Hugging Face
            ``tokenizer.json``, or a directory holding ``tokenizer.json``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    obj = _read_json(p)
    if obj.get("kind") == CharTokenizer.kind:
        return CharTokenizer.from_json(obj, str(p))
    if "model" in obj:
        return BPETokenizer.from_json(obj, str(p))
    raise DataError(f"tokenizer file '{p}' is neither a character tokenizer nor a tokenizer.json")
