"""Typed reads from one parsed JSON object: every failure names the file and the dotted key."""
from __future__ import annotations

import json
import math
import os
from typing import Any

from .errors import FileError

_FLOAT_MAX = 1.7976931348623157e308
BIG = 1 << 62                   # counters (iterations, tokens, seeds): anything an int64 holds
_MISSING = object()


def _kind(value: Any) -> str:
    """What a JSON value is, in words: 'a string', 'a list', ... ('true' for booleans)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = json.dumps(value) if not isinstance(value, int) or abs(value) < 10 ** 30 else "a huge integer"
        return text
    if isinstance(value, str):
        return json.dumps(value) if len(value) <= 40 else "a long string"
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


class Fields:
    """Typed reads from one JSON object of one file.

    Args:
        obj: the parsed value that must be an object.
        path: the file it came from (named in every message).
        where: the dotted key of ``obj`` inside the file ('' for the whole file).

    Each reader (:meth:`int`, :meth:`number`, ...) returns the value of ``key``
    after checking it, or ``default`` when the key is absent and a default is
    given; a missing key without a default is an error naming it.
    """

    def __init__(self, obj: Any, path: str | os.PathLike, where: str = "") -> None:
        self.path, self.where = path, where
        if not isinstance(obj, dict):
            raise FileError(path, f"{repr(where) if where else 'the file'} must be a JSON object, got {_kind(obj)}")
        self.obj = obj

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, expected: str, value: Any) -> FileError:
        return FileError(self.path, f"'{self.name(key)}' must be {expected}, got {_kind(value)}")

    def _get(self, key: str, default: Any) -> Any:
        if key in self.obj:
            return self.obj[key]
        if default is _MISSING:
            raise FileError(self.path, f"missing key '{self.name(key)}'")
        return _MISSING

    def int(self, key: str, lo: int = 0, hi: int = BIG, default: Any = _MISSING, none: bool = False) -> Any:
        """An integer in ``[lo, hi]`` (a boolean or 4.0 is not one)."""
        v = self._get(key, default)
        if v is _MISSING or (none and v is None):
            return default if v is _MISSING else None
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(key, f"an integer in [{lo}, {hi}]" + (" or null" if none else ""), v)
        return v

    def number(self, key: str, lo: float = -math.inf, hi: float = math.inf, default: Any = _MISSING,
               none: bool = False, below_hi: bool = False, above_lo: bool = False) -> Any:
        """A finite number in the range (``below_hi``/``above_lo``: that end excluded)."""
        v = self._get(key, default)
        if v is _MISSING or (none and v is None):
            return default if v is _MISSING else None
        ok = not isinstance(v, bool) and isinstance(v, (int, float)) and abs(v) <= _FLOAT_MAX and not (
            isinstance(v, float) and not math.isfinite(v))          # an int beyond float range: OverflowError later
        if ok:
            ok = (lo < v if above_lo else lo <= v) and (v < hi if below_hi else v <= hi)
        if not ok:
            rng = "" if math.isinf(lo) and math.isinf(hi) else \
                f" in {'(' if above_lo else '['}{lo:g}, {hi:g}{')' if below_hi else ']'}"
            raise self.fail(key, f"a finite number{rng}" + (" or null" if none else ""), v)
        return v

    def string(self, key: str, choices: tuple[str, ...] | None = None, default: Any = _MISSING,
               none: bool = False, max_len: int = 4096) -> Any:
        """A string (one of ``choices`` if given)."""
        v = self._get(key, default)
        if v is _MISSING or (none and v is None):
            return default if v is _MISSING else None
        if not isinstance(v, str) or len(v) > max_len or (choices is not None and v not in choices):
            expected = f"one of {', '.join(choices)}" if choices else f"a string of at most {max_len} characters"
            raise self.fail(key, expected + (" or null" if none else ""), v)
        return v

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if v is _MISSING:
            return default
        if not isinstance(v, bool):
            raise self.fail(key, "true or false", v)
        return v

    def object(self, key: str, default: Any = _MISSING, none: bool = False) -> Fields | None:
        """The object at ``key`` as Fields of its own (None if absent with a default, or null with ``none``)."""
        v = self._get(key, default)
        if v is _MISSING or (none and v is None):
            return None
        return Fields(v, self.path, self.name(key))

    def strings(self, key: str, default: Any = _MISSING, max_items: int = 1 << 22, max_len: int = 4096) -> Any:
        """A list of strings."""
        v = self._get(key, default)
        if v is _MISSING:
            return default
        if not isinstance(v, list) or len(v) > max_items or any(
                not isinstance(s, str) or len(s) > max_len for s in v):
            raise self.fail(key, f"a list of at most {max_items} strings", v)
        return v
