"""The perplexity cost of magnitude pruning, with and without a short recovery fine-tune.

    python bench/prune.py --ckpt runs/default [--levels 0.1,0.3,0.5] [--iters 100] [--structured]

For each sparsity level: ``prune_checkpoint`` (per layer), the perplexity on
the validation split of the run's corpus (its last 10%), then a short
``finetune --task lm`` on windows of the training split (prompt: 16 tokens,
response: the next 48; the masks keep the pruned weights at zero) and the
perplexity again. The unpruned model gets the same fine-tune, so the recovery
is compared with what the fine-tune alone does. ``--structured`` adds 2:4.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quantize import _val_file  # noqa: E402


def _pairs(restored, tmp: Path, n: int = 3000, seed: int = 0) -> Path:
    """Prompt/response windows of the training split (the first 90% of the tokens)."""
    from tinyllm.data import load_text, resolve_corpus
    train = restored.checkpoint.config["train"]
    ids = restored.tokenizer.encode(load_text(resolve_corpus(train["data"])))
    end = len(ids) - int(round(len(ids) * float(train.get("val_fraction", 0.1))))
    starts = np.random.default_rng(seed).integers(0, end - 64, n)
    out = tmp / "pairs.jsonl"
    dec = restored.tokenizer.decode
    out.write_text("".join(json.dumps({"prompt": dec(ids[s:s + 16]), "response": dec(ids[s + 16:s + 64])}) + "\n"
                           for s in starts), encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--levels", default="0.1,0.3,0.5")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--structured", action="store_true", help="also 2:4")
    args = ap.parse_args()
    from tinyllm.compress.prune import masked_layers, prune_checkpoint
    from tinyllm.train.evaluate import evaluate_lm
    from tinyllm.train.finetune import finetune
    from tinyllm.train.metrics import Progress
    from tinyllm.train.restore import restore_model

    quiet = Progress(echo=lambda s: None, enabled=False)
    settings = {"iters": args.iters, "lr": args.lr, "min_lr": args.lr / 10, "warmup": 10, "batch_size": 16,
                "eval_interval": args.iters, "eval_iters": 20, "log_interval": args.iters}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = restore_model(args.ckpt)
        val, pairs = str(_val_file(base, tmp)), str(_pairs(base, tmp))
        ppl0 = evaluate_lm(base, val).perplexity
        finetune(args.ckpt, pairs, "lm", settings, out=str(tmp / "ft0"), progress=quiet)
        ppl0_ft = evaluate_lm(restore_model(tmp / "ft0"), val).perplexity
        print(f"{'pruning':<14} {'sparsity':>8} {'ppl':>8} {'change':>8} {'after ft':>9} {'change':>8} {'zeros kept':>10}")
        print(f"{'none':<14} {0:>8.0%} {ppl0:>8.3f} {0:>+8.3f} {ppl0_ft:>9.3f} {ppl0_ft - ppl0:>+8.3f} {'':>10}")
        cases = [(f"{s:.0%} per layer", s, None) for s in (float(v) for v in args.levels.split(","))]
        if args.structured:
            cases.append(("2:4", 0.5, (2, 4)))
        for name, s, nm in cases:
            tag = name.replace("%", "").replace(" ", "_").replace(":", "of")
            r = prune_checkpoint(args.ckpt, tmp / tag, s, "layer", nm)
            ppl = evaluate_lm(restore_model(tmp / tag), val).perplexity
            finetune(str(tmp / tag), pairs, "lm", settings, out=str(tmp / f"{tag}-ft"), progress=quiet)
            ft = restore_model(tmp / f"{tag}-ft")
            kept = all(bool((ft.model.state_dict()[f"{n}.weight"][~m.weight_mask.data] == 0).all())
                       for n, m in masked_layers(ft.model))
            ppl_ft = evaluate_lm(ft, val).perplexity
            print(f"{name:<14} {r['sparsity']:>8.1%} {ppl:>8.3f} {ppl - ppl0:>+8.3f} {ppl_ft:>9.3f} "
                  f"{ppl_ft - ppl0:>+8.3f} {'yes' if kept else 'NO':>10}")
    print(f"(validation split of the run's corpus; fine-tune: {args.iters} iterations x 16 windows of 64 tokens, "
          f"AdamW lr {args.lr:g}, loss on the last 48 tokens of each window)")


if __name__ == "__main__":
    main()
