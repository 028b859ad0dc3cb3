"""The pieces a checkpoint is written with: arrays split out of JSON, strict JSON, durable files.

:func:`split_arrays` pulls every array out of a nested dict/list into a flat
``name -> array`` dict (saved with safetensors) and leaves references in the
JSON tree; :func:`join_arrays` puts them back. :func:`to_json` writes the strict
JSON checkpoints use (no NaN or Infinity, which JSON lacks). :func:`_write_file`
and :func:`_write_arrays` write one file, fsync it and return its manifest
entry; :func:`_fsync_dir` makes a rename durable.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy as st

from .backend import to_numpy


def split_arrays(obj: Any, prefix: str = "") -> tuple[Any, dict[str, np.ndarray]]:
    """Replace every array inside a nested dict/list by a reference; return (JSON-able tree, arrays).

    An array at path ``state -> m`` becomes ``{"__array__": "state/m"}`` in the
    tree and ``arrays["state/m"]`` in the dict (written to safetensors). NumPy
    scalars become Python numbers. :func:`join_arrays` undoes it.
    """
    arrays: dict[str, np.ndarray] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, dict):
            for k in x:
                if not isinstance(k, str):
                    raise TypeError(f"checkpoint: dict keys must be strings, got {k!r} at '{path}'")
            return {k: walk(v, f"{path}/{k}" if path else k) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{path}/{i}" if path else str(i)) for i, v in enumerate(x)]
        if hasattr(x, "__array__") and not isinstance(x, (np.generic, bool, int, float)):
            arr = np.ascontiguousarray(to_numpy(x))            # a CuPy array comes back to the host
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"checkpoint: array '{path}' has dtype {arr.dtype}; only numbers can be saved")
            arrays[path] = arr
            return {"__array__": path}
        if isinstance(x, np.generic):
            return x.item()
        return x

    return walk(obj, prefix), arrays


def join_arrays(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Put the arrays back where :func:`split_arrays` left references."""
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            if not isinstance(tree["__array__"], str):
                raise KeyError(repr(tree["__array__"]))
            return arrays[tree["__array__"]]
        return {k: join_arrays(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_arrays(v, arrays) for v in tree]
    return tree


def to_json(obj: Any) -> str:
    """Strict JSON text for checkpoint files: NaN and infinities (which JSON lacks) become null."""
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, np.generic) or isinstance(x, Path):
            x = x.item() if isinstance(x, np.generic) else str(x)
        return None if isinstance(x, float) and not math.isfinite(x) else x
    return json.dumps(clean(obj), indent=1, allow_nan=False) + "\n"


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new file inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> dict:
    """Write ``data`` to ``path`` and fsync it; return its manifest entry (size, sha256)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> dict:
    """Write arrays as safetensors straight to ``path`` (no copy of them all in memory), fsync, hash.

    Serializing to bytes first would hold a second copy of every weight and
    optimizer moment at the moment memory is tightest.
    """
    st.save_file(arrays, str(path))
    h = hashlib.sha256()
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return {"size": path.stat().st_size, "sha256": h.hexdigest()}
