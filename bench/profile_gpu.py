"""Where a GPU training step's time goes: CPU time to queue a step, GPU time, and the kernels.

    python bench/profile_gpu.py [--config gpu] [--steps 2] [--rows 30]

Needs CuPy, a GPU and PyTorch: ``torch.profiler`` reads CUPTI, which records
every kernel of the process, CuPy's included. The table lists kernels by total
GPU time over ``--steps`` steps of ``bench/train.py``'s tinyllm step.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from train import CONFIGS, batches, build_tinyllm  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="gpu")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--rows", type=int, default=30)
    args = ap.parse_args()
    import tinyllm
    from torch.profiler import ProfilerActivity, profile
    tinyllm.set_backend("cupy")
    cfg = CONFIGS[args.config]
    _, step, _ = build_tinyllm(cfg)
    data = [(common.tinyllm_asarray(x), common.tinyllm_asarray(y)) for x, y in batches(cfg, 3)]
    for x, y in data:                                   # warm up: kernels compiled, memory pool filled
        step(x, y).item()
    for x, y in data:
        t0 = time.perf_counter()
        step(x, y)
        t1 = time.perf_counter()
        tinyllm.synchronize()
        t2 = time.perf_counter()
        print(f"step: queued by the CPU in {1e3 * (t1 - t0):.1f} ms, done on the GPU after {1e3 * (t2 - t0):.1f} ms")
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(args.steps):
            step(*data[i % len(data)])
        tinyllm.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
