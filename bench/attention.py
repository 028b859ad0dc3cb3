"""The CPU attention kernel alone: forward + backward of causal self-attention at a model's shape.

Times ``tinyllm.kernels.cpu.attention.Attention`` as a training step calls it
(``functional/self_attention.py``): Q, K, V strided views of one packed
(B, T, 3C) array, Y written into the merged heads, dQ | dK | dV into one
packed gradient. Reports, per shape, the median over repeats of the CPU time
(``time.process_time``, all threads) and the wall time of one forward +
backward, and GFLOP/s counted as training's MFU counts attention
(12 * T * C per token and layer: every score, causal or not).

``--baseline FILE`` loads another version of the kernel module (for example
``git show main:tinyllm/kernels/cpu/attention.py > /tmp/old.py``) and
interleaves the two, baseline and current, repeat by repeat, so a busy
machine slows both alike; the last column is the ratio of the medians.

    python bench/attention.py [--config large nano] [--repeats 15] [--baseline FILE]
    OPENBLAS_NUM_THREADS=1 python bench/attention.py ...      # one core: steadier under load
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import tinyllm  # noqa: E402,F401  (sets the BLAS environment before NumPy's first product)

CONFIGS = {  # (batch, heads, context, head size): bench/train.py's configs
    "nano": (12, 4, 64, 32),
    "large": (16, 6, 256, 64),
}


def load(path: str | None) -> Any:
    """The kernel module: the current one, or the file ``path`` loaded as a sibling of it."""
    if path is None:
        return importlib.import_module("tinyllm.kernels.cpu.attention")
    spec = importlib.util.spec_from_file_location("tinyllm.kernels.cpu._attention_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                         # Numba's cache looks compiled loops up by module
    spec.loader.exec_module(module)
    return module


def step(module: Any, qkv: np.ndarray, gy: np.ndarray, nh: int) -> None:
    """One forward + backward, laid out as ``SelfAttentionFunction`` lays it out."""
    b, t, c3 = qkv.shape
    hs = c3 // (3 * nh)
    q, k, v = qkv.reshape(b, t, 3, nh, hs).transpose(2, 0, 3, 1, 4)         # each (B, nh, T, hs)
    impl = module.Attention()
    heads = np.empty((b, t, nh, hs), dtype=np.float32).transpose(0, 2, 1, 3)
    impl.forward(q, k, v, 1.0 / np.sqrt(hs), True, None, 0.0, out=heads)
    parts = tuple(np.empty((b, t, 3, nh, hs), dtype=np.float32).transpose(2, 0, 3, 1, 4))
    impl.backward(gy.reshape(b, t, nh, hs).transpose(0, 2, 1, 3), (True, True, True), out=parts)


def timed(*args: Any) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one ``step(*args)``."""
    c, w = time.process_time(), time.perf_counter()
    step(*args)
    return time.process_time() - c, time.perf_counter() - w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", nargs="+", choices=sorted(CONFIGS), default=["large", "nano"])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--baseline", help="another version of kernels/cpu/attention.py to interleave with")
    args = ap.parse_args()
    contenders = [("current", load(None))] + ([("baseline", load(args.baseline))] if args.baseline else [])
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}")
    for name in args.config:
        b, nh, t, hs = CONFIGS[name]
        rng = np.random.default_rng(0)
        qkv = rng.standard_normal((b, t, 3 * nh * hs), dtype=np.float32)
        gy = rng.standard_normal((b, t, nh * hs), dtype=np.float32)
        flop = 3 * 4 * b * nh * t * t * hs                      # forward 2 products, backward 4, 2 T^2 hs each
        times: dict = {c: [] for c, _ in contenders}
        for _ in range(2):                                      # warm-up: compile, page in
            for _c, m in contenders:
                step(m, qkv, gy, nh)
        for _ in range(args.repeats):
            for c, m in contenders:
                times[c].append(timed(m, qkv, gy, nh))
        print(f"{name} (B={b}, heads={nh}, T={t}, hs={hs}), forward + backward, median of {args.repeats}:")
        medians = {}
        for c, _ in contenders:
            cpu = statistics.median(x[0] for x in times[c])
            wall = statistics.median(x[1] for x in times[c])
            medians[c] = (cpu, wall)
            print(f"  {c:9s} cpu {cpu * 1e3:7.2f} ms  wall {wall * 1e3:7.2f} ms  "
                  f"{flop / wall / 1e9:6.1f} GFLOP/s wall  {flop / cpu / 1e9:6.1f} GFLOP/s per cpu-second")
        if args.baseline:
            (c0, w0), (c1, w1) = medians["baseline"], medians["current"]
            print(f"  baseline / current: cpu {c0 / c1:.2f}x  wall {w0 / w1:.2f}x")


if __name__ == "__main__":
    main()
