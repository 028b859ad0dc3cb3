"""Does ``import tinyllm`` keep OpenBLAS's idle threads from spinning, whatever the import order?

    python bench/blas_spin.py

Importing tinyllm sets ``OPENBLAS_THREAD_TIMEOUT=4`` so that OpenBLAS's
workers sleep soon after a matmul instead of spinning for 2^28 cycles on the
core the engine's own threads need. OpenBLAS reads the variable once, when
NumPy loads it. This runs, each in a fresh process with the user's
environment: tinyllm imported first; NumPy imported first, then tinyllm; and
NumPy alone. Each process times 20 products of 384x1536 by 1536x384 with a
20 ms sleep after each and reports the CPU seconds the process used per
second of sleep: near 0 when the workers sleep, near (threads - 1) when they
spin through the sleep.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ORDERS = {"tinyllm first": "tinyllm", "numpy first, then tinyllm": "numpy-tinyllm", "numpy alone": "numpy"}


def probe(order: str, products: int = 20, nap: float = 0.02) -> None:
    if order == "tinyllm":
        harness.import_tinyllm(False)
    elif order == "numpy-tinyllm":
        harness.import_tinyllm(True)
    import numpy as np  # noqa: PLC0415
    rng = np.random.default_rng(0)
    a = rng.standard_normal((384, 1536), dtype=np.float32)
    b = rng.standard_normal((1536, 384), dtype=np.float32)
    a @ b
    slept = cpu_in_sleep = 0.0
    for _ in range(products):
        a @ b
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(nap)
        cpu_in_sleep += time.process_time() - c0
        slept += time.perf_counter() - t0
    harness.report({"order": order, "cpu_per_sleep_s": cpu_in_sleep / slept,
                    "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT")})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probe", choices=list(ORDERS.values()), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        probe(args.probe)
        return
    print(f"user's OPENBLAS_THREAD_TIMEOUT: {os.environ.get('OPENBLAS_THREAD_TIMEOUT', '(unset)')}")
    for label, order in ORDERS.items():
        r = harness.run_child([__file__, "--probe", order])
        print(f"  {label:28} CPU s per s of sleep after a matmul: {r['cpu_per_sleep_s']:.2f}   "
              f"OPENBLAS_THREAD_TIMEOUT after the imports: {r['OPENBLAS_THREAD_TIMEOUT']}")


if __name__ == "__main__":
    main()
