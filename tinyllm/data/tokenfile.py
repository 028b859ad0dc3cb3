"""Token files: a corpus tokenized once, stored as raw integers, read through a memory map.

A corpus bigger than memory cannot be a Python list of ids. Instead it is
tokenized once, chunk by chunk, into a flat binary file of unsigned integers
(``uint16`` when every id fits, i.e. ``vocab_size <= 65536``, else ``uint32``)
plus a small JSON sidecar ``<file>.json`` recording the dtype, the number of
tokens, the vocabulary size and which tokenizer wrote it.

:class:`TokenFile` reads it with ``np.memmap``: the operating system pages in
only the bytes a batch touches. It opens a *fresh* memmap for every read and
lets it go right after; a memmap kept open for a whole run holds on to every
page it has touched, which is how nanoGPT's data loader leaked memory.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..validate import FileError, check_token_meta, load_json, regular_file
from .errors import DataError
from .text import iter_text
from .tokenizers import Tokenizer

FORMAT = "tinyllm-tokens"


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids 0..vocab_size-1: uint16 or uint32."""
    if vocab_size < 1:
        raise DataError(f"vocab_size must be at least 1, got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def _replace_atomically(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_token_file(path: str | os.PathLike, ids_iter: Iterable[Any] | np.ndarray, vocab_size: int,
                     tokenizer: Tokenizer | None = None, extra: dict | None = None) -> TokenFile:
    """Write token ids to ``path`` (raw integers) and ``path + '.json'`` (metadata), atomically.

    Args:
        path: the ``.bin`` file to create (replaced if it exists).
        ids_iter: a 1-D array of ids, or an iterable of chunks (lists or 1-D
            arrays of ids), written in order without holding them all in memory.
        vocab_size: ids must lie in ``[0, vocab_size)``; sets the dtype.
        tokenizer: the tokenizer that produced the ids; its kind and
            fingerprint are recorded so the file is never read with another.
        extra: more facts for the metadata (read after the ids are written, so
            a generator may fill it in as it goes: e.g. the corpus's length).

    Returns:
        The new file, opened as a :class:`TokenFile`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(vocab_size)
    chunks = [ids_iter] if isinstance(ids_iter, np.ndarray) else ids_iter
    count = 0

    def write_ids(f) -> None:
        nonlocal count
        for chunk in chunks:
            arr = np.asarray(chunk)
            if arr.size == 0:
                continue
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
                raise DataError(f"token chunks must be flat sequences of integer ids, got shape {arr.shape} "
                                f"of {arr.dtype}")
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= vocab_size:
                raise DataError(f"token id {lo if lo < 0 else hi} is outside the vocabulary (size {vocab_size})")
            f.write(arr.astype(dtype).tobytes())
            count += arr.size
        if count == 0:
            raise DataError(f"no tokens to write to '{path}'")

    meta_path = Path(str(path) + ".json")
    _replace_atomically(path, write_ids)
    meta = {"format": FORMAT, "version": 1, "dtype": dtype.name, "count": count, "vocab_size": vocab_size,
            "tokenizer": ({"kind": tokenizer.kind, "hash": tokenizer.fingerprint()} if tokenizer else None),
            **{k: v for k, v in (extra or {}).items() if k not in ("format", "version", "dtype", "count")}}
    _replace_atomically(meta_path, lambda f: f.write(json.dumps(meta, indent=2).encode("utf-8")))
    return TokenFile(path)


def tokenize_file(text_path: str | os.PathLike, out_path: str | os.PathLike, tokenizer: Tokenizer,
                  chunk_chars: int = 1 << 20) -> TokenFile:
    """Tokenize a text corpus (a file or a directory of .txt files) into a token file, streaming.

    The text is read and encoded ``chunk_chars`` characters at a time, cut at
    line boundaries (see :func:`~tinyllm.data.text.iter_text`), so memory use
    stays flat however large the corpus is.
    """
    chunks = (np.asarray(tokenizer.encode(text), dtype=np.int64) for text in iter_text(text_path, chunk_chars))
    return write_token_file(out_path, chunks, tokenizer.vocab_size, tokenizer)


class TokenFile:
    """A read-only 1-D array of token ids on disk, written by :func:`write_token_file`.

    Supports ``len()``, integer and slice indexing (a step-1 slice returns a
    NumPy array), fancy indexing with an integer array of any shape (how
    :class:`~tinyllm.data.batching.LMBatcher` gathers a batch in one read), and
    ``np.asarray(tf)`` (reads everything). :meth:`view` gives a sub-range
    without reading it, which is how :func:`~tinyllm.data.slicing.split_train_val`
    splits a file.

    Args:
        path: the ``.bin`` file; its sidecar ``path + '.json'`` must be beside it.
    """

    def __init__(self, path: str | os.PathLike, _start: int = 0, _stop: int | None = None,
                 _meta: dict | None = None) -> None:
        self.path = Path(path)
        meta_path = Path(str(self.path) + ".json")
        if not self.path.exists():
            raise DataError(f"token file '{path}' does not exist")
        if not meta_path.exists():
            raise DataError(f"token file '{path}' has no metadata file '{meta_path}'; re-create it")
        size = regular_file(self.path, "token file").st_size
        if _meta is None:
            _meta = check_token_meta(load_json(meta_path, "token file metadata"), meta_path)
        meta = _meta
        if meta["format"] != FORMAT:
            raise DataError(f"metadata file '{meta_path}' is not a tinyllm token file description")
        self.dtype = np.dtype(meta["dtype"])
        self.count, self.vocab_size = meta["count"], meta["vocab_size"]
        self.meta = meta
        if size != self.count * self.dtype.itemsize:
            raise DataError(f"token file '{path}' has {size} bytes but its metadata says {self.count} tokens "
                            f"of {self.dtype.name} ({self.count * self.dtype.itemsize} bytes); re-create it")
        self.start = _start
        self.stop = self.count if _stop is None else _stop
        if _stop is None and _start == 0:
            self._check_ids()

    def _check_ids(self, chunk: int = 1 << 24) -> None:
        """Scan the file once (a chunk at a time) for ids at or above the recorded vocabulary size."""
        if self.count == 0 or self.vocab_size >= 1 << (8 * self.dtype.itemsize):
            return                                                    # every value the dtype holds is an id
        for lo in range(0, self.count, chunk):
            mm = np.memmap(self.path, dtype=self.dtype, mode="r", offset=lo * self.dtype.itemsize,
                           shape=(min(chunk, self.count - lo),))
            top = int(mm.max())
            del mm
            if top >= self.vocab_size:
                last = min(lo + chunk, self.count) - 1
                raise FileError(self.path, f"holds token id {top} (among tokens {lo:,}..{last:,}), outside the "
                                           f"vocabulary of {self.vocab_size} its metadata records; re-create it")

    def check_tokenizer(self, tokenizer: Tokenizer) -> None:
        """Raise a DataError if the file was written by a different tokenizer than ``tokenizer``,
        or holds ids (up to its recorded vocabulary) that ``tokenizer`` does not have."""
        if self.vocab_size > tokenizer.vocab_size:
            raise DataError(f"token file '{self.path}' has ids up to {self.vocab_size - 1}, beyond the tokenizer's "
                            f"{tokenizer.vocab_size} tokens")
        recorded = self.meta.get("tokenizer")
        if recorded is None:
            return
        mine = tokenizer.fingerprint()
        if recorded.get("hash") != mine:
            raise DataError(f"token file '{self.path}' was written by another tokenizer ({recorded.get('kind')} "
                            f"{recorded.get('hash')}) than this one ({tokenizer.kind} {mine}); "
                            "tokenize the corpus again")

    def __len__(self) -> int:
        return self.stop - self.start

    def _open(self) -> np.memmap:
        """A fresh memmap of this view's range (dropped by the caller after one read)."""
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.start * self.dtype.itemsize,
                         shape=(len(self),))

    def view(self, start: int = 0, stop: int | None = None) -> TokenFile:
        """The ids ``[start, stop)`` of this file as another TokenFile; nothing is read."""
        s = slice(start, stop).indices(len(self))
        return TokenFile(self.path, self.start + s[0], self.start + max(s[0], s[1]), _meta=self.meta)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice) and key.step not in (None, 1):
            raise DataError("a TokenFile can only be sliced with step 1")
        if not isinstance(key, (int, np.integer, slice)):
            key = np.asarray(key)
            if not np.issubdtype(key.dtype, np.integer):
                raise DataError(f"a TokenFile is indexed by integers, got {key.dtype}")
            n = len(self)
            if key.size and (key.min() < -n or key.max() >= n):
                raise IndexError(f"token index out of range for a file of {n} tokens")
        if len(self) == 0:
            return np.empty(0, dtype=self.dtype)[key]
        mm = self._open()
        try:
            out = mm[key]
            return int(out) if np.ndim(out) == 0 else np.array(out)  # copy out of the map
        finally:
            del mm  # unmap now: no page stays referenced between batches

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype)

    def read(self) -> np.ndarray:
        """Every id of this view as an in-memory NumPy array."""
        return self[:]

    def __repr__(self) -> str:
        return f"TokenFile('{self.path}', tokens={len(self)}, dtype={self.dtype.name}, vocab_size={self.vocab_size})"
