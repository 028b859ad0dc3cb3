"""Streaming decoded token ids to text as they are made.

A byte-level BPE token can hold part of a UTF-8 character (an emoji, an
accented letter split over two tokens); decoding it alone would print the
replacement character. :class:`TextStreamer` holds such tokens back until the
character is complete, so what streams to the terminal is exactly
``tokenizer.decode(all_ids)``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

REPLACEMENT = "\ufffd"


class TextStreamer:
    """Feed token ids one at a time; get back the text they complete (possibly "")."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.pending: list[int] = []

    def push(self, token: int) -> str:
        self.pending.append(int(token))
        text = self.tokenizer.decode(self.pending)
        if text.endswith(REPLACEMENT) and len(self.pending) < 4:   # an incomplete UTF-8 character: wait
            return ""
        self.pending = []
        return text

    def flush(self) -> str:
        text = self.tokenizer.decode(self.pending) if self.pending else ""
        self.pending = []
        return text


def stream_text(tokens: Iterable[int], tokenizer: Any, write: Callable[[str], None]) -> str:
    """Decode ``tokens`` as they arrive, calling ``write`` with each new piece; return the whole text."""
    streamer = TextStreamer(tokenizer)
    pieces = []
    for tok in tokens:
        piece = streamer.push(tok)
        if piece:
            write(piece)
            pieces.append(piece)
    rest = streamer.flush()
    if rest:
        write(rest)
        pieces.append(rest)
    return "".join(pieces)


def start_tokens(tokenizer: Any) -> list[int]:
    """A neutral one-token prompt: a newline if the tokenizer knows it, else the end-of-text token, else 0."""
    try:
        ids = tokenizer.encode("\n")
    except ValueError:
        ids = []
    if ids:
        return ids[-1:]
    return [tokenizer.eos_id if tokenizer.eos_id is not None else 0]
