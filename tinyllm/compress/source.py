"""The checkpoint a compression command reads, and the directory it writes."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import CheckpointError, run_of
from .adapter import base_files


@dataclass
class Source:
    """A model to compress and what its new checkpoint copies from the old one."""

    model: Any
    config: dict               # config.json of the new checkpoint, before the compression's own entry
    tokenizer_json: str
    state: dict                # iteration and validation losses, kept for ``tinyllm info``
    weights_files: list[Path]  # the source's weights (a Hugging Face model's shards), for the size comparison
    path: Path


def hf_sections(restored: Any) -> tuple[dict, dict]:
    """The model section and the task entries of a tinyllm checkpoint holding a restored Hugging Face model:
    a GPT-2 or BERT, or a BERT with its head (sequence classification, token classification, QA)."""
    model, kind = restored.model, restored.kind
    backbone = getattr(model, "backbone", model)
    bcfg = backbone.config.to_dict()
    if kind in ("gpt", "bert"):
        return {"kind": kind, "config": bcfg}, {}
    base = {"backbone": restored.lm_kind, "backbone_config": bcfg, "freeze_backbone": False}
    if kind == "classifier":
        return ({"kind": kind, "config": {**base, "num_classes": model.num_classes, "pooling": model.pooling}},
                {"labels": restored.labels} if restored.labels else {})
    if kind == "tagger":
        tags = list(restored.labels or [f"LABEL_{i}" for i in range(model.num_tags)])
        return ({"kind": kind, "config": {**base, "tags": tags, "crf": False, "scheme": None}},
                {"tags": tags, "crf": False, "scheme": None})
    if kind == "span_extractor":
        return {"kind": kind, "config": base}, {}
    raise CheckpointError(f"a Hugging Face {kind} model cannot be written as a tinyllm checkpoint")


def load_source(path: str | os.PathLike, what: str) -> Source:
    """A tinyllm checkpoint (a run's best/) or a Hugging Face GPT-2 / BERT directory, as a float model.

    ``what`` names the command in messages ("quantize", "prune").
    """
    from ..train.restore import RUN_FORMAT, restore_model  # noqa: PLC0415  (train sits above)

    restored = restore_model(path, prefer="best")
    ck = restored.checkpoint
    if ck is None:                                   # Hugging Face: config and tokenizer from the model
        section, task = hf_sections(restored)
        config = {"format": RUN_FORMAT, "model": section, "task": {"name": "huggingface", "source": str(path), **task}}
        files = [f for f in base_files(path) if f.suffix == ".safetensors"]          # the shards, not the index
        return Source(restored.model, config, restored.tokenizer.to_json(), {}, files, Path(path))
    if "quantization" in ck.config:
        raise CheckpointError(f"'{path}' is int8-quantized already: {what} the float checkpoint it was made from")
    state = {k: v for k, v in ck.state.items() if k in ("iteration", "best_val_loss", "last_val_loss")}
    return Source(restored.model, dict(ck.config), ck.tokenizer_json or restored.tokenizer.to_json(), state,
                  [ck.path / "model.safetensors"], ck.path)


def check_out(out: str | os.PathLike, source: Path, force: bool) -> Path:
    """``out`` as a Path: refused if it holds files (unless ``force``) or overlaps ``source``'s run."""
    out, src = Path(out), run_of(source).resolve()
    if out.exists() and any(out.iterdir()) and not force:
        raise ValueError(f"--out '{out}' is not empty (use --force to replace what is there)")
    if out.resolve() == src or src in out.resolve().parents or out.resolve() in src.parents:
        raise ValueError(f"--out '{out}' would overlap the source checkpoint '{source}'")
    return out
