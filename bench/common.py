"""Small timing helpers shared by the benchmarks.

- :func:`timeit`   median seconds per call of one function
- :func:`compare`  median seconds per call of several functions, timed in
                   interleaved rounds (A, B, C, then B, C, A, ...) so that drifts
                   in clock speed or machine load hit every contender alike
- :func:`print_table`, :func:`torch_available`, :func:`blas_threads`,
  :func:`match_torch_threads`

Report ratios measured in ONE run, never numbers from separate runs.

Importing this module sets ``OMP_WAIT_POLICY=PASSIVE`` (unless already set),
so it must come before ``import torch``: otherwise PyTorch's OpenMP threads
keep spinning after every call and, on a machine with few cores, slow down
whatever is timed next (and PyTorch itself). For the same reason it sets
``OPENBLAS_THREAD_TIMEOUT=4`` (see ``tinyllm/__init__.py``), so it must also
come before ``import numpy``.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import statistics
import time
from typing import Callable, Sequence

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when torch loads OpenMP
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as importing tinyllm does, for a script that loads NumPy first


STATS = {"median": statistics.median, "min": min}


def timeit(fn: Callable[[], object], repeat: int = 7, number: int = 100, warmup: int = 3,
           stat: str = "median") -> float:
    """Median (or min) over ``repeat`` rounds of the mean seconds per call of ``fn``
    (``number`` calls a round)."""
    return compare({"fn": fn}, repeat=repeat, number=number, warmup=warmup, stat=stat)["fn"]


def compare(fns: dict[str, Callable[[], object]], repeat: int = 7, number: int = 100,
            warmup: int = 3, stat: str = "median") -> dict[str, float]:
    """Median (or, with ``stat="min"``, least) seconds per call of each function, timed in
    interleaved rounds. The minimum is the steadier estimate on a machine busy with other work."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list] = {name: [] for name in fns}
    order = list(fns.items())
    for r in range(repeat):
        # Rotate who goes first, so each contender follows each other equally often: threads
        # that keep spinning after a multithreaded call (OpenMP, OpenBLAS) slow whoever comes next.
        for name, fn in order[r % len(order):] + order[:r % len(order)]:
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / number)
    return {name: STATS[stat](s) for name, s in samples.items()}


def print_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    """Print rows as an aligned plain-text table (floats with 3 significant digits)."""
    cells = [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def blas_threads() -> int:
    """Threads NumPy's BLAS uses (threadpoolctl if installed, else OpenBLAS asked directly)."""
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415
        counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
        if counts:
            return counts[0]
    except ImportError:
        pass
    import numpy as np  # noqa: PLC0415
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                     "openblas_get_num_threads"):
            if hasattr(lib, name):
                return int(getattr(lib, name)())
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1


def match_torch_threads() -> int:
    """Give torch as many intra-op threads as NumPy's BLAS has; returns that number."""
    n = blas_threads()
    import torch  # noqa: PLC0415
    torch.set_num_threads(n)
    return n
