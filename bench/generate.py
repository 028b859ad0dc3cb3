"""Greedy generation with a KV cache: tinyllm against a plain PyTorch loop, each in fresh processes.

    python bench/generate.py                               # nano shape, batch 1, 56 new tokens (the context)
    python bench/generate.py --config nano --tokens 200    # 56 in the context, then 144 with a sliding window
    python bench/generate.py --config gpt2 --tokens 32     # GPT-2 124M shape (12 x 768, vocab 50257, context 1024)
    python bench/generate.py --config nano --batch 8
    python bench/generate.py --config gpt2 --rounds 4 --import-numpy-first
    python bench/generate.py --quick                       # a short check that it runs, not a measurement

Both sides hold the same weights (written once by a setup process) and
decode greedily from the same prompts of 8 tokens: tinyllm with
``tinyllm.decoding.generate`` (a prefill, then one decode step per token, on
arrays, the keys and values written in place into a preallocated cache), PyTorch with
``ReferenceGPT.generate`` (the plain loop: keys and values concatenated onto
the cache). Both compute the same thing past the context too: with learned
positions every position of a sliding window changes, so each token there is
one forward of the last block_size tokens on both sides (nanoGPT's
crop-and-forward; tinyllm restarts its cache from that window). The default ``--tokens`` fills the context
(block_size - 8), so only cached steps are timed.

A "step" here is one whole generation of ``--tokens`` tokens: ``--warmup``
untimed and ``--steps`` timed ones per process, processes alternated over
``--rounds`` rounds. Reports tokens/s (new tokens x batch / seconds), the
spread, the ratio of the medians, peak RSS, and how many greedy tokens agree.
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from steps import load_weights, save_weights  # noqa: E402
from train import CONFIGS as TRAIN_CONFIGS, build_tinyllm, model_args  # noqa: E402

CONFIGS = {
    "tiny": TRAIN_CONFIGS["tiny"],
    "nano": TRAIN_CONFIGS["nano"],
    # GPT-2 small's shape (124M parameters with the tied output layer)
    "gpt2": dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),
}
PROMPT = 8


def prompts(cfg: dict, batch: int):
    import numpy as np  # noqa: PLC0415
    return np.random.default_rng(0).integers(0, cfg["vocab_size"], (batch, PROMPT))


def child(args: argparse.Namespace) -> None:
    cfg = {**CONFIGS[args.config], "batch_size": args.batch}
    if args.child == "setup":
        harness.import_tinyllm(False)
        save_weights(args.weights, build_tinyllm(cfg)[0])
        harness.report({})
        return
    out: list = []
    if args.child == "tinyllm":
        harness.import_tinyllm(args.import_numpy_first)
        from tinyllm.decoding import generate  # noqa: PLC0415
        from tinyllm.models import GPT, GPTConfig  # noqa: PLC0415
        model = GPT(GPTConfig(**model_args(cfg), dropout=0.0))
        model.load_state_dict(load_weights(args.weights))
        prompt = prompts(cfg, args.batch)

        def run(i: int) -> None:
            out[:] = generate(model, prompt, args.tokens, greedy=True)[:, PROMPT:].tolist()
    else:
        import torch  # noqa: PLC0415
        from reference_gpt import ReferenceGPT, load_from_tinyllm  # noqa: PLC0415
        model = ReferenceGPT(**model_args(cfg))
        load_from_tinyllm(model, load_weights(args.weights))
        prompt = torch.from_numpy(prompts(cfg, args.batch))

        def run(i: int) -> None:
            out[:] = model.generate(prompt, args.tokens)[:, PROMPT:].tolist()
    times = harness.time_steps(run, args.warmup, args.steps)
    harness.report({**harness.throughput(times, args.tokens * args.batch), "config": args.config,
                    "batch": args.batch, "tokens": out, "numpy_first": bool(args.import_numpy_first)})


def agreement(a: list[list[int]], b: list[list[int]]) -> tuple[int, int, int]:
    """(positions equal, positions in all, shortest run of equal tokens before a sequence diverges)."""
    equal = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    total = sum(len(r) for r in a)
    prefix = min(next((i for i, (x, y) in enumerate(zip(ra, rb)) if x != y), len(ra)) for ra, rb in zip(a, b))
    return equal, total, prefix


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=list(CONFIGS), default="nano")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=None,
                    help="new tokens per generation (default: up to the end of the context, at most 200)")
    harness.add_arguments(ap, warmup=2, steps=10)
    harness.add_quick(ap, rounds=2, warmup=1, steps=1)
    args = harness.parse(ap, argv)
    block = CONFIGS[args.config]["block_size"]
    if args.tokens is None:
        args.tokens = min(200, block - PROMPT)
    past = max(0, PROMPT + args.tokens - 1 - block)             # tokens chosen from a full, sliding window
    if args.child:
        child(args)
        return {}
    summary, contenders = harness.compare_processes(
        __file__, ["--config", args.config, "--batch", str(args.batch), "--tokens", str(args.tokens)], args,
        unit="tok/s", title=f"{args.config}: greedy generation with a KV cache, batch {args.batch}, "
                            f"{args.tokens} new tokens ({args.tokens - past} in the context of {block}, {past} past it), "
                            f"{args.rounds} round(s) of {args.warmup} + {args.steps} "
                            f"generations, fresh processes")
    if len(contenders) >= 2:
        equal, total, prefix = agreement(contenders[0].results[0]["tokens"], contenders[1].results[0]["tokens"])
        summary["tokens_agree"] = [equal, total, prefix]
        print(f"  greedy tokens agreeing: {equal}/{total} (every sequence equal for its first {prefix})")
    out = {"summary": summary, "results": {c.name: c.results for c in contenders}}
    harness.write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
