"""Helpers the models share: checking token-id inputs and masks, and the
AdamW parameter groups (which weights get weight decay)."""
from __future__ import annotations

from typing import Any

from .. import backend
from ..nn import Module
from ..tensor import Tensor


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


def decay_groups(module: Module, weight_decay: float) -> list[dict]:
    """Two AdamW parameter groups, nanoGPT's rule: every trainable parameter with
    ndim >= 2 (matmul weights, embeddings) decays; biases and LayerNorm gains
    (ndim 1) do not. Frozen parameters (``requires_grad=False``) are left out."""
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    decay = [p for _, p in named if p.ndim >= 2]
    no_decay = [p for _, p in named if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay, "name": "decay"},
              {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]
    return [g for g in groups if g["params"]]


def configure_adamw(module: Module, lr: float, weight_decay: float, betas: tuple = (0.9, 0.95),
                    eps: float = 1e-8) -> Any:
    """An AdamW over ``module``'s trainable parameters, grouped by :func:`decay_groups`."""
    from ..optim import AdamW  # noqa: PLC0415  (optim is independent of the models; import on use)
    return AdamW(decay_groups(module, weight_decay), lr=lr, betas=tuple(betas), eps=eps,
                 weight_decay=weight_decay)
