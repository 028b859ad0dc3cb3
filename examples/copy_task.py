"""The Annotated Transformer's copy task: an encoder-decoder learns to output its input.

Sources are random sequences of symbols; the target is the same sequence. A
model that gets it right has learned to attend, at decoding step t, to source
position t through cross-attention - the smallest task on which the whole
encoder-decoder (masks, teacher forcing, the decoding cache) must work.

    python examples/copy_task.py            # about a minute: longer sequences, beam search too
    python examples/copy_task.py --quick    # a few seconds: a smoke test (the test suite runs it)

It prints the loss as training goes, then the share of fresh random sequences
copied exactly (greedy decoding) and a few examples. Exit status 1 if fewer
than ``--require`` of them are copied exactly.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from tinyllm import backend
from tinyllm.decoding.beam import beam_search, greedy_search
from tinyllm.models import Seq2Seq, Seq2SeqConfig
from tinyllm.optim import WarmupCosine, configure_adamw
from tinyllm.train.seq2seq import PairSource, make_batch

FIRST = 3            # ids 0, 1, 2 are PAD, BOS, EOS; the symbols are 3 .. 3 + n_symbols - 1


def random_sequences(rng: np.random.Generator, n: int, n_symbols: int, max_len: int) -> list[list[int]]:
    return [list(rng.integers(FIRST, FIRST + n_symbols, size=rng.integers(1, max_len + 1))) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and a short run (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--require", type=float, default=0.9, help="the share of exact copies needed to pass")
    args = parser.parse_args(argv)

    lr = 5e-3
    n_symbols, max_len, iters, width = (5, 4, 300, 32) if args.quick else (10, 10, 1500, 64)
    backend.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train = random_sequences(rng, 5000, n_symbols, max_len)
    source = PairSource(train, train, batch_size=32, seed=args.seed)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=FIRST + n_symbols, block_size=max_len + 1, n_layer=1 if args.quick else 2,
                                  n_head=4, n_embd=width, dropout=0.0))
    optimizer = configure_adamw(model, lr, weight_decay=0.0)
    schedule = WarmupCosine(lr, lr / 10, 20, iters)
    print(f"copy task: sequences of 1-{max_len} of {n_symbols} symbols; "
          f"{model.num_parameters():,} parameters, {iters} steps of 32 pairs")
    start = time.perf_counter()
    for it in range(iters):
        optimizer.set_lr(schedule(it))
        _, loss = model(**source.next())                # teacher forcing: BOS y -> y EOS
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if it % max(1, iters // 5) == 0 or it == iters - 1:
            print(f"step {it:4d}  loss {loss.item():.4f}  ({time.perf_counter() - start:.1f} s)")

    test = random_sequences(np.random.default_rng([args.seed, 1]), 200, n_symbols, max_len)
    batch = make_batch(test, test)
    hyps = greedy_search(model, batch["src"], max_new_tokens=max_len + 1)
    exact = np.mean([h.tokens == t for h, t in zip(hyps, test)])
    print(f"greedy: {exact:.1%} of {len(test)} fresh sequences copied exactly")
    if not args.quick:
        beams = beam_search(model, batch["src"], beam=4, max_new_tokens=max_len + 1)
        print(f"beam 4: {np.mean([b[0].tokens == t for b, t in zip(beams, test)]):.1%} copied exactly")
    for h, t in list(zip(hyps, test))[:3]:
        print(f"  {[int(x) for x in t]} -> {h.tokens}")
    return 0 if exact >= args.require else 1


if __name__ == "__main__":
    sys.exit(main())
