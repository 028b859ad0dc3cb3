"""Convergence: tinyllm and the PyTorch reference trained with nanoGPT's CPU recipe.

    python bench/converge.py [--iters 2000] [--data PATH] [--json PATH]    # about 3 minutes on 2 quiet cores
    python bench/converge.py --quick                                       # 300 iterations: a check, not the figure

nanoGPT's CPU recipe (``config/train_shakespeare_char.py`` with its README's
CPU overrides): char-level Tiny Shakespeare (90/10 split), batch 12, block 64,
4 layers, 4 heads, 128 wide, dropout 0; AdamW (betas 0.9/0.99, weight decay
0.1 on the matrices only), lr 1e-3 with 100 warmup iterations and cosine decay
to 1e-4 over all iterations, gradient clipping at 1.0. Both models start from
the same weights and see the same batches in the same order, step for step in
one process (this measures convergence, not speed). Reports the validation
loss of each over the same 200 batches (nanoGPT reports 1.88 at 2000
iterations) and whether they are within 0.03 of each other.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from train import build_tinyllm, build_torch  # noqa: E402

HERE = Path(__file__).resolve().parent
TOLERANCE = 0.03


def find_data() -> Path | None:
    """Tiny Shakespeare: in a ``shared/data`` folder beside the checkout or above it, else in tinyllm's cache."""
    for folder in HERE.parents:
        path = folder / "shared" / "data" / "tinyshakespeare.txt"
        if path.exists():
            return path
    from tinyllm.data.corpora import SHAKESPEARE_FILE, cache_dir  # noqa: PLC0415  (after the path search)
    path = cache_dir() / SHAKESPEARE_FILE
    return path if path.exists() else None


def lr_at(it: int, iters: int, warmup: int = 100, max_lr: float = 1e-3, min_lr: float = 1e-4) -> float:
    if it < warmup:
        return max_lr * (it + 1) / (warmup + 1)
    ratio = min(1.0, (it - warmup) / max(1, iters - warmup))
    return min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--eval-batches", type=int, default=200)
    ap.add_argument("--data", type=Path, default=None, help="Tiny Shakespeare (input.txt of char-rnn)")
    ap.add_argument("--quick", action="store_true", help="300 iterations, 50 eval batches: a check, not the figure")
    ap.add_argument("--json", type=Path, default=None, help="also write the losses to this file")
    args = ap.parse_args()
    if args.quick:
        args.iters, args.eval_batches = 300, 50
    import tinyllm
    import torch
    path = args.data or find_data()
    if path is None or not path.exists():
        sys.exit("error: Tiny Shakespeare not found (no shared/data/tinyshakespeare.txt above the checkout, "
                 "nothing in tinyllm's cache: pass --data, or fetch it once with "
                 "python -c 'from tinyllm.data.corpora import fetch_shakespeare; fetch_shakespeare()')")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    text = path.read_text(encoding="utf-8")
    chars = sorted(set(text))
    lut = {c: i for i, c in enumerate(chars)}
    data = np.fromiter((lut[c] for c in text), dtype=np.int64, count=len(text))
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]
    cfg = dict(vocab_size=len(chars), block_size=64, n_layer=4, n_head=4, n_embd=128, batch_size=12)
    B, T = cfg["batch_size"], cfg["block_size"]
    model, tl_step, tl_opt = build_tinyllm(cfg)
    state = {k: common.tinyllm_to_numpy(v) for k, v in model.state_dict().items()}
    ref, th_step, th_opt = build_torch(cfg, state)
    rng = np.random.default_rng(1337)
    offsets = np.arange(T + 1)

    def batch(src: np.ndarray) -> tuple:
        w = src[rng.integers(0, len(src) - T - 1, B)[:, None] + offsets]
        return np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:])  # torch's .view needs contiguous

    t0 = time.perf_counter()
    for it in range(args.iters):
        lr = lr_at(it, args.iters)
        x, y = batch(train)
        tl_opt.set_lr(lr)
        for g in th_opt.param_groups:
            g["lr"] = lr
        l1 = tl_step(x, y).item()
        l2 = th_step(torch.from_numpy(x), torch.from_numpy(y)).item()
        if it % 200 == 0 or it == args.iters - 1:
            print(f"iter {it:5d}  lr {lr:.2e}  loss tinyllm {l1:.4f}  torch {l2:.4f}  ({time.perf_counter() - t0:.0f}s)")
    erng = np.random.default_rng(7)
    losses = {"tinyllm": [], "torch": []}
    model.eval()
    ref.eval()
    with tinyllm.no_grad(), torch.no_grad():
        for _ in range(args.eval_batches):
            w = val[erng.integers(0, len(val) - T - 1, B)[:, None] + offsets]
            x, y = np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:])
            losses["tinyllm"].append(model(x, y)[1].item())
            losses["torch"].append(ref(torch.from_numpy(x), torch.from_numpy(y))[1].item())
    v1, v2 = float(np.mean(losses["tinyllm"])), float(np.mean(losses["torch"]))
    ok = abs(v1 - v2) <= TOLERANCE
    print(f"val loss after {args.iters} iters ({args.eval_batches} batches): tinyllm {v1:.4f}  torch {v2:.4f}  "
          f"difference {v1 - v2:+.4f} ({'within' if ok else 'NOT within'} {TOLERANCE}); "
          f"{time.perf_counter() - t0:.0f}s in all")
    if args.json:
        args.json.write_text(json.dumps({"iters": args.iters, "eval_batches": args.eval_batches, "val_loss": {
            "tinyllm": v1, "torch": v2}, "difference": v1 - v2, "within_tolerance": ok, "tolerance": TOLERANCE,
            "data": str(path)}, indent=1))


if __name__ == "__main__":
    main()
