"""Process tuning for the CPU, applied once when tinyllm is imported: glibc's malloc.

(The other import-time setting, ``OPENBLAS_THREAD_TIMEOUT=4``, is made by
``tinyllm/__init__.py`` itself: OpenBLAS reads it when NumPy loads, so it has
to come before the first ``import numpy``, earlier than any module here.)
"""
from __future__ import annotations

import os
import sys


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the OS.

    A training step allocates its activations in the forward pass (arrays of
    up to tens of MiB) and frees them in the backward pass. By default glibc
    serves large blocks with fresh ``mmap`` calls and gives freed memory back,
    so every step pays a page fault per 4 KiB page of every new array, and
    the kernel zeroes each page: on the 6-layer, 384-wide GPT that was half of
    the step (6.0 -> 3.3 s). With blocks up to 32 MiB (glibc's ceiling) taken
    from the heap and the heap never trimmed, the next step reuses the same,
    already mapped pages. Peak memory stays the same; memory freed after the
    peak stays with the process. Called once at import on Linux with glibc;
    set ``TINYLLM_MALLOC=system`` to keep glibc's defaults. Returns whether it applied.
    """
    if os.environ.get("TINYLLM_MALLOC") == "system" or not sys.platform.startswith("linux"):
        return False
    import ctypes  # noqa: PLC0415
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl)
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    ok = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)      # blocks below 32 MiB come from the heap
    ok &= mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1)          # and freed heap memory is kept
    return bool(ok)


APPLIED = keep_freed_memory()
