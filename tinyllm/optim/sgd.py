"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay."""
from __future__ import annotations

from typing import Any, Iterable

from ..backend import get_array_module
from .optimizer import Optimizer, _nonnegative, _real


class SGD(Optimizer):
    """SGD as ``torch.optim.SGD``: momentum μ, dampening τ, weight decay λ, Nesterov.

    For each parameter p with gradient g, at step t = 1, 2, ...::

        d <- g + λ p                          (L2 weight decay)
        b <- d                   if t = 1     (momentum buffer starts at the first gradient)
        b <- μ b + (1 - τ) d     if t > 1
        d <- d + μ b  (Nesterov)   or   d <- b  (classical momentum)
        p <- p - lr d

    With μ = 0 it is plain SGD, ``p <- p - lr (g + λ p)``, and keeps no buffer.

    Args:
        params: Tensors or param-group dicts (see :class:`Optimizer`).
        lr: learning rate.
        momentum: μ >= 0.
        dampening: τ, the share of the new gradient left out of the buffer.
        weight_decay: λ >= 0 (added to the gradient, i.e. L2 regularisation).
        nesterov: look ahead along the momentum (needs μ > 0 and τ = 0).
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)

    def check_hyperparameters(self, group: dict, where: str) -> dict:
        group = super().check_hyperparameters(group, where)
        group["momentum"] = _nonnegative(group["momentum"], "momentum", where)
        group["dampening"] = _real(group["dampening"], "dampening", where)
        group["weight_decay"] = _nonnegative(group["weight_decay"], "weight_decay", where)
        if not isinstance(group["nesterov"], bool):
            raise TypeError(f"{where}: nesterov must be True or False, got {group['nesterov']!r}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{where}: Nesterov momentum requires momentum > 0 and dampening = 0")
        return group

    def init_state(self, group: dict, flat_param: Any) -> dict:
        if group["momentum"] == 0:
            return {}
        return {"momentum_buffer": get_array_module(flat_param).zeros_like(flat_param)}

    def update_one(self, param: Any, grad: Any, state: dict, step: int, group: dict) -> None:
        lr, mu, tau, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
        xp = get_array_module(param)
        t1, t2 = self._scratch(param, 2)
        d = grad
        if wd != 0:
            xp.multiply(param, wd, out=t1)
            t1 += grad                                   # d = g + λ p
            d = t1
        if mu != 0:
            if "momentum_buffer" not in state:
                raise ValueError("momentum was 0 when the optimizer was built; "
                                 "build a new optimizer to add momentum")
            buf = state["momentum_buffer"]
            if step == 1:
                buf[...] = d                             # b = d
            else:
                buf *= mu
                xp.multiply(d, 1.0 - tau, out=t2)
                buf += t2                                # b = μ b + (1 - τ) d
            if group["nesterov"]:
                xp.multiply(buf, mu, out=t2)
                t2 += d                                  # d = d + μ b
                d = t2
            else:
                d = buf                                  # d = b
        xp.multiply(d, lr, out=t2)
        param -= t2                                      # p = p - lr d
