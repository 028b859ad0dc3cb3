"""Where a fine-tuning run or an evaluation starts: a tinyllm checkpoint or a Hugging Face directory.

A Hugging Face directory (``config.json`` + safetensors weights, no tinyllm
manifest) holds a GPT-2 (``model_type`` "gpt2") or a BERT ("bert", any of the
layouts :mod:`tinyllm.models.hf_bert` reads). For fine-tuning only its
backbone is used, with the weights, config and tokenizer put in the shape of a
tinyllm checkpoint; for evaluation the whole model, head included.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...checkpoint import CheckpointError, load_checkpoint
from ...data import DataError
from ...validate import contained, load_json


@dataclass
class Source:
    """The parts of a checkpoint that fine-tuning reads (duck-types :class:`tinyllm.checkpoint.Checkpoint`)."""

    config: dict
    weights: dict
    tokenizer_json: str | None
    path: Path


def hf_model_type(path: str | Path) -> str | None:
    """``model_type`` of a Hugging Face directory's config.json, None when unreadable."""
    try:
        obj = load_json(contained(path, "config.json", path), "config.json")
    except DataError:
        return None
    return obj.get("model_type") if isinstance(obj, dict) else None


HEAD_KINDS_OF = {"SequenceClassification": "classifier", "TokenClassification": "tagger",
                 "QuestionAnswering": "span_extractor"}      # layout suffix -> tinyllm model kind


def hf_head_kind(architecture: str) -> str | None:
    """The tinyllm kind of a Hugging Face layout's head ("classifier", "tagger", "span_extractor"), or None."""
    return next((k for suffix, k in HEAD_KINDS_OF.items() if architecture.endswith("For" + suffix)), None)


def is_gpt2_head_dir(path: str | Path) -> bool:
    """A Hugging Face GPT-2 directory whose config.json names a layout with a task head."""
    try:
        obj = load_json(contained(path, "config.json", path), "config.json")
    except DataError:
        return False
    archs = obj.get("architectures") if isinstance(obj, dict) and obj.get("model_type") == "gpt2" else None
    return isinstance(archs, list) and any(isinstance(a, str) and hf_head_kind(a) for a in archs)


def _hf_model(path: Path) -> tuple[Any, Any, str, dict]:
    """(model, tokenizer, tinyllm kind, info) of a Hugging Face directory; info["backbone"]: "gpt" | "bert"."""
    kind = hf_model_type(path)
    try:
        if kind == "bert":
            from ...models.hf_bert import load_bert  # noqa: PLC0415
            model, tok, info = load_bert(path)
            backbone = "bert"
        else:
            from ...models.hf_heads import load_gpt2  # noqa: PLC0415
            model, tok, info = load_gpt2(path)
            backbone = "gpt"
    except ValueError as exc:
        raise CheckpointError(f"Hugging Face directory '{path}': {exc}") from None
    return model, tok, hf_head_kind(info["architecture"]) or backbone, {**info, "backbone": backbone}


def load_source(path: str | Path) -> Any:
    """The backbone to fine-tune: a tinyllm run/checkpoint (its best/) or a Hugging Face directory."""
    from ..restore import is_hf_dir  # noqa: PLC0415

    if not is_hf_dir(path):
        return load_checkpoint(path, prefer="best", with_optimizer=False)
    p = Path(path)
    model, tok, _, info = _hf_model(p)
    if tok is None:
        raise CheckpointError(f"Hugging Face directory '{p}' has no tokenizer (tokenizer.json or vocab.txt)")
    backbone = getattr(model, "backbone", model)
    lm_kind = info["backbone"]
    return Source({"model": {"kind": lm_kind, "config": backbone.config.to_dict()}}, backbone.state_dict(),
                  tok.to_json(), p)


def restore_hf(path: str | Path) -> Any:
    """A Hugging Face directory as a :class:`~tinyllm.train.restore.Restored` (model in eval mode)."""
    from ..restore import Restored  # noqa: PLC0415

    model, tok, kind, info = _hf_model(Path(path))
    if tok is None:
        raise CheckpointError(f"Hugging Face directory '{path}' has no tokenizer (tokenizer.json or vocab.txt)")
    model.eval()
    return Restored(model, tok, kind, None, info.get("labels"), info["backbone"])
