"""Does ``import tinyllm`` keep OpenBLAS's idle threads from spinning, whatever the import order?

    python bench/blas_spin.py

Importing tinyllm sets ``OPENBLAS_THREAD_TIMEOUT=4`` so that OpenBLAS's
workers sleep soon after a matmul instead of spinning for 2^28 cycles on the
core the engine's own threads need. OpenBLAS reads the variable once, when
NumPy loads it. This runs, each in a fresh process with the user's
environment: tinyllm imported first; NumPy imported first, then tinyllm;
NumPy alone; and NumPy first, then a restart of OpenBLAS's threads with the
variable set (:func:`restart_openblas_threads`, a remedy for the second case). Each process times 20 products of 384x1536 by 1536x384 with a
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

ORDERS = {"tinyllm first": "tinyllm", "numpy first, then tinyllm": "numpy-tinyllm", "numpy alone": "numpy",
          "numpy first, then restart": "numpy-restart"}


def restart_openblas_threads(timeout: str = "4") -> bool:
    """With NumPy (and so OpenBLAS) loaded already: set OPENBLAS_THREAD_TIMEOUT, have OpenBLAS read
    its variables again (``openblas_read_env``) and stop its worker threads
    (``blas_thread_shutdown_``); the next BLAS call starts them again with the new timeout.
    Both calls are needed (either alone changes nothing). Must not run while a BLAS call is in
    flight in another thread. Returns False if the library does not export them."""
    import common  # noqa: PLC0415
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = timeout
    done = False
    for lib in common.openblas_libraries():
        if hasattr(lib, "openblas_read_env") and hasattr(lib, "blas_thread_shutdown_"):
            lib.openblas_read_env()
            lib.blas_thread_shutdown_()
            done = True
    return done


def probe(order: str, products: int = 20, nap: float = 0.02) -> None:
    if order == "tinyllm":
        harness.import_tinyllm(False)
    elif order == "numpy-tinyllm":
        harness.import_tinyllm(True)
    import numpy as np  # noqa: PLC0415
    rng = np.random.default_rng(0)
    a = rng.standard_normal((384, 1536), dtype=np.float32)
    b = rng.standard_normal((1536, 384), dtype=np.float32)
    ref = a @ b
    if order == "numpy-restart" and not restart_openblas_threads():
        harness.report({"order": order, "cpu_per_sleep_s": float("nan"), "OPENBLAS_THREAD_TIMEOUT": "no symbols"})
        return
    if not np.allclose(a @ b, ref):
        raise RuntimeError("the product changed after the restart")
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
