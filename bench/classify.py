"""A classification fine-tuning step: a GPT backbone with a sequence-classifier head, tinyllm
against the same model in PyTorch, each in fresh processes.

    python bench/classify.py                     # nano backbone, 64 tokens, batch 12, 4 classes
    python bench/classify.py --config large --rounds 4 --import-numpy-first

tinyllm: ``SequenceClassifier(GPT(...), num_classes=4)`` (pooling "last": the
final hidden state of the last token, then a Linear head). PyTorch:
``reference_gpt.ReferenceGPT.encode`` and the same head. Same weights (a setup
process writes them once), dropout 0, labels drawn at random; a step is
forward, cross-entropy, backward of the whole model, clipping (1.0) and AdamW.
Throughput in tokens/s (sequences x tokens per sequence).
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
from train import CONFIGS as TRAIN_CONFIGS, model_args  # noqa: E402

CONFIGS = {name: TRAIN_CONFIGS[name] for name in ("tiny", "nano", "large")}
NUM_CLASSES = 4
LR, WD, BETAS, CLIP = 1e-4, 0.01, (0.9, 0.999), 1.0


def labelled_batches(cfg: dict, n: int, seed: int = 1) -> list:
    """``n`` (token ids (B, T), labels (B,)) pairs drawn at random."""
    import numpy as np  # noqa: PLC0415
    rng = np.random.default_rng(seed)
    shape = (cfg["batch_size"], cfg["block_size"])
    return [(rng.integers(0, cfg["vocab_size"], shape), rng.integers(0, NUM_CLASSES, shape[0])) for _ in range(n)]


def build_tinyllm(cfg: dict, state: dict | None = None, seed: int = 0):
    import tinyllm  # noqa: PLC0415
    from tinyllm.models import GPT, GPTConfig, SequenceClassifier  # noqa: PLC0415
    tinyllm.manual_seed(seed)
    model = SequenceClassifier(GPT(GPTConfig(**model_args(cfg), dropout=0.0)), NUM_CLASSES, pooling="last")
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
    import torch.nn.functional as F  # noqa: PLC0415
    from reference_gpt import ReferenceGPT, load_from_tinyllm  # noqa: PLC0415

    class Classifier(torch.nn.Module):
        """logits = W_c h_last + b_c, h = the backbone's final hidden states."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = ReferenceGPT(**model_args(cfg))
            self.classifier = torch.nn.Linear(cfg["n_embd"], NUM_CLASSES)

        def forward(self, idx, labels):
            logits = self.classifier(self.backbone.encode(idx)[:, -1, :])          # (B, T, C) -> (B, K)
            return logits, F.cross_entropy(logits, labels)

    model = Classifier()
    if state is not None:
        load_from_tinyllm(model.backbone, {k[len("backbone."):]: v for k, v in state.items()
                                           if k.startswith("backbone.")})
        with torch.no_grad():
            model.classifier.weight.copy_(torch.from_numpy(state["classifier.weight"]))
            model.classifier.bias.copy_(torch.from_numpy(state["classifier.bias"]))
    model.to(device)
    params = list(model.parameters())
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": WD},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=LR, betas=BETAS)

    def step(x, y):
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    return model, step


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=list(CONFIGS), default="nano")
    harness.add_arguments(ap)
    harness.add_quick(ap)
    args = harness.parse(ap, argv)
    cfg = CONFIGS[args.config]
    if args.child:
        steps.child(args, lambda state: build_tinyllm(cfg, state), lambda state, device: build_torch(cfg, state, device),
                    lambda n: labelled_batches(cfg, n), cfg["batch_size"] * cfg["block_size"],
                    info={"config": args.config})
        return {}
    summary, contenders = steps.compare(
        __file__, ["--config", args.config], args,
        title=f"classification fine-tuning ({args.config} GPT backbone, {NUM_CLASSES} classes): tokens/s, "
              f"{args.rounds} round(s) of {args.warmup} + {args.steps} steps, fresh processes")
    out = {"summary": summary, "results": {c.name: c.results for c in contenders}}
    harness.write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
