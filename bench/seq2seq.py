"""One seq2seq training step (forward, backward, AdamW) in tinyllm and in PyTorch's nn.Transformer.

    python bench/seq2seq.py                      # the default shape, 3 rounds
    python bench/seq2seq.py --rounds 5 --steps 20 --n-embd 256

Both models have the same shape: pre-LN encoder and decoder stacks of
``--n-layer`` blocks each, ReLU feed-forward of 4C, sinusoidal positions,
the output projection tied to the target embedding, no dropout; a batch of
``--batch`` random pairs of ``--src-len`` / ``--tgt-len`` tokens. Each engine
runs in its own fresh process, with its default environment, in rounds that
alternate which goes first; each child reports the median seconds per step
after warmup, and the parent prints the median and spread over rounds and the
ratio tinyllm / torch.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def batch(args, rng):
    src = rng.integers(3, args.vocab, size=(args.batch, args.src_len))
    tgt = rng.integers(3, args.vocab, size=(args.batch, args.tgt_len + 1))
    tgt[:, 0] = 1
    return src, tgt[:, :-1], tgt[:, 1:]


def run_tinyllm(args) -> list[float]:
    import numpy as np

    from tinyllm import backend
    from tinyllm.models import Seq2Seq, Seq2SeqConfig
    from tinyllm.optim import configure_adamw

    backend.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=args.vocab, block_size=max(args.src_len, args.tgt_len),
                                  n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, dropout=0.0))
    opt = configure_adamw(model, 1e-3, 0.01)
    src, tgt_in, targets = batch(args, np.random.default_rng(0))
    times = []
    for _ in range(args.warmup + args.steps):
        t = time.perf_counter()
        _, loss = model(src, tgt_in, targets)
        loss.backward()
        opt.step()
        opt.zero_grad()
        loss.item()
        times.append(time.perf_counter() - t)
    return times[args.warmup:]


def run_torch(args) -> list[float]:
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    c, v, n = args.n_embd, args.vocab, max(args.src_len, args.tgt_len)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.src_embed, self.tgt_embed = nn.Embedding(v, c, padding_idx=0), nn.Embedding(v, c, padding_idx=0)
            pos = torch.arange(n)[:, None]
            freq = torch.exp(-math.log(10000.0) * torch.arange(0, c, 2) / c)
            pe = torch.zeros(n, c)
            pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
            self.register_buffer("pe", pe)
            self.transformer = nn.Transformer(c, args.n_head, args.n_layer, args.n_layer, 4 * c, dropout=0.0,
                                              batch_first=True, norm_first=True)
            self.lm_head = nn.Linear(c, v, bias=False)
            self.lm_head.weight = self.tgt_embed.weight

        def forward(self, src, tgt_in, targets):
            s = self.src_embed(src) * math.sqrt(c) + self.pe[:src.shape[1]]
            t = self.tgt_embed(tgt_in) * math.sqrt(c) + self.pe[:tgt_in.shape[1]]
            causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1])
            h = self.transformer(s, t, tgt_mask=causal, src_key_padding_mask=src == 0,
                                 memory_key_padding_mask=src == 0)
            return nn.functional.cross_entropy(self.lm_head(h).flatten(0, 1), targets.flatten())

    model = Model()
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.01)
    src, tgt_in, targets = (torch.as_tensor(a) for a in batch(args, np.random.default_rng(0)))
    times = []
    for _ in range(args.warmup + args.steps):
        t = time.perf_counter()
        loss = model(src, tgt_in, targets)
        loss.backward()
        opt.step()
        opt.zero_grad()
        loss.item()
        times.append(time.perf_counter() - t)
    return times[args.warmup:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["tinyllm", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--src-len", type=int, default=32)
    ap.add_argument("--tgt-len", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    args = ap.parse_args()
    if args.engine:
        times = run_tinyllm(args) if args.engine == "tinyllm" else run_torch(args)
        print(json.dumps({"median": statistics.median(times)}))
        return
    passed = sys.argv[1:]
    results: dict[str, list[float]] = {"tinyllm": [], "torch": []}
    for r in range(args.rounds):
        for engine in (("tinyllm", "torch") if r % 2 == 0 else ("torch", "tinyllm")):
            out = subprocess.run([sys.executable, __file__, "--engine", engine, *passed], capture_output=True,
                                 text=True, check=True)
            results[engine].append(json.loads(out.stdout.strip().splitlines()[-1])["median"])
    print(f"seq2seq step: batch {args.batch}, source/target {args.src_len}/{args.tgt_len}, "
          f"{args.n_layer}+{args.n_layer} layers x {args.n_embd}, vocab {args.vocab}; {args.rounds} rounds")
    for engine, ts in results.items():
        print(f"  {engine:<8} {statistics.median(ts) * 1e3:8.1f} ms/step  (min {min(ts) * 1e3:.1f}, "
              f"max {max(ts) * 1e3:.1f})")
    ratio = statistics.median(results["tinyllm"]) / statistics.median(results["torch"])
    print(f"  tinyllm / torch = {ratio:.2f}")


if __name__ == "__main__":
    main()
