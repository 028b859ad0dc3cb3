"""Parameter groups for AdamW: which weights get weight decay.

nanoGPT's rule, used for every model and head in tinyllm: a trainable
parameter with ndim >= 2 (a matmul weight, an embedding table) decays;
biases and LayerNorm gains (ndim 1) do not, since shrinking them toward 0
only fights the normalization. Decoupled decay (Loshchilov & Hutter, 2019)
then applies ``w <- w - lr * wd * w`` to the first group alone.
"""
from __future__ import annotations

from typing import Any

from .adam import AdamW


def decay_groups(module: Any, weight_decay: float) -> list[dict]:
    """Two parameter groups of ``module`` (anything with ``named_parameters()``):
    ``decay`` (ndim >= 2, ``weight_decay``) and ``no_decay`` (ndim < 2, 0.0).

    Frozen parameters (``requires_grad=False``) are left out, and so is an
    empty group. Raises ValueError when nothing is trainable.
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    decay = [p for _, p in named if p.ndim >= 2]
    no_decay = [p for _, p in named if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay, "name": "decay"},
              {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]
    return [g for g in groups if g["params"]]


def configure_adamw(module: Any, lr: float, weight_decay: float, betas: tuple = (0.9, 0.95),
                    eps: float = 1e-8) -> AdamW:
    """An AdamW over ``module``'s trainable parameters, grouped by :func:`decay_groups`."""
    return AdamW(decay_groups(module, weight_decay), lr=lr, betas=tuple(betas), eps=eps,
                 weight_decay=weight_decay)
