"""Gradient clipping by global norm, for any list of tensors."""
from __future__ import annotations

import math
from typing import Iterable

from ..backend import get_array_module
from ..tensor import Tensor
from .optimizer import _real


def clip_grad_norm_(params: Iterable[Tensor] | Tensor, max_norm: float) -> float:
    """Scale gradients in place so their global L2 norm is at most ``max_norm``.

    ``norm = sqrt(Σ over every p and every entry of p.grad²)`` (tensors whose
    grad is None are skipped). When ``c = max_norm / (norm + 1e-6) < 1`` every
    gradient is multiplied by ``c``, as ``torch.nn.utils.clip_grad_norm_``.
    A non-finite norm is returned with the gradients left untouched.

    Args:
        params: tensors (or one tensor) whose ``.grad`` to clip.
        max_norm: the largest norm allowed, > 0.

    Returns:
        The norm before clipping, as a Python float.

    An optimizer's own :meth:`~tinyllm.optim.Optimizer.clip_grad_norm_` does the
    same on its flat gradient buffers in a couple of calls.
    """
    max_norm = _real(max_norm, "max_norm", "clip_grad_norm_")
    if max_norm <= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be > 0, got {max_norm}")
    params = [params] if isinstance(params, Tensor) else list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"clip_grad_norm_: item {i} is a {type(p).__name__}, not a Tensor")
    grads = [p.grad for p in params if p.grad is not None]
    total = 0.0
    for g in grads:
        flat = g.reshape(-1)
        total += float(get_array_module(g).dot(flat, flat))
    norm = math.sqrt(total)
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0 and math.isfinite(norm):
        for g in grads:
            g *= coef
    return norm
