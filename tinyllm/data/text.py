"""Reading text corpora from disk: one file, or a directory of ``.txt`` files.

Two ways in, with the same result:

* :func:`load_text` returns the whole corpus as one string (fine up to a few
  hundred MB);
* :func:`iter_text` streams it in chunks of about ``chunk_chars`` characters,
  so a multi-GB corpus is never held in memory at once. ``"".join(iter_text(p))
  == load_text(p)`` always.

Both check that the data is UTF-8 text and say where it is not: a binary file
gets "data file 'x.bin' is not UTF-8 text (byte 0x89 at offset 0)" instead of
a traceback from deep inside a codec. A leading UTF-8 byte-order mark is
dropped; line endings are kept exactly as they are on disk.

Where a chunk is cut matters for tokenizers that split text into words first
(byte-level BPE splits with GPT-2's regular expression, in which whitespace
runs attach to the word that follows). :func:`iter_text` therefore cuts, when it
can, right after a newline that sits between two non-space characters
(``"...word\\nWord..."``); at such a point encoding the chunks one by one gives
exactly the ids that encoding the whole text would.
"""
from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from pathlib import Path

from ..validate import regular_file
from .errors import DataError

READ_BYTES = 1 << 20  # bytes read from disk at a time


def decode_utf8(data: bytes, path: str | os.PathLike) -> str:
    """``data`` decoded as UTF-8 (a leading byte-order mark dropped), or a DataError with the offset.

    Args:
        data: the raw bytes of a file.
        path: the file's name, for the error message.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc.object[exc.start], exc.start) from None
    return text[1:] if text.startswith("\ufeff") else text


def _not_utf8(path: str | os.PathLike, byte: int, offset: int) -> DataError:
    return DataError(f"data file '{path}' is not UTF-8 text (byte 0x{byte:02x} at offset {offset})")


def text_files(path: str | os.PathLike) -> list[Path]:
    """The files a corpus path stands for: the file itself, or a directory's ``.txt`` files.

    A directory is searched recursively; its files come in sorted order of their
    paths relative to it, so the corpus is the same on every machine.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data path '{path}' does not exist")
    if p.is_dir():
        files = sorted((f for f in p.rglob("*.txt") if f.is_file()), key=lambda f: f.relative_to(p).parts)
        if not files:
            raise DataError(f"directory '{path}' has no .txt files")
        if all(f.stat().st_size == 0 for f in files):
            raise DataError(f"directory '{path}' has only empty .txt files")
        return files
    if regular_file(p, "data file").st_size == 0:      # a FIFO or /dev/zero is refused, never read
        raise DataError(f"data file '{path}' is empty")
    return [p]


def _iter_file(path: Path) -> Iterator[str]:
    """Decode one file block by block; report the byte offset of bad UTF-8 or a NUL byte."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    consumed = 0  # bytes handed to the decoder so far
    first = True
    with open(path, "rb") as f:
        while True:
            block = f.read(READ_BYTES)
            final = not block
            nul = block.find(b"\x00")
            if nul >= 0:
                raise DataError(f"data file '{path}' looks binary (NUL byte at offset {consumed + nul}), "
                                "not UTF-8 text")
            pending = len(decoder.getstate()[0])  # bytes of a split character kept from the last block
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError as exc:
                offset = consumed - pending + exc.start
                raise _not_utf8(path, exc.object[exc.start], offset) from None
            consumed += len(block)
            if first and text:
                text = text[1:] if text.startswith("\ufeff") else text
                first = False
            if text:
                yield text
            if final:
                return


def _raw_pieces(path: str | os.PathLike) -> Iterator[str]:
    """The corpus as decoded pieces, files joined so that each starts on a new line."""
    ends_with_newline = True
    for f in text_files(path):
        if not ends_with_newline:  # the previous file ended mid-line
            yield "\n"
        for piece in _iter_file(f):
            yield piece
            ends_with_newline = piece.endswith("\n")


def _cut_point(buf: str, start: int, limit: int) -> int:
    """Where to cut ``buf[start:]`` keeping at most ``limit`` chars: after "x\\nY" if possible, else a newline."""
    end = start + limit
    j = buf.rfind("\n", start, end)
    fallback = j + 1 if j > start else end
    while j > start:
        if not buf[j - 1].isspace() and not buf[j + 1].isspace():
            return j + 1
        j = buf.rfind("\n", start, j)
    return fallback


def iter_text(path: str | os.PathLike, chunk_chars: int = 1 << 20) -> Iterator[str]:
    """Stream a corpus (a file or a directory of .txt files) in chunks of about ``chunk_chars``.

    Args:
        path: a UTF-8 text file, or a directory whose ``.txt`` files are read in
            sorted order and joined with a newline where one does not already end
            with one.
        chunk_chars: the most characters a chunk holds (a chunk is cut at a line
            boundary when there is one; see the module docstring).

    Yields:
        Non-empty strings whose concatenation is the whole corpus.

    Raises:
        DataError: missing path, empty file, a directory without .txt files, or
            bytes that are not UTF-8 text.
    """
    if chunk_chars < 2:
        raise DataError(f"chunk_chars must be at least 2, got {chunk_chars}")
    buf = ""
    for piece in _raw_pieces(path):
        buf += piece
        start = 0
        while len(buf) - start > chunk_chars:
            cut = _cut_point(buf, start, chunk_chars)
            yield buf[start:cut]
            start = cut
        buf = buf[start:]
    if buf:
        yield buf


def load_text(path: str | os.PathLike) -> str:
    """The whole corpus at ``path`` (a UTF-8 file or a directory of .txt files) as one string.

    Raises:
        DataError: missing path, empty file, a directory without .txt files, or
            bytes that are not UTF-8 text (the message gives the byte's offset).
    """
    return "".join(_raw_pieces(path))
