"""int8 (Q8_0) weights against float32, in the same run: perplexity, checkpoint size, generation speed.

    python bench/quantize.py --ckpt runs/default [--reps 5] [--tokens 64] [--skip-gpt2]

1. Perplexity on the validation split of the default model's corpus (the last
   10% of the tokens, as ``tinyllm train`` splits them), float32 vs int8:
   ``--ckpt`` is a trained run (``tinyllm train``). Target: change <= +0.01.
2. The GPT-2-124M shape (12 layers, 12 heads, 768 wide, 50257 tokens, context
   1024) with random weights (no trained GPT-2 is available offline): the
   perplexity change on a fixed random token stream, the size of the weights
   file (target <= 0.3x), and batch-1 greedy generation with the KV cache
   (target >= 1.3x float32 tokens/s). Each speed run is a fresh process
   (``--worker``), float32 and int8 alternating, ``--reps`` each; medians and
   the spread (min-max) are printed.
3. ``--trained-gpt2``: the perplexity change of a TRAINED model at the GPT-2-124M
   shape (12 layers, 12 heads, 768 wide, context 1024): trained from scratch on
   Tiny Shakespeare (``--shakespeare``, default /work/shared/data/tinyshakespeare.txt;
   skipped with a message when absent) for ``--train-seconds`` of CPU with a
   character tokenizer (65 symbols: the vocabulary is the only dimension that
   is not GPT-2's, whose 50257 BPE tokens a few minutes of training could not
   use), windows of ``--train-len`` tokens, AdamW; then float32 vs int8
   perplexity on the same ``--val-tokens`` of the validation split (the last
   10%). ``--quick`` shrinks the model to 2 layers x 64 wide and everything
   else to seconds: it proves the mode runs, its figure is not the target's.

       python bench/quantize.py --trained-gpt2 --skip-gpt2 --train-seconds 300
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GPT2 = {"vocab_size": 50257, "block_size": 1024, "n_layer": 12, "n_head": 12, "n_embd": 768}


def _val_file(restored, tmp: Path) -> Path:
    """The validation split of the run's corpus (its last 10%), as a text file for ``evaluate_lm``."""
    from tinyllm.data import load_text, resolve_corpus
    train = restored.checkpoint.config["train"]
    text = load_text(resolve_corpus(train["data"]))
    frac = float(train.get("val_fraction", 0.1))
    ids = restored.tokenizer.encode(text)
    start = len(ids) - int(round(len(ids) * frac))
    out = tmp / "val.txt"
    out.write_text(restored.tokenizer.decode(ids[start:]), encoding="utf-8")
    return out


def default_model(ckpt: str, tmp: Path) -> dict:
    from tinyllm.compress.quantize import quantize_checkpoint
    from tinyllm.train.evaluate import evaluate_lm
    from tinyllm.train.restore import restore_model
    fl = restore_model(ckpt)
    val = _val_file(fl, tmp)
    r = quantize_checkpoint(ckpt, tmp / "int8")
    q = restore_model(tmp / "int8")
    a, b = evaluate_lm(fl, str(val)), evaluate_lm(q, str(val))
    return {"tokens": a.tokens, "ppl_float32": a.perplexity, "ppl_int8": b.perplexity,
            "ppl_change": b.perplexity - a.perplexity, "size_ratio": r["ratio"],
            "bytes_float32": r["source_bytes"], "bytes_int8": r["bytes"]}


def _gpt2(seed: int = 0):
    import tinyllm
    from tinyllm.models import GPT, GPTConfig
    tinyllm.manual_seed(seed)
    model = GPT(GPTConfig(**GPT2, dropout=0.0))
    model.eval()
    return model


def gpt2_quality_and_size(tmp: Path) -> dict:
    """Perplexity on random tokens and weights-file size, float32 vs int8, at the GPT-2-124M shape."""
    from tinyllm.checkpoint import save_checkpoint
    from tinyllm.compress.quantize import quantize_model, unique_state
    from tinyllm.functional import cross_entropy
    from tinyllm.tensor import no_grad
    model = _gpt2()
    ids = np.random.default_rng(1).integers(0, GPT2["vocab_size"], (2, 257))

    def ppl(m) -> float:
        with no_grad():
            logits, _ = m(ids[:, :-1])
            return math.exp(float(cross_entropy(logits, ids[:, 1:]).item()))

    p_float = ppl(model)
    cfg = {"model": {"kind": "gpt", "config": model.config.to_dict()}}
    f = save_checkpoint(tmp / "gpt2", "best", config=cfg, weights=unique_state(model))   # the tied wte once
    quantize_model(model)
    p_int8 = ppl(model)
    state = {k: (v.astype(np.float16) if k.endswith("weight_scale") else v) for k, v in unique_state(model).items()}
    g = save_checkpoint(tmp / "gpt2-int8", "best", config=cfg, weights=state)
    a, b = (f / "model.safetensors").stat().st_size, (g / "model.safetensors").stat().st_size
    return {"ppl_float32": p_float, "ppl_int8": p_int8, "ppl_change": p_int8 - p_float,
            "bytes_float32": a, "bytes_int8": b, "size_ratio": b / a}


SHAKESPEARE = "/work/shared/data/tinyshakespeare.txt"


def trained_gpt2(path: str, seconds: float, train_len: int, batch: int, val_tokens: int, quick: bool) -> dict:
    """Train a GPT-2-124M-shaped character model on Tiny Shakespeare for ``seconds``, then compare float32
    and int8 perplexity on the same validation tokens."""
    import tinyllm
    from tinyllm.compress.quantize import quantize_model
    from tinyllm.data import CharTokenizer
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.optim import configure_adamw
    from tinyllm.tensor import no_grad

    text = Path(path).read_text(encoding="utf-8")
    tok = CharTokenizer.from_text(text)
    ids = np.asarray(tok.encode(text), dtype=np.int64)
    split = len(ids) - len(ids) // 10
    train, val = ids[:split], ids[split:]
    shape = dict(n_layer=2, n_head=2, n_embd=64) if quick else {k: GPT2[k] for k in ("n_layer", "n_head", "n_embd")}
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=GPT2["block_size"], dropout=0.0, **shape))
    opt = configure_adamw(model, lr=6e-4 if not quick else 3e-3, weight_decay=0.1)
    rng = np.random.default_rng(0)
    start, steps, losses = time.perf_counter(), 0, []
    model.train()
    while time.perf_counter() - start < seconds:
        rows = rng.integers(0, len(train) - train_len - 1, batch)
        x = np.stack([train[r:r + train_len] for r in rows])              # (B, T)
        y = np.stack([train[r + 1:r + train_len + 1] for r in rows])      # (B, T): the next characters
        for g in opt.param_groups:                                        # a short linear warmup
            g["lr"] = opt.defaults["lr"] * min(1.0, (steps + 1) / 10)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.clip_grad_norm_(1.0)
        opt.step()
        losses.append(float(loss.item()))
        steps += 1
    train_s = time.perf_counter() - start
    model.eval()
    windows = val[:(min(val_tokens, len(val) - 1) // train_len) * train_len + 1]

    def ppl() -> float:
        total, n = 0.0, 0
        with no_grad():
            for i in range(0, len(windows) - 1, train_len):
                x, y = windows[i:i + train_len][None], windows[i + 1:i + train_len + 1][None]
                _, loss = model(x, y)
                total, n = total + float(loss.item()) * x.size, n + x.size
        return math.exp(total / n)

    p_float = ppl()
    quantize_model(model)
    p_int8 = ppl()
    return {"shape": {**shape, "vocab_size": tok.vocab_size, "block_size": GPT2["block_size"]}, "steps": steps,
            "train_seconds": train_s, "train_loss_first": losses[0] if losses else float("nan"),
            "train_loss_last": float(np.mean(losses[-5:])) if losses else float("nan"),
            "val_tokens": len(windows) - 1, "ppl_float32": p_float, "ppl_int8": p_int8,
            "ppl_change": p_int8 - p_float}


def worker(kind: str, tokens: int) -> None:
    """One speed measurement in this process: tokens/s of greedy batch-1 generation with the KV cache."""
    from tinyllm.decoding import generate
    model = _gpt2()
    if kind == "int8":
        from tinyllm.compress.quantize import quantize_model
        quantize_model(model)
    prompt = np.random.default_rng(0).integers(0, GPT2["vocab_size"], (1, 16))
    generate(model, prompt, 4, greedy=True)                              # compile, warm the caches
    t = time.perf_counter()
    out = generate(model, prompt, tokens, greedy=True)
    dt = time.perf_counter() - t
    print(json.dumps({"kind": kind, "tok_s": tokens / dt, "tokens": out[0, 16:].tolist()}))


def gpt2_speed(reps: int, tokens: int) -> dict:
    runs: dict[str, list[float]] = {"float32": [], "int8": []}
    tokens_of: dict[str, list] = {}
    for _ in range(reps):
        for kind in ("float32", "int8"):
            res = subprocess.run([sys.executable, __file__, "--worker", kind, "--tokens", str(tokens)],
                                 capture_output=True, text=True, check=True)
            rec = json.loads(res.stdout.strip().splitlines()[-1])
            runs[kind].append(rec["tok_s"])
            tokens_of[kind] = rec["tokens"]
    med = {k: float(np.median(v)) for k, v in runs.items()}
    agree = sum(a == b for a, b in zip(tokens_of["float32"], tokens_of["int8"]))
    return {"tok_s_float32": med["float32"], "tok_s_int8": med["int8"], "speedup": med["int8"] / med["float32"],
            "spread_float32": [min(runs["float32"]), max(runs["float32"])],
            "spread_int8": [min(runs["int8"]), max(runs["int8"])], "greedy_tokens_agreeing": f"{agree}/{tokens}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None, help="A trained run (tinyllm train) for the perplexity figure.")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--skip-gpt2", action="store_true")
    ap.add_argument("--trained-gpt2", action="store_true",
                    help="Train a GPT-2-124M-shaped model on Tiny Shakespeare briefly; float32 vs int8 perplexity.")
    ap.add_argument("--shakespeare", default=SHAKESPEARE, help="Tiny Shakespeare text file.")
    ap.add_argument("--train-seconds", type=float, default=300.0, help="Training time budget (CPU seconds).")
    ap.add_argument("--train-len", type=int, default=128, help="Training and evaluation window, tokens.")
    ap.add_argument("--batch", type=int, default=8, help="Training windows per step.")
    ap.add_argument("--val-tokens", type=int, default=8192, help="Validation tokens scored by both models.")
    ap.add_argument("--quick", action="store_true", help="--trained-gpt2 at a tiny size, to check it runs.")
    ap.add_argument("--worker", choices=["float32", "int8"], default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.tokens)
        return
    if args.trained_gpt2:
        if not Path(args.shakespeare).is_file():
            print(f"trained GPT-2-124M shape: skipped, no Tiny Shakespeare at {args.shakespeare} (--shakespeare)")
        else:
            seconds = min(args.train_seconds, 5.0) if args.quick else args.train_seconds
            val_tokens = min(args.val_tokens, 512) if args.quick else args.val_tokens
            r = trained_gpt2(args.shakespeare, seconds, args.train_len, args.batch, val_tokens, args.quick)
            sh = r["shape"]
            print(f"trained {'(--quick: NOT the GPT-2-124M shape) ' if args.quick else 'GPT-2-124M shape '}"
                  f"{sh['n_layer']} layers x {sh['n_embd']} wide, {sh['n_head']} heads, context {sh['block_size']}, "
                  f"character tokenizer ({sh['vocab_size']} symbols), Tiny Shakespeare:")
            print(f"  {r['steps']} steps x {args.batch} x {args.train_len} tokens in {r['train_seconds']:.0f} s, "
                  f"train loss {r['train_loss_first']:.3f} -> {r['train_loss_last']:.3f}")
            print(f"  validation, {r['val_tokens']:,} tokens: perplexity float32 {r['ppl_float32']:.4f}  "
                  f"int8 {r['ppl_int8']:.4f}  change {r['ppl_change']:+.4f}   (target <= +0.01)")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.ckpt:
            r = default_model(args.ckpt, tmp)
            print(f"default model ({args.ckpt}), validation split, {r['tokens']:,} tokens:")
            print(f"  perplexity float32 {r['ppl_float32']:.4f}  int8 {r['ppl_int8']:.4f}  "
                  f"change {r['ppl_change']:+.4f}   (target <= +0.01)")
            print(f"  weights file {r['bytes_float32']:,} -> {r['bytes_int8']:,} bytes ({r['size_ratio']:.3f}x)")
        if not args.skip_gpt2:
            r = gpt2_quality_and_size(tmp)
            print("GPT-2-124M shape, random weights:")
            print(f"  perplexity on random tokens float32 {r['ppl_float32']:.2f}  int8 {r['ppl_int8']:.2f}  "
                  f"change {r['ppl_change']:+.4f} ({r['ppl_change'] / r['ppl_float32']:+.2e} relative)")
            print(f"  weights file {r['bytes_float32'] / 2**20:.1f} MiB -> {r['bytes_int8'] / 2**20:.1f} MiB "
                  f"({r['size_ratio']:.3f}x, target <= 0.3x)")
            s = gpt2_speed(args.reps, args.tokens)
            print(f"  generation, batch 1, KV cache, {args.tokens} tokens, {args.reps} fresh processes each:")
            print(f"    float32 {s['tok_s_float32']:.2f} tok/s ({s['spread_float32'][0]:.2f}-"
                  f"{s['spread_float32'][1]:.2f})   int8 {s['tok_s_int8']:.2f} tok/s ({s['spread_int8'][0]:.2f}-"
                  f"{s['spread_int8'][1]:.2f})   speedup {s['speedup']:.2f}x (target >= 1.3x); "
                  f"greedy tokens agreeing {s['greedy_tokens_agreeing']}")


if __name__ == "__main__":
    main()
