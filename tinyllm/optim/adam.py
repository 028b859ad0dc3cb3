"""Adam and AdamW: adaptive moment estimation, with coupled or decoupled weight decay."""
from __future__ import annotations

import math
from typing import Any, Iterable

from .. import kernels
from ..backend import get_array_module
from .optimizer import Optimizer, _nonnegative, _real


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) as ``torch.optim.Adam``.

    For each parameter p with gradient g, at step t = 1, 2, ...::

        g <- g + λ p                     (L2 weight decay, Adam only)
        m <- β1 m + (1 - β1) g           (first moment: running mean of g)
        v <- β2 v + (1 - β2) g²          (second moment: running mean of g²)
        m̂ = m / (1 - β1^t),  v̂ = v / (1 - β2^t)     (bias corrections: m, v start at 0)
        p <- p - lr m̂ / (sqrt(v̂) + ε)

    Args:
        params: Tensors or param-group dicts (see :class:`Optimizer`).
        lr: learning rate.
        betas: (β1, β2), each in [0, 1).
        eps: ε >= 0, added to the denominator.
        weight_decay: λ >= 0.
    """

    decoupled = False  # AdamW: decay the weights directly instead of adding λ p to g

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def check_hyperparameters(self, group: dict, where: str) -> dict:
        group = super().check_hyperparameters(group, where)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}")
        betas = tuple(_real(b, f"beta{k + 1}", where) for k, b in enumerate(betas))
        for k, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{where}: beta{k + 1} must be in [0, 1), got {b}")
        group["betas"] = betas
        group["eps"] = _nonnegative(group["eps"], "eps", where)
        group["weight_decay"] = _nonnegative(group["weight_decay"], "weight_decay", where)
        return group

    def init_state(self, group: dict, flat_param: Any) -> dict:
        xp = get_array_module(flat_param)
        return {"exp_avg": xp.zeros_like(flat_param), "exp_avg_sq": xp.zeros_like(flat_param)}

    def update_one(self, param: Any, grad: Any, state: dict, step: int, group: dict) -> None:
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        impl = kernels.select("adam", param, grad, m, v, reference=AdamReference)
        impl.update_(param, grad, m, v, lr=lr, b1=b1, b2=b2, eps=eps, wd=wd, decoupled=self.decoupled, step=step)


class AdamReference:
    """One Adam(W) step on flat buffers, in place: the formula, for NumPy and CuPy alike.

    The kernels (``kernels/cpu/adam.py``, ``kernels/cuda/adam.py``) round every
    operation in this order, so the float32 CPU kernel gives these weights bit
    for bit (and a resumed run is exact whichever ran)."""

    def update_(self, p: Any, g: Any, m: Any, v: Any, *, lr: float, b1: float, b2: float, eps: float,
                wd: float, decoupled: bool, step: int) -> None:
        if wd != 0 and decoupled:
            p *= 1.0 - lr * wd                           # p = p (1 - lr λ)          (AdamW)
        if wd != 0 and not decoupled:
            g = p * wd + g                               # g = g + λ p               (Adam)
        m *= b1
        m += g * (1.0 - b1)                              # m = β1 m + (1 - β1) g
        v *= b2
        v += g * g * (1.0 - b2)                          # v = β2 v + (1 - β2) g²
        bias1, bias2 = 1.0 - b1 ** step, 1.0 - b2 ** step
        denom = get_array_module(p).sqrt(v) / math.sqrt(bias2) + eps           # sqrt(v̂) + ε
        p += m / denom * (-lr / bias1)                   # p = p - lr m̂ / (sqrt(v̂) + ε)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019) as ``torch.optim.AdamW``: decoupled weight decay.

    The weights shrink directly, then the plain Adam step follows (no λ p in g)::

        p <- p (1 - lr λ)
        m <- β1 m + (1 - β1) g,   v <- β2 v + (1 - β2) g²
        p <- p - lr m̂ / (sqrt(v̂) + ε),   m̂ = m / (1 - β1^t),  v̂ = v / (1 - β2^t)

    Args: as :class:`Adam`; ``weight_decay`` defaults to 0.01 (torch's default).
    """

    decoupled = True

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
