"""Compiled CPU kernels for the NumPy backend (float32), written with Numba.

The formulas of ``tinyllm.functional`` are the reference: one array
operation per line, each a full pass over memory. For the row-wise ops of a
transformer (GELU, layer norm, softmax, cross-entropy, attention) those
passes are the whole cost, and NumPy's float32 ``exp`` and ``tanh`` are slow
besides. Each kernel here computes the same formula in one loop over the
rows, keeping a row in cache from its first read to its last write, with a
vectorizable exp (:func:`tinyllm.kernels.cpu.exp.exp_neg`). AdamW too is one
loop over the flat buffers instead of a dozen passes, with the reference's
roundings (bit-identical weights). :mod:`.threads` runs one call per core,
each on its own rows: the kernels release the GIL.

Modules: one per op family (``gelu``, ``layer_norm``, ``softmax``, ``cross_entropy``,
``attention`` with its softmax loops, ``adam``), each with its loops, the
implementation object that ``tinyllm.kernels.select`` hands to the op, and
its cost figure (nanoseconds per element on one core, which decides when
the rows are shared between cores); ``exp`` and ``jit`` are what they share;
``threads`` is the thread pool; ``platform`` tunes the C library at import.

When they run (:func:`supported`): float32 NumPy arrays, Numba importable,
and the environment variable ``TINYLLM_CPU_KERNELS`` not ``0`` (set it to 0
to run the reference everywhere, e.g. to step through it). float64
(gradient checks) always takes the reference. ``tests/test_cpu_kernels.py``
checks every kernel against it. The first call of each kernel compiles it
(about a second); the machine code is cached on disk after that (Numba does
not notice a change to ``exp.py`` in the kernels that inline it: clear
``__pycache__`` after editing it).
"""
from __future__ import annotations

import importlib
import os
import warnings
from typing import Any

import numpy as np

from . import platform  # noqa: F401  (tunes malloc at import, as importing tinyllm always has)

_loaded: dict[str, bool] = {}


def enabled() -> bool:
    """Whether the kernels are on: ``TINYLLM_CPU_KERNELS`` is not 0 and Numba imports
    (with the llvmlite intrinsic of :mod:`.exp` that every kernel inlines)."""
    if os.environ.get("TINYLLM_CPU_KERNELS", "1") == "0":
        return False
    if "ok" not in _loaded:
        try:
            importlib.import_module(f"{__name__}.exp")
            _loaded["ok"] = True
        except Exception as e:                              # no Numba, one not for this NumPy, no cache dir...
            warnings.warn(f"tinyllm: the compiled CPU kernels are off ({type(e).__name__}: {e}); "
                          f"the NumPy reference runs instead", stacklevel=3)
            _loaded["ok"] = False
    return _loaded["ok"]


def supported(*arrays: Any) -> bool:
    """Whether the kernels take these arrays: NumPy float32 (``None`` entries are ignored)."""
    for a in arrays:
        if a is not None and (type(a) is not np.ndarray or a.dtype != np.float32):
            return False
    return enabled()


def rows2d(a: Any) -> np.ndarray:
    """``a`` as a C-contiguous (rows, last axis) array: a view when it already is contiguous."""
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


def flat(a: Any) -> np.ndarray:
    """``a`` as a C-contiguous 1-d array."""
    return np.ascontiguousarray(a).reshape(-1)
