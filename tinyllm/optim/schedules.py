"""Learning-rate schedules: small callables ``schedule(it) -> lr``.

Use one per step: ``optimizer.set_lr(schedule(it))``. Iterations count from 0.
The warmup + cosine schedule is nanoGPT's ``get_lr``.
"""
from __future__ import annotations

import math
import numbers

from .optimizer import _nonnegative


def _iters(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


class Schedule:
    """Base class: a learning rate per iteration, ``lr = schedule(it)`` for ``it >= 0``."""

    def __call__(self, it: int) -> float:
        return self.lr_at(_iters(it, "iteration"))

    def lr_at(self, it: int) -> float:
        raise TypeError(f"{type(self).__name__} must define lr_at()")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``lr(it) = lr``."""

    def __init__(self, lr: float) -> None:
        self.lr = _nonnegative(lr, "lr", "Constant")

    def lr_at(self, it: int) -> float:
        return self.lr


class LinearWarmup(Schedule):
    """Linear warmup from 0, then constant::

        lr(it) = max_lr · it / warmup    for it < warmup
        lr(it) = max_lr                  for it >= warmup
    """

    def __init__(self, max_lr: float, warmup: int) -> None:
        self.max_lr = _nonnegative(max_lr, "max_lr", "LinearWarmup")
        self.warmup = _iters(warmup, "warmup")

    def lr_at(self, it: int) -> float:
        if it < self.warmup:
            return self.max_lr * it / self.warmup
        return self.max_lr


class _WarmupDecay(Schedule):
    """Shared part of the decaying schedules: warmup, a decay shape, then the floor."""

    def __init__(self, max_lr: float, min_lr: float, warmup: int, decay_iters: int) -> None:
        name = type(self).__name__
        self.max_lr = _nonnegative(max_lr, "max_lr", name)
        self.min_lr = _nonnegative(min_lr, "min_lr", name)
        if self.min_lr > self.max_lr:
            raise ValueError(f"{name}: min_lr ({min_lr}) must not exceed max_lr ({max_lr})")
        self.warmup = _iters(warmup, "warmup")
        self.decay_iters = _iters(decay_iters, "decay_iters")
        if self.decay_iters < self.warmup:
            raise ValueError(f"{name}: decay_iters ({decay_iters}) must be >= warmup ({warmup})")

    def lr_at(self, it: int) -> float:
        if it < self.warmup:
            return self.max_lr * it / self.warmup
        if it >= self.decay_iters:
            return self.min_lr
        ratio = (it - self.warmup) / (self.decay_iters - self.warmup)  # in [0, 1)
        return self.min_lr + self.shape(ratio) * (self.max_lr - self.min_lr)

    def shape(self, ratio: float) -> float:
        raise TypeError(f"{type(self).__name__} must define shape()")


class WarmupCosine(_WarmupDecay):
    """Linear warmup from 0, cosine decay to a floor (nanoGPT's ``get_lr``)::

        lr(it) = max_lr · it / warmup                          it < warmup
        lr(it) = min_lr + ½ (1 + cos(π r)) (max_lr - min_lr)    warmup <= it < decay_iters
        lr(it) = min_lr                                        it >= decay_iters
        where r = (it - warmup) / (decay_iters - warmup)
    """

    def shape(self, ratio: float) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * ratio))


class WarmupLinear(_WarmupDecay):
    """Linear warmup from 0, linear decay to a floor::

        lr(it) = max_lr · it / warmup                 it < warmup
        lr(it) = min_lr + (1 - r) (max_lr - min_lr)    warmup <= it < decay_iters
        lr(it) = min_lr                               it >= decay_iters
        where r = (it - warmup) / (decay_iters - warmup)
    """

    def shape(self, ratio: float) -> float:
        return 1.0 - ratio


SCHEDULES = ("constant", "warmup", "cosine", "linear")


def make_schedule(name: str, max_lr: float, min_lr: float = 0.0, warmup: int = 0,
                  decay_iters: int | None = None) -> Schedule:
    """Build a schedule by name.

    Args:
        name: "constant" (``max_lr`` always), "warmup" (:class:`LinearWarmup`),
            "cosine" (:class:`WarmupCosine`) or "linear" (:class:`WarmupLinear`).
        max_lr: the peak learning rate.
        min_lr: the floor reached at ``decay_iters`` ("cosine", "linear").
        warmup: iterations of linear warmup from 0 (not used by "constant").
        decay_iters: the iteration where the decay reaches ``min_lr`` ("cosine", "linear").

    Returns:
        A callable ``schedule(it) -> lr``.
    """
    if name == "constant":
        return Constant(max_lr)
    if name == "warmup":
        return LinearWarmup(max_lr, warmup)
    if name in ("cosine", "linear"):
        if decay_iters is None:
            raise ValueError(f"the {name!r} schedule needs decay_iters")
        cls = WarmupCosine if name == "cosine" else WarmupLinear
        return cls(max_lr, min_lr, warmup, decay_iters)
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
