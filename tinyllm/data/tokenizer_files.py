"""Tokenizer files from outside: GPT-2's ``vocab.json`` + ``merges.txt``, any ``tokenizer.json``.

Each is checked before the ``tokenizers`` library sees it, and whatever the
library still refuses comes back as one :class:`~tinyllm.validate.FileError`
naming the file, never as the library's own exception.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..validate import FileError, load_json, read_file
from ..validate.schema import LIMITS
from .errors import DataError
from .text import decode_utf8


def library_call(source: str | os.PathLike, what: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` from the ``tokenizers`` library, its failures as one FileError naming ``source``.

    The library raises a bare ``Exception`` on a malformed file, and on some
    inputs its Rust code panics, which reaches Python as ``PanicException``, a
    ``BaseException``: both become "FILE: is not a valid ...".
    """
    try:
        return fn(*args)
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
        raise
    except BaseException as exc:  # noqa: BLE001  (see the docstring)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise FileError(source, f"is not a valid {what} ({first})") from None


def check_vocab_json(path: str | os.PathLike) -> dict[str, int]:
    """A GPT-2 ``vocab.json``: an object of token string -> id, ids in range and distinct."""
    obj = load_json(path, "vocab.json")
    if not isinstance(obj, dict) or not obj:
        raise FileError(path, "must be a JSON object mapping tokens to ids")
    if len(obj) > LIMITS["vocab_size"]:
        raise FileError(path, f"has {len(obj):,} tokens, more than tinyllm uses ({LIMITS['vocab_size']:,})")
    bad = next((k for k, v in obj.items() if isinstance(v, bool) or not isinstance(v, int)
                or not 0 <= v < LIMITS["vocab_size"]), None)
    if bad is not None:
        raise FileError(path, f"the id of token {json.dumps(bad)[:60]} must be an integer in "
                              f"[0, {LIMITS['vocab_size']}), got {json.dumps(obj[bad])[:60]}")
    if len(set(obj.values())) != len(obj):
        raise FileError(path, "two tokens share an id")
    return obj


def check_merges(path: str | os.PathLike) -> None:
    """A GPT-2 ``merges.txt``: an optional ``#version`` line, then one ``left right`` pair per line."""
    text = decode_utf8(read_file(path, "merges.txt"), path)
    for lineno, line in enumerate(text.splitlines(), start=1):
        if (lineno == 1 and line.startswith("#version")) or not line:
            continue
        if len(line.split(" ")) != 2:
            raise FileError(path, f"line {lineno}: expected two tokens separated by one space, got "
                                  f"{json.dumps(line)[:60]}")


def _read_json(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.exists():
        raise DataError(f"tokenizer file '{path}' does not exist")
    obj = load_json(p, "tokenizer file")
    if not isinstance(obj, dict):
        raise DataError(f"tokenizer file '{path}' does not hold a JSON object")
    return obj
