"""A BERT masked-LM training step: tinyllm against an identical PyTorch BERT, in fresh processes.

    python bench/bert.py                      # "mini": 4 layers, 4 heads, 256 wide, 128 tokens, batch 16
    python bench/bert.py --config small --rounds 4 --import-numpy-first

The model is ``tinyllm.models.BERT`` (post-LN encoder, MLM head with the
decoder tied to the token embeddings) and its twin ``reference_bert.py``:
same parameters by name and count, same initial weights (a setup process
writes them once), dropout 0 on both sides so the losses agree step by step.
A step: forward over the whole batch (scores for every position, as BERT's
MLM head computes them), cross-entropy over the masked 15% of positions,
backward, gradient clipping (1.0), AdamW. Reported as in ``train.py``.
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402
import harness  # noqa: E402
import steps  # noqa: E402

CONFIGS = {
    "tiny": dict(vocab_size=100, block_size=16, n_layer=1, n_head=2, n_embd=32, batch_size=2),   # tests
    "mini": dict(vocab_size=8192, block_size=128, n_layer=4, n_head=4, n_embd=256, batch_size=16),
    "small": dict(vocab_size=8192, block_size=128, n_layer=6, n_head=6, n_embd=384, batch_size=16),
}
LR, WD, BETAS, CLIP = 1e-4, 0.01, (0.9, 0.999), 1.0
MASK_ID, FIRST_WORD, MASK_RATE = 4, 5, 0.15     # ids 0-4: [PAD] [UNK] [CLS] [SEP] [MASK]


def model_args(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k != "batch_size"}


def mlm_batches(cfg: dict, n: int, seed: int = 1) -> list:
    """``n`` (inputs, targets): random words, 15% of positions (at least one a row) replaced by
    [MASK] in the inputs; targets hold the original word there and -100 elsewhere."""
    import numpy as np  # noqa: PLC0415
    rng = np.random.default_rng(seed)
    shape = (cfg["batch_size"], cfg["block_size"])
    out = []
    for _ in range(n):
        words = rng.integers(FIRST_WORD, cfg["vocab_size"], shape)
        masked = rng.random(shape) < MASK_RATE
        masked[np.arange(shape[0]), rng.integers(0, shape[1], shape[0])] = True
        out.append((np.where(masked, MASK_ID, words), np.where(masked, words, -100)))
    return out


def build_tinyllm(cfg: dict, state: dict | None = None, seed: int = 0):
    import tinyllm  # noqa: PLC0415
    from tinyllm.models import BERT, BertConfig  # noqa: PLC0415
    tinyllm.manual_seed(seed)
    model = BERT(BertConfig(**model_args(cfg), dropout=0.0))
    if state is not None:
        model.load_state_dict(state)
    opt = common.tinyllm_adamw(model, LR, WD, BETAS)

    def step(x, y):
        _, loss = model(x, y)
        loss.backward()
        common.tinyllm_clip(opt, model, CLIP)
        opt.step()
        opt.zero_grad()
        return loss
    return model, step


def build_torch(cfg: dict, state: dict | None, device: str = "cpu"):
    import torch  # noqa: PLC0415
    from reference_bert import ReferenceBERT, load_from_tinyllm  # noqa: PLC0415
    model = ReferenceBERT(**model_args(cfg))
    if state is not None:
        load_from_tinyllm(model, state)
    model.to(device)
    opt = model.configure_optimizer(lr=LR, weight_decay=WD, betas=BETAS)

    def step(x, y):
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    return model, step


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=list(CONFIGS), default="mini")
    harness.add_arguments(ap)
    harness.add_quick(ap)
    args = harness.parse(ap, argv)
    cfg = CONFIGS[args.config]
    if args.child:
        steps.child(args, lambda state: build_tinyllm(cfg, state), lambda state, device: build_torch(cfg, state, device),
                    lambda n: mlm_batches(cfg, n), cfg["batch_size"] * cfg["block_size"], info={"config": args.config})
        return {}
    summary, contenders = steps.compare(
        __file__, ["--config", args.config], args,
        title=f"BERT {args.config}: MLM training tokens/s, {args.rounds} round(s) of {args.warmup} + {args.steps} "
              f"steps, fresh processes")
    out = {"summary": summary, "results": {c.name: c.results for c in contenders}}
    harness.write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
