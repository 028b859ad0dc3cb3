"""Safe reading: regular files of bounded size, strict JSON, paths kept inside their directory."""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from .errors import FileError

MAX_JSON_BYTES = 256 << 20   # far above any real config, index or tokenizer.json (GPT-2's is 1.4 MB)
MAX_DEPTH = 64               # JSON nesting: real files stay under 10 levels


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def regular_file(path: str | os.PathLike, what: str = "file") -> os.stat_result:
    """``os.stat(path)`` after checking that ``path`` is a regular file (symlinks followed).

    A directory, a FIFO, a socket or a device is refused before it is opened,
    so reading never blocks (a FIFO) or never ends (``/dev/zero``).
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FileError(p, f"{what} does not exist") from None
    except (OSError, RuntimeError) as exc:     # RuntimeError: a symlink loop (Python < 3.13)
        raise FileError(p, f"cannot read {what} ({getattr(exc, 'strerror', None) or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileError(p, f"is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise FileError(p, f"is not a regular file (a FIFO, socket or device?); a {what} must be a file")
    return st


def read_file(path: str | os.PathLike, what: str = "file", max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, or a FileError saying why not."""
    p = Path(path)
    st = regular_file(p, what)
    if st.st_size > max_bytes:
        raise FileError(p, f"{what} is {_size(st.st_size)}, more than the {_size(max_bytes)} tinyllm reads")
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise FileError(p, f"cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise FileError(p, f"{what} grew past {_size(max_bytes)} while it was read")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def check_depth(obj: Any, path: str | os.PathLike, max_depth: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``max_depth`` (walked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        x, depth = stack.pop()
        if isinstance(x, (dict, list)):
            if depth > max_depth:
                raise FileError(path, f"JSON is nested more than {max_depth} levels deep")
            stack.extend((v, depth + 1) for v in (x.values() if isinstance(x, dict) else x))


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")    # \ud800 .. \udfff written as an escape
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_surrogates(obj: Any, path: str | os.PathLike) -> None:
    """Refuse a string (or key) holding half of a UTF-16 surrogate pair: no text is made of one, and
    it could be neither printed nor written back as UTF-8 (walked without recursion)."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            bad = _SURROGATE.search(x)
            if bad:
                raise FileError(path, f"a string holds a lone surrogate (\\u{ord(bad.group()):04x}), "
                                      "which is not a Unicode character")
        elif isinstance(x, dict):
            stack.extend(x)
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


def parse_json(data: bytes | str, path: str | os.PathLike, what: str = "") -> Any:
    """Strict JSON: UTF-8 (a leading byte-order mark dropped), no NaN or Infinity, nesting bounded.

    Deep nesting (``[[[[...``), integers of thousands of digits and bytes that
    are not UTF-8 all become a one-line :class:`FileError` naming ``path``.
    """
    what = f"{what} is " if what else ""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileError(path, f"{what}not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                                  f"{exc.start})") from None
    text = data[1:] if data.startswith("\ufeff") else data
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise FileError(path, f"{what}not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") \
            from None
    except RecursionError:
        raise FileError(path, f"{what}not valid JSON (nested too deeply)") from None
    except ValueError as exc:                       # NaN/Infinity, or an integer of more than 4300 digits
        raise FileError(path, f"{what}not valid JSON ({str(exc).splitlines()[0]})") from None
    check_depth(obj, path)
    if _SURROGATE_ESCAPE.search(text):              # a pair (an emoji) is fine, half of one is not
        try:
            check_surrogates(obj, path)
        except FileError as exc:
            raise FileError(path, f"{what}not valid text ({exc.what})") from None
    return obj


def load_json(path: str | os.PathLike, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """:func:`read_file` then :func:`parse_json`."""
    return parse_json(read_file(path, what, max_bytes), path)


def contained(base: str | os.PathLike, name: Any, source: str | os.PathLike) -> Path:
    """``base / name`` resolved, refused unless it lies inside ``base`` after following symlinks.

    Args:
        base: the directory the naming file belongs to.
        name: the relative path read from that file (a shard name, a manifest entry, ...).
        source: the file ``name`` was read from, for the message.

    Raises:
        FileError: ``name`` is not a non-empty string, is absolute, climbs out with
            ``..``, or is (or passes through) a symlink that leads outside ``base``.
    """
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise FileError(source, f"{json.dumps(name)[:80]} is not a file name")
    try:
        root = Path(base).resolve()
        target = (root / name).resolve()
    except (OSError, RuntimeError) as exc:
        raise FileError(source, f"cannot resolve '{name}' ({exc})") from None
    if target == root or not target.is_relative_to(root):
        raise FileError(source, f"'{name}' resolves to {target}, outside {root}; refusing to read it")
    return target
