"""Gradient clipping by global norm: one implementation, for any list of arrays.

:func:`clip_grad_norm_` clips the gradients of any tensors;
:meth:`tinyllm.optim.Optimizer.clip_grad_norm_` calls :func:`clip_arrays_` on its
flat gradient buffers (one array per parameter group), so a step clips in a
couple of whole-buffer calls.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor


def _check_max_norm(max_norm: Any) -> float:
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise TypeError(f"clip_grad_norm_: max_norm must be a real number, got {max_norm!r}")
    max_norm = float(max_norm)
    if not math.isfinite(max_norm):
        raise ValueError(f"clip_grad_norm_: max_norm must be finite, got {max_norm}")
    if max_norm <= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be > 0, got {max_norm}")
    return max_norm


def clip_arrays_(grads: Sequence[Any], max_norm: float, sync: bool = True) -> Any:
    """Scale the arrays ``grads`` in place so their global L2 norm is at most ``max_norm``.

    ``norm = sqrt(Σ over every array and every entry of g²)``. When
    ``c = max_norm / (norm + 1e-6) < 1`` every array is multiplied by ``c``, as
    ``torch.nn.utils.clip_grad_norm_``. A non-finite norm is returned with the
    arrays left untouched.

    Returns the norm before clipping: a Python float on the CPU; on the GPU a
    float too unless ``sync=False``, which keeps the whole computation on the
    device and returns a 0-d device array (the CPU does not wait for the GPU).
    """
    max_norm = _check_max_norm(max_norm)
    grads = [g for g in grads if g.size]
    if all(get_array_module(g) is np for g in grads):
        norm = math.sqrt(sum(float(np.dot(f, f)) for f in (g.reshape(-1) for g in grads)))
        coef = max_norm / (norm + 1e-6)
        if coef < 1.0 and math.isfinite(norm):
            for g in grads:
                g *= coef
        return norm
    xp = get_array_module(grads[0])                          # the GPU: no value leaves the device
    norm = xp.sqrt(sum(xp.dot(f, f).astype(np.float64) for f in (g.reshape(-1) for g in grads)))
    coef = max_norm / (norm + 1e-6)
    coef = xp.where(xp.isfinite(norm) & (coef < 1.0), coef, 1.0)
    for g in grads:
        g *= coef.astype(g.dtype)
    return float(norm) if sync else norm


def clip_grad_norm_(params: Iterable[Tensor] | Tensor, max_norm: float) -> float:
    """Scale gradients in place so their global L2 norm is at most ``max_norm``.

    The rule of :func:`clip_arrays_` over every ``p.grad`` (tensors whose grad is
    None are skipped).

    Args:
        params: tensors (or one tensor) whose ``.grad`` to clip.
        max_norm: the largest norm allowed, > 0.

    Returns:
        The norm before clipping, as a Python float.
    """
    max_norm = _check_max_norm(max_norm)
    params = [params] if isinstance(params, Tensor) else list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"clip_grad_norm_: item {i} is a {type(p).__name__}, not a Tensor")
    return clip_arrays_([p.grad for p in params if p.grad is not None], max_norm)
