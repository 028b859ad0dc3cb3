"""Small timing helpers shared by the benchmarks.

- :func:`timeit`   median seconds per call of one function
- :func:`compare`  median seconds per call of several functions, timed in
                   interleaved rounds (A, B, C, then B, C, A, ...) so that drifts
                   in clock speed or machine load hit every contender alike
- :func:`print_table`, :func:`torch_available`, :func:`blas_threads`,
  :func:`match_torch_threads`

- the tinyllm internals the benchmarks touch, all of them here (see "Internals")

These in-process helpers are profiling aids: two engines sharing one process
share its threads, allocator and environment, so the comparison between them
is made by ``bench/harness.py``, each engine in a fresh process of its own.

Importing this module changes nothing in the environment: every variable a
benchmark's processes see is the user's own.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import statistics
import time
from typing import Callable, Sequence


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
    for lib in openblas_libraries():
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                     "openblas_get_num_threads"):
            if hasattr(lib, name):
                return int(getattr(lib, name)())
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1


def openblas_libraries() -> list:
    """The OpenBLAS libraries bundled with NumPy (loads NumPy), opened with ctypes."""
    import numpy as np  # noqa: PLC0415
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    return [ctypes.CDLL(path) for path in sorted(glob.glob(os.path.join(libdir, "*openblas*")))]


def match_torch_threads() -> int:
    """Give torch as many intra-op threads as NumPy's BLAS has; returns that number."""
    n = blas_threads()
    import torch  # noqa: PLC0415
    torch.set_num_threads(n)
    return n


# ----------------------------------------------------------------------------- internals
# Every name the benchmarks take from inside tinyllm (beyond tinyllm.models, tinyllm.optim.AdamW,
# tinyllm.no_grad and Tensor.backward) comes through here, so a refactoring of the engine is
# adapted in this one place.

def transformer_flops_per_token(non_embedding_params: int, n_layer: int, n_head: int, n_embd: int,
                                seq_len: int) -> int:
    """Training FLOPs per token of a Transformer, forward and backward (PaLM, appendix B):
    6 N + 12 L H Q T, N the non-embedding parameters, Q = n_embd / n_head the head size."""
    return 6 * non_embedding_params + 12 * n_layer * n_head * (n_embd // n_head) * seq_len


def tinyllm_adamw(model, lr: float, weight_decay: float, betas: tuple) -> object:
    """``tinyllm.optim.AdamW`` with nanoGPT's two groups: weights with ndim >= 2 decay, the rest not
    (the same groups as the PyTorch twins' ``configure_optimizer``)."""
    from tinyllm.optim import AdamW  # noqa: PLC0415
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, weight_decay=weight_decay)


def tinyllm_clip(opt, model, max_norm: float) -> None:
    """Clip the global gradient norm as the training loop does: the optimizer's own method over
    its flat buffers when it has one (without waiting for a GPU), else ``tinyllm.optim.clip_grad_norm_``."""
    if hasattr(opt, "clip_grad_norm_"):
        opt.clip_grad_norm_(max_norm, sync=False)
    else:
        from tinyllm.optim import clip_grad_norm_  # noqa: PLC0415
        clip_grad_norm_(model.parameters(), max_norm)


def tinyllm_to_numpy(arr) -> object:
    """A backend array (NumPy or CuPy) as a NumPy array."""
    from tinyllm import backend  # noqa: PLC0415
    return backend.to_numpy(arr)


def tinyllm_asarray(arr) -> object:
    """A NumPy array on the active backend's device."""
    from tinyllm import backend  # noqa: PLC0415
    return backend.asarray(arr)


def tinyllm_op_classes() -> list[type]:
    """Every differentiable op class the engine defines (one ``Function`` subclass each)."""
    from tinyllm.tensor import OP_REGISTRY  # noqa: PLC0415
    return sorted(set(OP_REGISTRY.values()), key=lambda c: c.__name__)


def tinyllm_function_base() -> type:
    """The base class of every autograd node (``Function.apply`` records one node)."""
    from tinyllm import Function  # noqa: PLC0415
    return Function


def tinyllm_product_impls() -> dict[str, type | None]:
    """The implementation classes whose methods make a training step's matrix products
    (``bench/floor.py`` watches them): the Linear formula and CPU kernel, the CPU attention kernel
    (the kernels None without Numba), the attention formula."""
    from tinyllm.functional.attention import AttentionReference  # noqa: PLC0415
    from tinyllm.functional.linear import LinearReference  # noqa: PLC0415
    try:
        from tinyllm.kernels.cpu.attention import Attention  # noqa: PLC0415
        from tinyllm.kernels.cpu.linear import Linear  # noqa: PLC0415
    except ImportError:
        Attention = Linear = None  # noqa: N806
    return {"linear": LinearReference, "linear_kernel": Linear, "attention_kernel": Attention,
            "attention_reference": AttentionReference}


def tinyllm_linear_backward_products():
    """The CPU Linear kernel's ``backward_products(g2, w, x2, needs_x, needs_w)`` (its dx and dW, at once
    on two cores), or None without Numba."""
    try:
        from tinyllm.kernels.cpu.linear import backward_products  # noqa: PLC0415
    except ImportError:
        return None
    return backward_products


def tinyllm_row_threads() -> tuple:
    """``(backend.one_blas_thread, kernels.cpu.threads.over_rows)``: how the CPU attention kernel runs
    its products, one BLAS thread per core on blocks of rows."""
    from tinyllm.backend import one_blas_thread  # noqa: PLC0415
    from tinyllm.kernels.cpu.threads import over_rows  # noqa: PLC0415
    return one_blas_thread, over_rows


def tinyllm_linear_overlap(on: bool) -> None:
    """Whether the CPU Linear kernel runs backward's two products at once (``kernels.cpu.linear.OVERLAP``)."""
    from tinyllm.kernels.cpu import linear  # noqa: PLC0415
    linear.OVERLAP = on
