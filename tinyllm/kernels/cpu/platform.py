"""Process tuning for the CPU, applied once when tinyllm is imported: glibc's malloc,
and OpenBLAS's idle threads when NumPy was loaded before tinyllm.

(``OPENBLAS_THREAD_TIMEOUT=4`` itself is set by ``tinyllm/__init__.py``:
OpenBLAS reads it when NumPy loads, so it has to come before the first
``import numpy``, earlier than any module here. When the user's script
imported NumPy first, :func:`reread_openblas_timeout` makes the library
read it again.)
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


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries mapped into this process (Linux: ``/proc/self/maps``)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


def reread_openblas_timeout(timeout: str = "4") -> bool:
    """Give an OpenBLAS that was loaded before tinyllm the thread timeout tinyllm sets.

    OpenBLAS reads ``OPENBLAS_THREAD_TIMEOUT`` when it is loaded; a script that
    imported NumPy before tinyllm would keep the default (idle workers spin for
    2^28 cycles after every matmul, taking the cores our own threads need).
    Setting the variable, calling ``openblas_read_env()`` and then
    ``blas_thread_shutdown_()`` (both exported by OpenBLAS; either alone changes
    nothing) makes the next BLAS call start its workers with the new timeout.
    Done at import, so no BLAS call of ours is in flight. Nothing is done when
    the user set the variable themselves (``OPENBLAS_THREAD_TIMEOUT=28`` keeps
    OpenBLAS's default). Returns whether it applied.
    """
    if os.environ.get("OPENBLAS_THREAD_TIMEOUT") not in (None, timeout) or "numpy" not in sys.modules:
        return False
    import ctypes  # noqa: PLC0415
    done = False
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)                    # already mapped: the same library, not a second copy
        except OSError:
            continue
        if hasattr(lib, "openblas_read_env") and hasattr(lib, "blas_thread_shutdown_"):
            os.environ["OPENBLAS_THREAD_TIMEOUT"] = timeout
            lib.openblas_read_env()
            lib.blas_thread_shutdown_()
            done = True
    return done


APPLIED = keep_freed_memory()
