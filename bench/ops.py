"""Per-op cost of the engine, side by side with references, in one run.

1. Overhead: forward (+ backward) of add, mul, matmul, sum and softmax on tiny
   tensors, where the time is almost all Python bookkeeping, against PyTorch
   eager on the CPU. Goal: within 1.5x of PyTorch.
2. Throughput: the same ops forward + backward on large tensors against the
   hand-written NumPy that computes the same values and accumulates the same
   gradients (and against PyTorch). Goal: within 1.1x of raw NumPy.

Timings are medians of interleaved rounds (tinyllm, reference, tinyllm, ...);
``--stat min`` takes the fastest round instead, steadier when the machine is
busy. PyTorch gets as many threads as NumPy's BLAS, and passive OpenMP
waiting (see ``bench/common.py``).

    python bench/ops.py [--quick] [--stat median|min]
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from common import blas_threads, compare, match_torch_threads, print_table, torch_available  # noqa: E402

import tinyllm  # noqa: E402

OPS = ["add", "mul", "matmul", "sum", "softmax"]


def autograd_step(op: str, a: Any, b: Any, g: Any, backward: bool) -> Callable[[], None]:
    """One forward (and backward) of ``op``; runs unchanged on tinyllm and torch tensors."""
    forward = {
        "add": lambda: a + b,
        "mul": lambda: a * b,
        "matmul": lambda: a @ b,
        "sum": lambda: a.sum(),
        "softmax": lambda: a.softmax(-1),
    }[op]
    if not backward:
        return forward
    if op == "sum":
        return lambda: forward().backward()
    return lambda: forward().backward(g)


def numpy_step(op: str, a: np.ndarray, b: np.ndarray, g: np.ndarray) -> Callable[[], None]:
    """The same forward + backward by hand in NumPy, accumulating into gradient buffers."""
    ga, gb = np.zeros_like(a), np.zeros_like(b)

    def add():
        a + b
        ga.__iadd__(g)
        gb.__iadd__(g)

    def mul():
        a * b
        ga.__iadd__(g * b)
        gb.__iadd__(g * a)

    def matmul():
        a @ b
        ga.__iadd__(g @ b.T)
        gb.__iadd__(a.T @ g)

    def sum_():
        a.sum()
        ga.__iadd__(1.0)

    def softmax():
        y = a - a.max(axis=-1, keepdims=True)
        np.exp(y, out=y)
        y /= y.sum(axis=-1, keepdims=True)
        ga.__iadd__(y * (g - (g * y).sum(axis=-1, keepdims=True)))

    return {"add": add, "mul": mul, "matmul": matmul, "sum": sum_, "softmax": softmax}[op]


def inputs(op: str, n: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    g = rng.standard_normal((n, n)).astype(np.float32)
    return a, b, g


def contenders(op: str, n: int, backward: bool, with_numpy: bool) -> dict:
    a, b, g = inputs(op, n)
    fns = {"tinyllm": autograd_step(op, tinyllm.tensor(a, requires_grad=True),
                                    tinyllm.tensor(b, requires_grad=True), g, backward)}
    if with_numpy:
        fns["numpy"] = numpy_step(op, a, b, g)
    if torch_available():
        import torch  # noqa: PLC0415
        fns["torch"] = autograd_step(op, torch.tensor(a, requires_grad=True),
                                     torch.tensor(b, requires_grad=True), torch.tensor(g), backward)
    return fns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--stat", choices=["median", "min"], default="median",
                        help="statistic over the rounds (min is steadier on a busy machine)")
    args = parser.parse_args()
    repeat = 5 if args.quick else 31     # many short interleaved rounds: robust medians on a busy machine
    have_torch = torch_available()
    threads = match_torch_threads() if have_torch else blas_threads()
    print(f"{args.stat} of interleaved rounds; numpy {np.__version__}, BLAS threads {threads}"
          + (f", torch {__import__('torch').__version__} threads {threads}" if have_torch else ", no torch"))

    print("\nOverhead on tiny (8, 8) float32 tensors, microseconds per call")
    rows = []
    for op in OPS:
        for backward in (False, True):
            fns = contenders(op, 8, backward, with_numpy=False)
            t = compare(fns, repeat=repeat, number=100, stat=args.stat)
            row = [op, "fwd+bwd" if backward else "fwd", t["tinyllm"] * 1e6]
            row += [t["torch"] * 1e6, f"{t['tinyllm'] / t['torch']:.2f}x"] if have_torch else ["-", "-"]
            rows.append(row)
    print_table(rows, ["op", "pass", "tinyllm us", "torch us", "tinyllm/torch"])

    print("\nThroughput on large float32 tensors, forward + backward, milliseconds per call")
    rows = []
    for op in OPS:
        n = 1024 if op == "matmul" else 2048
        fns = contenders(op, n, True, with_numpy=True)
        t = compare(fns, repeat=max(repeat // 2, 3), number=1, stat=args.stat)
        row = [op, f"({n}, {n})", t["tinyllm"] * 1e3, t["numpy"] * 1e3, f"{t['tinyllm'] / t['numpy']:.2f}x"]
        row += [t["torch"] * 1e3, f"{t['tinyllm'] / t['torch']:.2f}x"] if have_torch else ["-", "-"]
        rows.append(row)
    print_table(rows, ["op", "shape", "tinyllm ms", "numpy ms", "tinyllm/numpy", "torch ms", "tinyllm/torch"])


if __name__ == "__main__":
    main()
