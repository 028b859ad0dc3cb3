"""Generation throughput with the KV cache: tinyllm vs the PyTorch reference, batch 1.

    python bench/generate.py [--tokens 200] [--reps 5]

Both models hold the same weights and decode greedily, each with a KV cache
(re-prefilled when the context reaches block_size), alternating A/B; medians
of tokens/s are compared. Also reports how many generated tokens agree.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import CONFIGS, build_tinyllm, build_torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=list(CONFIGS), default="nano")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    import torch
    import tinyllm
    from tinyllm.decoding import generate
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cfg = CONFIGS[args.config]
    model, _, _ = build_tinyllm(cfg)
    state = {k: tinyllm.backend.to_numpy(v) for k, v in model.state_dict().items()}
    ref, _, _ = build_torch(cfg, state)
    prompt = np.random.default_rng(0).integers(0, cfg["vocab_size"], (1, 8))
    times: dict = {"tinyllm": [], "torch": []}
    for _ in range(args.reps + 1):
        t = time.perf_counter()
        ours = generate(model, prompt, args.tokens, greedy=True)
        times["tinyllm"].append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs = ref.generate(torch.from_numpy(prompt), args.tokens).numpy()
        times["torch"].append(time.perf_counter() - t)
    tps = {k: args.tokens / float(np.median(v[1:])) for k, v in times.items()}
    agree = int((ours[0, 8:] == theirs[0, 8:]).sum())
    print(f"config {args.config}, {args.tokens} new tokens, batch 1, KV cache")
    print(f"tinyllm {tps['tinyllm']:.0f} tok/s   torch {tps['torch']:.0f} tok/s   "
          f"ratio {tps['tinyllm'] / tps['torch']:.2f}   greedy tokens agreeing: {agree}/{args.tokens}")


if __name__ == "__main__":
    main()
