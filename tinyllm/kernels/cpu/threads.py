"""The thread pool of the CPU kernels: :func:`over_rows` runs row-wise work on every core.

NumPy's ufuncs run on one core, while PyTorch's elementwise kernels use all
of them; on a 2-core machine GELU, the attention softmax and layer norm were
about 1.2 s of a 3.1 s training step, on one core. NumPy's ufuncs and BLAS,
and the compiled kernels here, release the GIL, so a few Python threads,
each on its own rows, run them in parallel. This only pays when OpenBLAS's
idle workers sleep instead of spinning on the other core after each matmul:
see ``OPENBLAS_THREAD_TIMEOUT`` in ``tinyllm/__init__.py``.

Blocks of about :data:`BLOCK` elements also keep each op's operands in the
core's cache: an op chain over a block of 512 KiB reads memory once, where
the same chain over a whole 25 MiB activation reads it once per op.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from ... import backend

BLOCK = 1 << 17          # elements per call of fn: 512 KiB of float32, in a core's L2 cache
MIN_SIZE = 1 << 18       # below this many elements, one thread: handing work over costs more
_pool: list = []         # [ThreadPoolExecutor], made on first use
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.clear)       # a forked child has no worker threads


def _threads() -> int:
    """As many threads as OpenBLAS starts with: all cores, unless OPENBLAS_NUM_THREADS says fewer.
    Read once, here: inside ``backend.one_blas_thread()`` OpenBLAS says 1."""
    blas = backend._BLAS_THREADS
    return blas[0]() if blas else os.cpu_count() or 1


THREADS = _threads()


def _the_pool() -> ThreadPoolExecutor:
    """The worker threads (THREADS - 1 of them; the calling thread is the first), made on first use."""
    if not _pool:
        _pool.append(ThreadPoolExecutor(max(THREADS - 1, 1), thread_name_prefix="tinyllm-cpu"))
    return _pool[0]


def both(first: Callable[[], Any], second: Callable[[], Any]) -> tuple:
    """``(first(), second())``, run at the same time: ``second`` on a worker thread, ``first`` here
    (both should release the GIL: BLAS products, compiled kernels). An error in either is raised here."""
    job = _the_pool().submit(second)
    try:
        a = first()
    finally:
        b = job.result()
    return a, b


def over_rows(fn: Callable[[slice], Any], n: int, size: int, xp: Any = np,
              block: int = BLOCK, min_size: int = MIN_SIZE) -> None:
    """Call ``fn(rows)`` for slices ``rows`` that together cover ``range(n)`` once, in parallel.

    ``fn`` must only read and write rows ``rows`` of its arrays (axis 0), so
    that calls never touch the same elements. ``size`` is the number of
    elements of the arrays processed. The rows are split into one equal,
    contiguous share per thread, and each share is cut into calls of about
    ``block`` elements (``block=size``: one call per share, for compiled
    kernels that release the GIL); the first share runs in the calling thread.
    CuPy arrays (``xp`` is not NumPy) and arrays under ``min_size`` elements
    get one call, ``fn(slice(0, n))``. An error in a worker is raised here.
    """
    k = min(THREADS, n) if xp.__name__ == "numpy" and size >= min_size else 1
    if k == 1:
        fn(slice(0, n))
        return
    per_call = max(1, n * block // size)                              # rows in one call
    bounds = [n * i // k for i in range(k + 1)]
    pool = _the_pool()

    def run(start: int, stop: int) -> None:
        for a in range(start, stop, per_call):
            fn(slice(a, min(a + per_call, stop)))

    jobs = [pool.submit(run, bounds[i], bounds[i + 1]) for i in range(1, k)]
    try:
        run(bounds[0], bounds[1])
    finally:
        for job in jobs:
            job.result()                                                # waits; re-raises a worker's error


KERNEL_MIN_NS = 400_000  # hand a compiled kernel's rows to other cores from this much work (ns) up


def run_kernel(fn: Callable[[slice], Any], n: int, size: int, ns_per_element: float) -> None:
    """:func:`over_rows` for a compiled kernel: one call per core, each on its share of the rows.

    Waking a sleeping worker thread and waiting for it costs 0.1 to 0.15 ms
    (measured on a 2-core VM), so the rows are shared only when the kernel
    would run longer than :data:`KERNEL_MIN_NS` on one core: ``size`` elements
    at ``ns_per_element`` (each kernel's figure, measured on one core, kept
    beside the kernel).
    """
    work = size * ns_per_element
    over_rows(fn, n, size, np, block=size, min_size=size if work >= KERNEL_MIN_NS else size + 1)
