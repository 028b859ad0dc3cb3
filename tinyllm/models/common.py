"""Helpers the models share: checking token-id inputs and padding masks, inference mode.

(The AdamW parameter groups live in :mod:`tinyllm.optim.groups`.)"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from .. import backend
from ..tensor import Tensor, no_grad


def token_ids(idx: Any, name: str = "idx") -> Any:
    """``idx`` as a (B, T) integer array of the active backend; ValueError on any other shape or dtype."""
    raw = idx.data if isinstance(idx, Tensor) else idx
    arr = backend.asarray(raw)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer token ids, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have shape (B, T) with B, T >= 1, got {tuple(arr.shape)}"
                         + (": use idx[None] for a single sequence" if arr.ndim == 1 else ""))
    return arr.astype("int64", copy=False)


def padding_mask(mask: Any, shape: tuple, name: str = "attention_mask") -> Any:
    """A (B, T) mask (True/1 = real token, False/0 = padding) as a boolean array of the active backend."""
    raw = mask.data if isinstance(mask, Tensor) else mask
    arr = backend.asarray(raw)
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} like the token ids, got {tuple(arr.shape)}")
    if arr.dtype.kind not in "biu":
        raise ValueError(f"{name} must be boolean or 0/1 integers, got dtype {arr.dtype}")
    return arr.astype(bool)


def reject_extra(extra: dict[str, Any], model: str) -> None:
    """ValueError naming the first input in ``extra`` that ``model``'s ``encode`` does not take."""
    if extra:
        name = next(iter(extra))
        raise ValueError(f"{model} takes no {name} (an input of other backbones, such as BERT's segment_ids)")


@contextmanager
def inference(model: Any) -> Iterator[None]:
    """Eval mode (dropout off) and no gradient recording inside; every module's mode restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode
