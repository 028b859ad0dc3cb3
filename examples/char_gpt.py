"""Train a character-level GPT on Shakespeare and let it write.

The corpus is the Shakespeare excerpt shipped with tinyllm (250k characters),
so this runs offline. Every character is one token (about 60 of them); the
model learns to predict the next character from the previous ``block_size``.

    python examples/char_gpt.py            # about 1.5 minutes on 2 CPU cores
    python examples/char_gpt.py --quick    # a few seconds: a smoke test

What to look for: the validation loss falls from ln(vocab) ~ 4.1 nats (a
uniform guess) to about 2 within a minute or two, and the sample turns from
noise into Shakespeare-shaped text: speaker names in capitals, line breaks,
common words.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

import tinyllm
from tinyllm.data import CharTokenizer, LMBatcher, load_text, resolve_corpus, split_train_val
from tinyllm.decoding import generate
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import WarmupCosine, configure_adamw


def estimate_loss(model: GPT, batcher: LMBatcher, batches: int) -> float:
    """Mean loss over a few random batches, in eval mode, without a graph."""
    model.eval()
    with tinyllm.no_grad():
        losses = [model(*batcher.next())[1].item() for _ in range(batches)]
    model.train()
    return float(np.mean(losses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and a few steps (smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 500, quick 20)")
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    steps = args.steps or (20 if args.quick else 500)
    tinyllm.manual_seed(args.seed)

    text = load_text(resolve_corpus("tiny"))
    tok = CharTokenizer.from_text(text)
    ids = np.asarray(tok.encode(text), dtype=np.int64)
    train_ids, val_ids = split_train_val(ids, 0.1)
    print(f"corpus: {len(text):,} characters, vocabulary of {tok.vocab_size} characters")

    if args.quick:
        config = GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32)
        batch_size = 8
    else:
        config = GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=3, n_head=4, n_embd=96)
        batch_size = 24
    model = GPT(config)
    print(f"model: {model.num_parameters():,} parameters, "
          f"{model.flops_per_token() * batch_size * config.block_size / 1e9:.2f} GFLOP per training step")

    train = LMBatcher(train_ids, config.block_size, batch_size, seed=args.seed)
    val = LMBatcher(val_ids, config.block_size, batch_size, seed=args.seed + 1)
    opt = configure_adamw(model, lr=3e-3, weight_decay=0.1, betas=(0.9, 0.99))
    schedule = WarmupCosine(max_lr=3e-3, min_lr=3e-4, warmup=max(steps // 20, 1), decay_iters=steps)
    print(f"before training: val loss {estimate_loss(model, val, 4):.3f} "
          f"(a uniform guess is ln {tok.vocab_size} = {math.log(tok.vocab_size):.3f})")

    t0 = time.perf_counter()
    for it in range(steps):
        x, y = train.next()
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.clip_grad_norm_(1.0)
        opt.set_lr(schedule(it))
        opt.step()
        if (it + 1) % max(steps // 6, 1) == 0 or it == steps - 1:
            print(f"step {it + 1:4d}/{steps}  train loss {loss.item():.3f}  "
                  f"val loss {estimate_loss(model, val, 4):.3f}  ({time.perf_counter() - t0:.0f}s)")

    prompt = np.asarray([tok.encode("ROMEO:\n")], dtype=np.int64)
    out = generate(model, prompt, 40 if args.quick else 300, temperature=0.8, top_k=20, seed=args.seed)
    print("\nsample (temperature 0.8, top-k 20):\n" + tok.decode(out[0].tolist()))


if __name__ == "__main__":
    main()
