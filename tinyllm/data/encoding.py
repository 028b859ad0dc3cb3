"""Encoding a corpus of any size: chunk by chunk, into an array or a token file on disk.

A corpus read whole and encoded into a Python list of ids needs about 36 bytes
per character (a list slot and an int object each), then 8 more for the int64
array made of it: a 200 MB text file took 3.6 GB. Here the text is streamed
(:func:`~tinyllm.data.text.iter_text`, about a million characters at a time)
and each chunk's ids go, as ``uint16``/``uint32``, either

* into an in-memory array, for a corpus of up to ``IN_MEMORY_BYTES`` on disk, or
* straight into a token file (``.bin`` + ``.json``, see :mod:`.tokenfile`)
  in the cache directory (``$TINYLLM_CACHE/tokens/``, else
  ``~/.cache/tinyllm/tokens/``): nanoGPT's ``train.bin`` approach. Memory then
  stays bounded by one chunk whatever the corpus size, and training reads
  the file through a memory map.

The token file is written to a temporary file and renamed into place (a run
killed meanwhile leaves no half-written cache), named after the corpus files
(paths, sizes, modification times) and the tokenizer's fingerprint, so a
changed corpus or another tokenizer never reuses it, and a resumed run reuses
it without encoding again. The corpus itself is only ever read.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .corpora import cache_dir
from .errors import DataError, UnknownCharactersError
from .text import iter_text, text_files
from .tokenfile import TokenFile, token_dtype, write_token_file
from .tokenizers import Tokenizer

IN_MEMORY_BYTES = 16 << 20   # corpora up to this size (on disk) are encoded into memory
CHUNK_CHARS = 1 << 20        # characters encoded at a time


def encode_chunks(path: str | os.PathLike, tokenizer: Tokenizer, what: str = "data",
                  counts: dict | None = None, chunk_chars: int = CHUNK_CHARS) -> Iterator[np.ndarray]:
    """The ids of the corpus at ``path``, one 1-D array per chunk of text.

    Unknown characters are reported with their position in the whole corpus.
    ``counts["chars"]`` (if a dict is given) is the number of characters read so far.
    """
    counts = {} if counts is None else counts
    counts["chars"] = 0
    for text in iter_text(path, chunk_chars):
        try:
            ids = tokenizer.encode_array(text)
        except UnknownCharactersError as exc:
            raise UnknownCharactersError(exc.chars, [p + counts["chars"] for p in exc.positions], what=what) \
                from None
        counts["chars"] += len(text)
        yield ids


def corpus_key(path: str | os.PathLike, tokenizer: Tokenizer) -> str:
    """A name for the token cache of ``path`` encoded by ``tokenizer`` (changes when either changes)."""
    h = hashlib.sha256(tokenizer.fingerprint().encode())
    for f in text_files(path):
        st = f.stat()
        h.update(json.dumps([str(f.resolve()), st.st_size, st.st_mtime_ns]).encode())
    return h.hexdigest()[:24]


def _cached(target: Path, tokenizer: Tokenizer) -> tuple[TokenFile, int] | None:
    """The token cache at ``target`` if it is complete and written by ``tokenizer``, else None."""
    if not (target.is_file() and Path(str(target) + ".json").is_file()):
        return None
    try:
        tf = TokenFile(target)
        tf.check_tokenizer(tokenizer)
    except DataError:
        return None                       # damaged or foreign: encode again (it is replaced atomically)
    chars = tf.meta.get("chars")
    return tf, chars if isinstance(chars, int) and not isinstance(chars, bool) else 0


def encode_corpus(path: str | os.PathLike, tokenizer: Tokenizer, what: str = "data",
                  cache: str | os.PathLike | None = None, in_memory_bytes: int | None = None,
                  chunk_chars: int = CHUNK_CHARS) -> tuple[Any, int, Path | None]:
    """Encode a text corpus in chunks: ``(ids, characters, token file or None)``.

    Args:
        path: a UTF-8 text file or a directory of ``.txt`` files.
        tokenizer: encodes each chunk.
        what: how error messages name the corpus.
        cache: where large corpora's token files go (default ``cache_dir() / "tokens"``).
        in_memory_bytes: corpora up to this size are encoded into a NumPy array (default ``IN_MEMORY_BYTES``).
        chunk_chars: characters encoded at a time.

    Returns:
        ``ids`` is a 1-D ``uint16``/``uint32`` array or a :class:`TokenFile`
        (both index like arrays); ``characters`` the corpus length; the last
        item the token file's path when one was used.
    """
    files = text_files(path)
    size = sum(f.stat().st_size for f in files)
    dtype = token_dtype(tokenizer.vocab_size)
    counts: dict = {}
    if size <= (IN_MEMORY_BYTES if in_memory_bytes is None else in_memory_bytes):
        chunks = [c.astype(dtype) for c in encode_chunks(path, tokenizer, what, counts, chunk_chars)]
        ids = np.concatenate(chunks) if chunks else np.empty(0, dtype)
        return ids, counts["chars"], None
    folder = Path(cache) if cache is not None else cache_dir() / "tokens"
    target = folder / f"{corpus_key(path, tokenizer)}.bin"
    hit = _cached(target, tokenizer)
    if hit is not None:
        return hit[0], hit[1], target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the token cache directory '{folder}' ({exc.strerror}); "
                        "set TINYLLM_CACHE to a writable directory") from None
    tf = write_token_file(target, encode_chunks(path, tokenizer, what, counts, chunk_chars), tokenizer.vocab_size,
                          tokenizer, extra=counts)
    return tf, counts["chars"], target
