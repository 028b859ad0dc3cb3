"""Weight initialization, in place.

Values are drawn from the seeded NumPy generator (``tinyllm.manual_seed``)
whatever the backend, so a seed gives the same model on CPU and GPU.

GPT-2's scheme (:func:`gpt2_init_`): every Linear and Embedding weight
~ N(0, 0.02^2), biases 0, LayerNorm weight 1 and bias 0, and the residual
projections (``c_proj``) ~ N(0, (0.02 / sqrt(2 * n_layer))^2), so the
variance of the residual stream does not grow with depth.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor


def _fill(t: Tensor, values: np.ndarray) -> Tensor:
    mod = backend.get_array_module(t.data)
    t.data[...] = mod.asarray(values, dtype=t.dtype)
    return t


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with samples of N(mean, std^2)."""
    return _fill(t, backend.rng(np).normal(mean, std, size=t.shape))


def uniform_(t: Tensor, low: float = 0.0, high: float = 1.0) -> Tensor:
    """Fill with samples of U(low, high)."""
    return _fill(t, backend.rng(np).uniform(low, high, size=t.shape))


def zeros_(t: Tensor) -> Tensor:
    t.data[...] = 0
    return t


def ones_(t: Tensor) -> Tensor:
    t.data[...] = 1
    return t


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio)."""
    fan_out, fan_in = t.shape[0], int(np.prod(t.shape[1:]))
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a)


def gpt2_init_(module: Any, n_layer: int, std: float = 0.02) -> None:
    """Apply GPT-2's initialization to every parameter of ``module`` (see the module docstring).

    Each sub-module is treated by the parameters it owns, so this module needs
    no layer classes (and the layers, which use it, need not be imported here):
    a matrix ``weight`` (Linear, Embedding) ~ N(0, std^2), N(0, resid_std^2) in
    ``c_proj``; a vector ``weight`` (a norm's gain) = 1; a ``bias`` = 0.
    """
    resid_std = std / math.sqrt(2 * n_layer)
    for name, m in module.named_modules():
        own = set(getattr(m, "_param_names", ()))
        weight = getattr(m, "weight", None) if "weight" in own else None
        bias = getattr(m, "bias", None) if "bias" in own else None
        if weight is not None and weight.ndim >= 2:
            normal_(weight, 0.0, resid_std if name.endswith("c_proj") else std)
        elif weight is not None:
            ones_(weight)
        if bias is not None:
            zeros_(bias)
