"""Array backends: NumPy on the CPU, CuPy on the GPU, behind one switch.

This is the ONLY module that imports cupy. Everything else asks for an array
module with :func:`get_array_module` (the ``xp`` idiom: the same code runs on
``numpy`` or ``cupy`` because both expose the same API) and uses the helpers
below for the few things that differ between them: the seeded random
generator, scatter-add, host transfers and device synchronisation.

Select a backend with the environment variable ``TINYLLM_BACKEND=numpy|cupy``
(read at import) or with :func:`set_backend` at run time.
"""
from __future__ import annotations

import math
import os
from types import ModuleType
from typing import Any

import numpy as np

_cupy: ModuleType | None = None  # imported lazily, only when asked for
_backend_name = "numpy"
_xp: ModuleType = np
_default_dtype = np.dtype(np.float32)
_rngs: dict[str, Any] = {}
_seed: int | None = None

CUPY_HINT = (
    "the cupy backend needs CuPy and a CUDA GPU: install the matching extra, "
    "e.g. pip install 'tinyllm[cuda12]' (CUDA 12) or 'tinyllm[cuda13]' (CUDA 13)"
)


class BackendError(RuntimeError):
    """A backend was asked for that cannot be used on this machine."""


def _import_cupy() -> ModuleType:
    global _cupy
    if _cupy is None:
        try:
            import cupy  # noqa: PLC0415  (the one place cupy is imported)
        except Exception as exc:  # ImportError, or a broken CUDA install
            raise BackendError(f"CuPy is not importable ({exc.__class__.__name__}); {CUPY_HINT}") from None
        try:
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise BackendError(f"no CUDA GPU is visible; {CUPY_HINT}")
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"no usable CUDA GPU ({exc}); {CUPY_HINT}") from None
        _cupy = cupy
    return _cupy


def set_backend(name: str, device: int | None = None) -> None:
    """Make ``name`` ("numpy" or "cupy") the backend new tensors are created on.

    ``device`` (CuPy only) selects the GPU by number and makes it current, as
    each process of a data-parallel run on several GPUs does with its own.
    """
    global _backend_name, _xp
    name = name.lower()
    if device is not None and (isinstance(device, bool) or not isinstance(device, int) or device < 0):
        raise BackendError(f"device must be a GPU number >= 0, got {device!r}")
    if name == "numpy":
        if device is not None:
            raise BackendError("device selects a GPU: it needs the 'cupy' backend")
        _xp = np
    elif name == "cupy":
        cupy = _import_cupy()
        if device is not None:
            count = cupy.cuda.runtime.getDeviceCount()
            if device >= count:
                raise BackendError(f"device {device} does not exist: this machine has {count} GPU(s)")
            cupy.cuda.Device(device).use()
        _xp = cupy
    else:
        raise BackendError(f"unknown backend {name!r}: choose 'numpy' or 'cupy'")
    _backend_name = name


def gpu_count() -> int:
    """The number of GPUs CuPy sees (0 without CuPy or without a GPU)."""
    try:
        return int(_import_cupy().cuda.runtime.getDeviceCount())
    except Exception:  # no CuPy, no driver: no GPU to count
        return 0


def get_backend() -> str:
    """The name of the active backend: "numpy" or "cupy"."""
    return _backend_name


def xp() -> ModuleType:
    """The array module of the active backend (``numpy`` or ``cupy``)."""
    return _xp


def get_array_module(*arrays: Any) -> ModuleType:
    """The array module that owns ``arrays`` (cupy if any is a cupy array)."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_cupy_array(a: Any) -> bool:
    return _cupy is not None and isinstance(a, _cupy.ndarray)


# ----------------------------------------------------------------------------- dtypes

def set_default_dtype(dtype: Any) -> None:
    """Set the floating dtype of new tensors (float32 by default, or float64)."""
    global _default_dtype
    d = np.dtype(dtype)
    if d not in (np.float16, np.float32, np.float64):
        raise ValueError(f"default dtype must be a floating type, got {d}")
    _default_dtype = d


def get_default_dtype() -> np.dtype:
    return _default_dtype


# ----------------------------------------------------------------------------- transfers

def to_numpy(a: Any) -> np.ndarray:
    """A NumPy copy (or view, on the CPU) of a backend array."""
    if is_cupy_array(a):
        return a.get()
    return np.asarray(a)


def asarray(data: Any, dtype: Any = None, backend: str | None = None) -> Any:
    """``data`` as an array on ``backend`` (the active one by default)."""
    mod = _import_cupy() if (backend or _backend_name) == "cupy" else np
    if mod is np and is_cupy_array(data):
        data = data.get()
    return mod.asarray(data, dtype=dtype)


def synchronize() -> None:
    """Wait for queued GPU work to finish (a no-op on the CPU). Use before timing."""
    if _backend_name == "cupy":
        _import_cupy().cuda.get_current_stream().synchronize()


# ----------------------------------------------------------------------------- input checks without waiting

_deferring = False
_pending_checks: list = []


def check(bad: Any, message: str, exc: type = IndexError) -> None:
    """Raise ``exc(message)`` if any entry of the boolean array ``bad`` is True.

    On the CPU, and on the GPU by default, the check is immediate. Asking the
    GPU whether an index is out of range makes the CPU wait until every kernel
    queued before it has run, so inside :func:`deferred_checks` (the training
    loop) a check on a CuPy array is only queued, and raised by
    :func:`raise_deferred` at the loop's next synchronisation point.
    """
    if _deferring and is_cupy_array(bad):
        _pending_checks.append((bad.any(), message, exc))
        if len(_pending_checks) >= 1024:  # a loop that never synchronises still gets told
            raise_deferred()
    elif bool(bad.any()):
        raise exc(message)


def raise_deferred() -> None:
    """Raise the first failed check queued by :func:`check` (one transfer for all of them)."""
    if not _pending_checks:
        return
    items = list(_pending_checks)
    _pending_checks.clear()
    flags = _import_cupy().stack([flag for flag, _, _ in items]).get()
    for flag, (_, message, exc) in zip(flags, items):
        if flag:
            raise exc(message)


class deferred_checks:
    """Context manager: queue :func:`check` on GPU arrays instead of waiting for the answer.

    Leaving the block raises any failed check still queued.
    """

    def __enter__(self) -> "deferred_checks":
        global _deferring
        self._outer = _deferring
        _deferring = True
        return self

    def __exit__(self, *exc: Any) -> None:
        global _deferring
        _deferring = self._outer
        if not self._outer and exc[0] is None:
            raise_deferred()
        elif not self._outer:
            _pending_checks.clear()


# ----------------------------------------------------------------------------- randomness

def manual_seed(seed: int) -> None:
    """Seed the random generators of every backend (dropout, init, sampling)."""
    global _seed
    _seed = int(seed)
    _rngs.clear()


def rng(mod: ModuleType | None = None) -> Any:
    """The seeded random generator of array module ``mod`` (the active backend by default).

    NumPy gets a ``numpy.random.Generator`` (PCG64); CuPy a :class:`CounterRNG`.
    Both are re-created from the seed by :func:`manual_seed`.
    """
    mod = mod or _xp
    key = "cupy" if mod is not np else "numpy"
    g = _rngs.get(key)
    if g is None:
        g = np.random.default_rng(_seed) if key == "numpy" else CounterRNG(_seed)
        _rngs[key] = g
    return g


# Value i of the stream at ``offset``: SplitMix64(key + (offset + i) * golden ratio), its top bits
# scaled to [0, 1). CUDA C++ for an elementwise kernel with inputs ``key``, ``offset`` and type T.
SPLITMIX_UNIFORM = """unsigned long long z = key + (offset + (unsigned long long)i) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        T u = sizeof(T) == 4 ? (T)(z >> 40) * (T)5.9604644775390625e-08
                             : (T)(z >> 11) * (T)1.1102230246251565e-16;"""
_uniform_kernel: list = []             # [the ElementwiseKernel], built on first use


class CounterRNG:
    """Uniform random numbers on the GPU from a counter: value i of the stream is hash(key, i).

    The whole state is two integers (the key, from the seed, and how many values
    were drawn), so a checkpoint stores it exactly and a resumed run draws the
    same dropout masks as the uninterrupted one. The hash is SplitMix64's
    finaliser (:data:`SPLITMIX_UNIFORM`); a draw of n values is one kernel.
    """

    def __init__(self, seed: int | None) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
        self.key = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])
        self.counter = 0

    def random(self, size: Any = None, dtype: Any = np.float64) -> Any:
        """Uniform floats in [0, 1) of shape ``size`` (float32 or float64)."""
        shape = () if size is None else (tuple(size) if isinstance(size, (tuple, list)) else (int(size),))
        key, offset = self.reserve(math.prod(shape))
        cp = _import_cupy()
        if not _uniform_kernel:
            _uniform_kernel.append(cp.ElementwiseKernel("uint64 key, uint64 offset", "T out",
                                                        SPLITMIX_UNIFORM + "out = u;", "tinyllm_uniform"))
        out = cp.empty(shape, dtype=np.dtype(dtype))
        return _uniform_kernel[0](cp.uint64(key), cp.uint64(offset % (1 << 64)), out)

    def reserve(self, n: int) -> tuple[int, int]:
        """(key, offset) of the next ``n`` values, which are skipped: for kernels that draw them
        themselves (``kernels.cuda.dropout`` draws the same numbers as ``random`` would)."""
        offset = self.counter
        self.counter += int(n)
        return self.key, offset

    def state(self) -> dict:
        return {"key": self.key, "counter": self.counter}

    def set_state(self, state: dict) -> None:
        self.key, self.counter = int(state["key"]), int(state["counter"])


def get_rng_state() -> dict:
    """The generators' states as plain JSON-able data (for checkpoints)."""
    state = {"seed": _seed, "numpy": rng(np).bit_generator.state}
    if "cupy" in _rngs:
        state["cupy"] = _rngs["cupy"].state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned."""
    manual_seed(state["seed"]) if state.get("seed") is not None else _rngs.clear()
    rng(np).bit_generator.state = state["numpy"]
    if "cupy" in state:
        g = _rngs.get("cupy") or CounterRNG(_seed)
        g.set_state(state["cupy"])
        _rngs["cupy"] = g


# ----------------------------------------------------------------------------- scatter-add

def scatter_add(shape: tuple, index: Any, values: Any) -> Any:
    """``out = zeros(shape); out[index[i]] += values[i]`` along axis 0, duplicates summed.

    Args:
        shape: shape of the result; ``shape[1:] == values.shape[index.ndim:]``.
        index: integer array of row indices into axis 0 of the result (negative
            ones count from the end, as in NumPy indexing).
        values: array of shape ``index.shape + shape[1:]``.

    This is the backward of an embedding lookup / integer indexing. ``np.add.at``
    is exact but slow; on NumPy we reduce with a one-hot matmul when the table
    is small, and otherwise sort the indices and sum each run of equal ones
    (``np.add.reduceat``). CuPy's ``add.at`` is a fast atomic scatter kernel.
    """
    mod = get_array_module(values)
    rows, width = shape[0], math.prod(shape[1:])
    index = index.reshape(-1) % rows  # -1 and rows-1 name the same row: one run after sorting
    n = index.shape[0]
    flat = values.reshape(n, width)
    if mod is not np:
        out = mod.zeros((rows, width), dtype=values.dtype)
        mod.add.at(out, index, flat)  # cupy's add.at is an atomic scatter kernel
        return out.reshape(shape)
    if rows * n <= 4_000_000:
        # One-hot (rows, n) @ (n, width): a single BLAS call, exact sums.
        onehot = np.zeros((rows, n), dtype=values.dtype)
        onehot[index, np.arange(n)] = 1
        return small_matmul(onehot, flat).reshape(shape)
    # Large tables: sort the indices, then sum each run of equal indices.
    order = np.argsort(index, kind="stable")
    sidx = index[order]
    starts = np.flatnonzero(np.r_[True, sidx[1:] != sidx[:-1]])
    sums = np.add.reduceat(flat[order], starts, axis=0)
    out = np.zeros((rows, width), dtype=values.dtype)
    out[sidx[starts]] = sums
    return out.reshape(shape)


if os.environ.get("TINYLLM_BACKEND"):
    set_backend(os.environ["TINYLLM_BACKEND"])


# ----------------------------------------------------------------------------- sums over rows

def column_sum(a: Any) -> Any:
    """Sum over every axis but the last, (..., C) -> (C,): a bias or LayerNorm gradient.

    On the GPU as ``ones(N) @ a``, one matrix-vector product: cuBLAS reads the
    (N, C) array once, coalesced, where a reduction along axis 0
    (``a.sum(axis=0)``) took 0.35 ms for a (16384, 384) gradient, 30x longer,
    and ran 38 times a step. On the CPU, ``a.sum(axis=0)``.
    """
    c = a.shape[-1]
    a2 = a.reshape(-1, c)
    if not is_cupy_array(a2) or a2.dtype.char not in "fd":
        return a2.sum(axis=0)
    key = (a2.shape[0], a2.dtype.char)
    ones = _ones.get(key)
    if ones is None:
        if len(_ones) > 64:
            _ones.clear()
        ones = _ones[key] = _cupy.ones(a2.shape[0], dtype=a2.dtype)
    return ones @ a2


_ones: dict = {}                        # (n, dtype) -> ones(n) on the GPU, for column_sum


# ----------------------------------------------------------------------------- BLAS threads for small products

def _openblas_thread_setters() -> tuple[Any, Any] | None:
    """(get, set) of the thread count of the OpenBLAS bundled with NumPy, or None if there is none."""
    import ctypes  # noqa: PLC0415  (only when a small matmul first asks)
    import glob  # noqa: PLC0415
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", ""):
                get, put = f"{prefix}get_num_threads{suffix}", f"{prefix}set_num_threads{suffix}"
                if hasattr(lib, get) and hasattr(lib, put):
                    return getattr(lib, get), getattr(lib, put)
    return None


_BLAS_THREADS = _openblas_thread_setters()


class one_blas_thread:
    """Context manager: NumPy's OpenBLAS runs on ONE thread inside the block (see :func:`small_matmul`).

    Products inside may then run in several of our own threads at once
    (``kernels.cpu.threads.over_rows``), one core each. Enter it from one thread
    only: the thread count is a global setting of the library.
    """

    def __enter__(self) -> "one_blas_thread":
        self.n = _BLAS_THREADS[0]() if _BLAS_THREADS else 1
        if self.n != 1:
            _BLAS_THREADS[1](1)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.n != 1:
            _BLAS_THREADS[1](self.n)


def small_matmul(a: Any, b: Any) -> Any:
    """``a @ b`` for products of small matrices (attention's per-head (T, hs) x (hs, T)),
    with NumPy's OpenBLAS on ONE thread.

    Splitting a product of a few MFLOP over threads costs more in hand-offs
    than it saves, and when another process keeps the other cores busy the
    waiting turns catastrophic: a stack of 96 (64 x 64) x (64 x 256) products
    measured 4 ms on one thread and 1.4 s on two under load. Large products
    (the Linear layers) keep every thread. CuPy arrays, or a NumPy without
    OpenBLAS, just multiply.
    """
    if not isinstance(a, np.ndarray):
        return a @ b
    with one_blas_thread():
        return a @ b
