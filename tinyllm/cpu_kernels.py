"""Fused CPU kernels for the NumPy backend (float32), compiled by Numba.

The NumPy code in ``functional/`` is the reference: one array operation per
line, each a full pass over memory. For the row-wise ops of a transformer
(GELU, layer norm, cross-entropy, the attention softmax) those passes are the
whole cost, and NumPy's float32 ``exp`` and ``tanh`` are slow besides. Each
kernel here (``cpu_rows.py``) computes the same formula in one loop over
the rows, keeping a row in cache from its first read to its last write, with
a vectorizable exp (:func:`tinyllm.cpu_rows.exp_neg`). AdamW too is one loop
over the flat buffers instead of a dozen passes, with the reference's
roundings (bit-identical weights). ``rows.over_rows`` runs
one call per core, each on its own rows: the kernels release the GIL.

When they run: float32 NumPy arrays, Numba importable, and the environment
variable ``TINYLLM_CPU_KERNELS`` not ``0`` (set it to 0 to run the reference
everywhere, e.g. to step through it). float64 (gradient checks) always takes
the reference. ``tests/test_cpu_kernels.py`` checks every kernel against it.
The first call of each kernel compiles it (about a second); the machine code
is cached on disk after that.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

_state: dict[str, Any] = {}


def enabled() -> bool:
    """Whether the kernels are on: ``TINYLLM_CPU_KERNELS`` is not 0 and Numba imports."""
    if os.environ.get("TINYLLM_CPU_KERNELS", "1") == "0":
        return False
    if "rows" not in _state:
        try:
            from . import cpu_rows
        except Exception as e:                              # no Numba, one not for this NumPy, no cache dir...
            warnings.warn(f"tinyllm: the compiled CPU kernels are off ({type(e).__name__}: {e}); "
                          f"the NumPy reference runs instead", stacklevel=2)
            cpu_rows = None
        _state["rows"] = cpu_rows
    return _state["rows"] is not None


def supported(*arrays: Any) -> bool:
    """Whether the kernels take these arrays: NumPy float32 (``None`` entries are ignored)."""
    return all(a is None or (type(a) is np.ndarray and a.dtype == np.float32) for a in arrays) and enabled()


def kernels() -> Any:
    """The compiled kernels (the module ``cpu_rows``); only after :func:`supported` said yes."""
    return _state["rows"]


def rows2d(a: Any) -> np.ndarray:
    """``a`` as a C-contiguous (rows, last axis) array: a view when it already is contiguous."""
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


def flat(a: Any) -> np.ndarray:
    """``a`` as a C-contiguous 1-d array."""
    return np.ascontiguousarray(a).reshape(-1)
