"""The one exception the data layer raises for bad input.

Every message is a single line that tells a command-line user what is wrong
and, where it can, what to do about it; the CLI prints ``error: <message>`` and
exits non-zero. ``DataError`` subclasses ``ValueError`` so library users can
catch it either way.
"""
from __future__ import annotations

from ..validate.errors import DataError  # defined below the data layer: every file reader raises it

__all__ = ["DataError", "UnknownCharactersError"]


class UnknownCharactersError(DataError):
    """Text holds characters that a character-level tokenizer has never seen.

    Attributes:
        chars: the distinct unknown characters, in order of first appearance.
        positions: the index (into the text) of each one's first appearance.

    The message reads "text has characters outside the tokenizer's vocabulary:
    'é' (position 3)"; a caller that knows where the text came from can word its
    own message from ``chars`` (e.g. "prompt has characters ...").
    """

    def __init__(self, chars: list[str], positions: list[int], what: str = "text") -> None:
        self.chars = chars
        self.positions = positions
        listed = ", ".join(f"{c!r} (position {p})" for c, p in zip(chars[:10], positions[:10]))
        more = f" and {len(chars) - 10} more" if len(chars) > 10 else ""
        super().__init__(f"{what} has characters outside the tokenizer's vocabulary: {listed}{more}")
