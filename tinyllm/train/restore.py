"""Rebuild a model and its tokenizer from a checkpoint (or a Hugging Face GPT-2 directory).

A checkpoint's ``config.json`` names the model kind and its config:

* ``{"kind": "gpt" | "bert", "config": {...}}`` - a pre-trained (or LM fine-tuned) model;
* ``{"kind": "classifier", "config": {"backbone": "gpt" | "bert", "backbone_config": {...},
  "num_classes": K, "pooling": ..., "freeze_backbone": ...}}`` - a fine-tuned classifier.

Everything is checked against everything else before it is used: the weights
against the model's parameters (names and shapes), the tokenizer's
vocabulary against the model's, so a checkpoint put together from different
runs is reported as such rather than producing garbage.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import Checkpoint, CheckpointError, CheckpointFileError, load_checkpoint
from ..data import Tokenizer
from ..validate import FileError, check_metrics_rows, check_model_config, read_file
from .budget import check_model
from .data import tokenizer_from_json
from .tasks import HEAD_KINDS, build_head_model

RUN_FORMAT = "tinyllm-run"
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


@dataclass
class Restored:
    """A model ready to use, its tokenizer, and where it came from."""

    model: Any
    tokenizer: Tokenizer
    kind: str                  # "gpt", "bert" or "classifier"
    checkpoint: Checkpoint | None
    labels: list[str] | None = None   # a classifier's class names
    backbone: str | None = None       # a Hugging Face directory's head: its backbone's kind

    @property
    def lm_kind(self) -> str:
        """The language-model kind: the model's own, or a classifier's backbone's."""
        if self.kind in ("classifier", "tagger", "span_extractor"):
            if self.checkpoint is None:                  # a Hugging Face directory: GPT-2's or BERT's heads
                return self.backbone or "bert"
            return self.checkpoint.config["model"]["config"]["backbone"]
        return self.kind


def is_hf_dir(path: str | os.PathLike) -> bool:
    """A Hugging Face model directory: ``config.json`` and ``model.safetensors`` (or its shard index),
    no tinyllm manifest."""
    p = Path(path)
    return (p / "config.json").is_file() and any((p / f).is_file() for f in HF_WEIGHTS) \
        and not (p / "manifest.json").exists()


def build_from_config(model_section: dict) -> Any:
    """A freshly initialized model from a checkpoint's ``config["model"]`` section."""
    from ..models import SequenceClassifier, build_model  # noqa: PLC0415

    kind, cfg = model_section.get("kind"), model_section.get("config")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"the model config is missing or not a table: {cfg!r}")
    check_model_config(kind, cfg, "config.json")
    check_model(kind, cfg)                       # refuse what would not fit before allocating it
    if kind in HEAD_KINDS:
        model = build_head_model(kind, cfg)
    elif kind == "classifier":
        backbone = build_model(cfg["backbone"], cfg["backbone_config"])
        model = SequenceClassifier(backbone, cfg["num_classes"], cfg.get("pooling"),
                                   freeze_backbone=bool(cfg.get("freeze_backbone", False)),
                                   bias=cfg.get("bias", True), pad_id=cfg.get("pad_id"))
    else:
        model = build_model(kind, cfg)
    if "pruning" in model_section:                    # pruned: the masks are buffers saved with the weights
        from ..compress.prune import attach_masks  # noqa: PLC0415
        attach_masks(model, model_section["pruning"])
    if "lora" in model_section:                       # a LoRA fine-tuning run: its adapters are in the weights
        from ..compress.adapter import add_lora  # noqa: PLC0415
        add_lora(model, model_section["lora"])
    return model


def model_vocab_size(model_section: dict) -> int:
    cfg = model_section["config"]
    heads = ("classifier", *HEAD_KINDS)
    return int(cfg["backbone_config"]["vocab_size"] if model_section["kind"] in heads else cfg["vocab_size"])


def restore_model(path: str | os.PathLike, prefer: str = "best") -> Restored:
    """Load a model for use (not for resuming training): weights, tokenizer, checks.

    Args:
        path: a run directory (``prefer`` picks best/ or latest/), a checkpoint
            directory, or a Hugging Face GPT-2 directory.
        prefer: "best" (the lowest validation loss) or "latest".

    Raises:
        CheckpointError: missing, incomplete or corrupt checkpoint; weights or a
            tokenizer that do not belong to the model.
    """
    if is_hf_dir(path):
        from .tasks.sources import hf_model_type, is_gpt2_head_dir, restore_hf  # noqa: PLC0415
        if hf_model_type(path) == "bert" or is_gpt2_head_dir(path):
            return restore_hf(path)
        from ..models import GPT  # noqa: PLC0415
        model = GPT.from_pretrained(path)
        if model.tokenizer is None:
            raise CheckpointError(f"Hugging Face directory '{path}' has no tokenizer.json to encode prompts with")
        model.eval()
        return Restored(model, model.tokenizer, "gpt", None)
    ckpt = load_checkpoint(path, prefer=prefer, with_optimizer=False)
    section = ckpt.config["model"]
    if section["kind"] == "seq2seq":              # two vocabularies: restore_seq2seq reads it
        raise CheckpointError(f"checkpoint {ckpt.path} holds a seq2seq (encoder-decoder) model, which this "
                              "command does not take (tinyllm.train.seq2seq_eval.restore_seq2seq loads it)")
    try:
        model = build_from_config(section)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {ckpt.path} has an unusable model config: {_msg(exc)}") from None
    try:
        if "quantization" in ckpt.config:                 # int8 weights (tinyllm quantize)
            from ..compress.quantize import load_quantized  # noqa: PLC0415
            load_quantized(model, ckpt.weights, ckpt.config["quantization"])
        else:
            model.load_state_dict(ckpt.weights, strict=True)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {ckpt.path}: the weights do not fit its {section.get('kind')} "
                              f"config ({_msg(exc)})") from None
    if ckpt.tokenizer_json is None:
        raise CheckpointError(f"checkpoint {ckpt.path} has no tokenizer")
    tokenizer = tokenizer_from_json(ckpt.tokenizer_json, str(ckpt.path))
    check_tokenizer_fits(tokenizer, section, ckpt.path)
    model.eval()
    labels = ckpt.config.get("task", {}).get("labels")
    return Restored(model, tokenizer, section["kind"], ckpt, labels)


def check_inference(restored: Restored, batch_size: int) -> None:
    """Refuse (BudgetError) a batch whose activations would not fit next to the model."""
    if restored.checkpoint:
        kind, config = restored.kind, restored.checkpoint.config["model"]["config"]
    else:                                     # a Hugging Face directory: the backbone's sizes are what count
        model = restored.model
        kind, config = restored.lm_kind, getattr(model, "backbone", model).config.to_dict()
    check_model(kind, config, batch_size=batch_size)


def check_resume(ckpt: Checkpoint, run_dir: str | os.PathLike) -> None:
    """Everything a resume reads, checked before the run is touched (a failed resume changes nothing).

    The checkpoint's files were checked against their schemas when loaded;
    here: the keys a resume needs, and the run's ``metrics.jsonl`` (which the
    resumed run rewrites up to the checkpoint's iteration).
    """
    missing = [k for k in ("iteration", "rng", "data") if k not in ckpt.state]
    if missing:
        raise CheckpointFileError(ckpt.path / "state.json", f"missing key '{missing[0]}' (needed to resume)")
    if not isinstance(ckpt.config.get("train"), dict):
        raise CheckpointFileError(ckpt.path / "config.json", "missing key 'train' (needed to resume)")
    if ckpt.optimizer is None:
        raise CheckpointError(f"checkpoint {ckpt.path} has no optimizer state to resume from")
    metrics = Path(run_dir) / "metrics.jsonl"
    if not metrics.exists() and not metrics.is_symlink():
        return
    try:
        text = read_file(metrics, "metrics file", max_bytes=1 << 30).decode("utf-8")
    except UnicodeDecodeError:
        raise FileError(metrics, "not UTF-8 text; move it away to resume") from None
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))        # as the metrics reader parses it
        except (ValueError, RecursionError):
            continue                             # a half-written last line: the reader skips it as well
    check_metrics_rows(rows, metrics)


def check_tokenizer_fits(tokenizer: Tokenizer, model_section: dict, where: Any) -> None:
    """Raise CheckpointError if the tokenizer's vocabulary is not the model's."""
    expected = model_vocab_size(model_section)
    if tokenizer.vocab_size != expected:
        raise CheckpointError(f"checkpoint {where}: its tokenizer has {tokenizer.vocab_size} tokens but the model "
                              f"was built for {expected}; the tokenizer comes from a different run")


def _msg(exc: BaseException) -> str:
    """An exception's message without the quotes ``str(KeyError)`` adds."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
