"""The checkpoint a compression command reads, and the directory it writes."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import CheckpointError


@dataclass
class Source:
    """A model to compress and what its new checkpoint copies from the old one."""

    model: Any
    config: dict               # config.json of the new checkpoint, before the compression's own entry
    tokenizer_json: str
    state: dict                # iteration and validation losses, kept for ``tinyllm info``
    weights_file: Path         # the source's weights, for the size comparison
    path: Path


def load_source(path: str | os.PathLike, what: str) -> Source:
    """A tinyllm checkpoint (a run's best/) or a Hugging Face GPT-2 directory, as a float model.

    ``what`` names the command in messages ("quantize", "prune").
    """
    from ..train.restore import RUN_FORMAT, restore_model  # noqa: PLC0415  (train sits above)

    restored = restore_model(path, prefer="best")
    ck = restored.checkpoint
    if ck is None:                                   # Hugging Face: config and tokenizer from the model
        model = restored.model
        config = {"format": RUN_FORMAT, "model": {"kind": "gpt", "config": model.config.to_dict()},
                  "task": {"name": "huggingface", "source": str(path)}}
        return Source(model, config, restored.tokenizer.to_json(), {}, Path(path) / "model.safetensors", Path(path))
    if "quantization" in ck.config:
        raise CheckpointError(f"'{path}' is int8-quantized already: {what} the float checkpoint it was made from")
    state = {k: v for k, v in ck.state.items() if k in ("iteration", "best_val_loss", "last_val_loss")}
    return Source(restored.model, dict(ck.config), ck.tokenizer_json or restored.tokenizer.to_json(), state,
                  ck.path / "model.safetensors", ck.path)


def check_out(out: str | os.PathLike, source: Path, force: bool) -> Path:
    """``out`` as a Path: refused if it holds files (unless ``force``) or overlaps ``source``."""
    out, src = Path(out), source.resolve()
    if out.exists() and any(out.iterdir()) and not force:
        raise ValueError(f"--out '{out}' is not empty (use --force to replace what is there)")
    if out.resolve() == src or src in out.resolve().parents or out.resolve() in src.parents:
        raise ValueError(f"--out '{out}' would overlap the source checkpoint '{source}'")
    return out
