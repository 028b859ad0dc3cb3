"""Loss functions, PyTorch's names, arguments and reductions.

- regression: ``mse_loss``, ``l1_loss``, ``smooth_l1_loss``, ``huber_loss``
- classification: ``cross_entropy`` (class indices, the fused op of
  :mod:`.softmax`, or class probabilities), ``nll_loss`` on log-probabilities,
  ``binary_cross_entropy`` on probabilities, ``binary_cross_entropy_with_logits``
  (one fused, stable node)

Each takes predictions and targets and returns a scalar tensor (or, with
``reduction="none"``, one loss per element). Classes are on the LAST axis
((N, C) or (B, T, C)), where PyTorch puts them on axis 1; for (N, C) the two agree.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..backend import get_array_module
from ..tensor import Function, Tensor, as_tensor
from .cross_entropy import cross_entropy as _cross_entropy_indices
from .softmax import log_softmax

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _target(pred: Tensor, target: Any, name: str) -> Tensor:
    """``target`` as a tensor of pred's shape and floating dtype (a tensor that requires grad keeps it)."""
    target = as_tensor(target, like=pred)
    if tuple(target.shape) != tuple(pred.shape):
        raise ValueError(f"{name}: target shape {tuple(target.shape)} differs from input shape {tuple(pred.shape)}")
    return target if target.dtype == pred.dtype else target.astype(pred.dtype)


# ----------------------------------------------------------------------------- regression

def mse_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error:  l_i = (pred_i - target_i)^2,  then mean, sum or none.

    Built from primitive ops, so d l_i / d pred_i = 2 (pred_i - target_i) comes
    from the engine. ``target`` may be a tensor that requires grad (then it gets
    the opposite gradient) or a plain array; its shape must equal ``pred``'s.
    """
    _check_reduction(reduction)
    diff = pred - _target(pred, target, "mse_loss")
    return _reduce(diff * diff, reduction)


def l1_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error:  l_i = |pred_i - target_i|  (gradient sign(pred_i - target_i), 0 at a tie)."""
    _check_reduction(reduction)
    return _reduce((pred - _target(pred, target, "l1_loss")).abs(), reduction)


def smooth_l1_loss(pred: Tensor, target: Any, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """l_i = d^2 / (2 beta) where |d| < beta, else |d| - beta / 2  (d = pred_i - target_i);
    ``beta = 0`` is the L1 loss."""
    _check_reduction(reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    d = (pred - _target(pred, target, "smooth_l1_loss")).abs()
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(ops.where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta), reduction)


def huber_loss(pred: Tensor, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """l_i = d^2 / 2 where |d| < delta, else delta (|d| - delta / 2):  delta * smooth_l1 with beta = delta."""
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    return smooth_l1_loss(pred, target, reduction, beta=delta) * delta


# ----------------------------------------------------------------------------- classification

def nll_loss(log_probs: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices:  l_n = -w[t_n] log_probs[n, t_n].

    ``log_probs`` is (..., C) (e.g. ``log_softmax`` output), ``target`` the integer
    classes of its leading shape; ``ignore_index`` rows give 0; 'mean' divides by
    the sum of the weights of the rows not ignored, as PyTorch does.
    """
    _check_reduction(reduction)
    xp = get_array_module(log_probs.data)
    t = target.data if isinstance(target, Tensor) else xp.asarray(target)
    c = log_probs.shape[-1]
    if t.shape != log_probs.shape[:-1]:
        raise ValueError(f"nll_loss: target shape {t.shape} does not match input shape {log_probs.shape} "
                         "(minus the class axis)")
    if t.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must be integer class indices, got {t.dtype}")
    valid = t != ignore_index
    if bool(((t < 0) | (t >= c))[valid].any()):
        raise IndexError(f"nll_loss: a target is out of range for {c} classes")
    safe = xp.where(valid, t, 0)
    w = xp.ones(c, dtype=log_probs.dtype) if weight is None else \
        xp.asarray(weight.data if isinstance(weight, Tensor) else weight, dtype=log_probs.dtype)
    row_w = w[safe] * valid                                                     # (...,) weight of each row
    picked = ops.gather(log_probs, -1, safe[..., None])[..., 0]                 # log p[n, t_n]
    loss = -picked * Tensor._wrap(row_w)
    if reduction == "mean":
        return loss.sum() / max(float(row_w.sum()), np.finfo(np.float32).tiny)
    return _reduce(loss, reduction)


def _cross_entropy_probs(logits: Tensor, target: Tensor, label_smoothing: float, reduction: str) -> Tensor:
    """-sum_c q_c log softmax(z)_c with q = (1 - eps) target + eps / C; 'mean' over rows."""
    c = logits.shape[-1]
    q = target if not label_smoothing else target * (1 - label_smoothing) + label_smoothing / c
    loss = -(q * log_softmax(logits, dim=-1)).sum(-1)                 # (...,)
    return _reduce(loss, reduction)


def cross_entropy(logits: Tensor, target: Any = None, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean", *, targets: Any = None) -> Tensor:
    """Cross-entropy of ``logits`` (..., C) against integer classes (...) (the fused op, with
    ``ignore_index``) or against class probabilities (..., C), as PyTorch's ``F.cross_entropy``
    (``targets=`` is this engine's older name for ``target``)."""
    target = targets if target is None else target
    if target is None:
        raise TypeError("cross_entropy needs a target")
    is_probs = (isinstance(target, Tensor) and target.dtype.kind == "f") or \
        (not isinstance(target, Tensor) and np.asarray(target).dtype.kind == "f")
    if not is_probs:
        return _cross_entropy_indices(logits, target, ignore_index=ignore_index, label_smoothing=label_smoothing,
                                      reduction=reduction)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    return _cross_entropy_probs(logits, _target(logits, target, "cross_entropy"), label_smoothing, reduction)


class BinaryCrossEntropy(Function):
    """l = -[y max(log p, -100) + (1 - y) max(log(1 - p), -100)] on probabilities p (PyTorch's clamp);
    dl/dp = (p - y) / max(p (1 - p), 1e-12),  dl/dy = max(log(1 - p), -100) - max(log p, -100)."""

    def forward(self, p, y):
        xp = get_array_module(p)
        with np.errstate(divide="ignore"):
            self.log_p = xp.maximum(xp.log(p), -100.0)
            self.log_q = xp.maximum(xp.log1p(-p), -100.0)
        self.p, self.y = p, y
        return -(y * self.log_p + (1 - y) * self.log_q)

    def backward(self, g):
        xp = get_array_module(g)
        dp = g * (self.p - self.y) / xp.maximum(self.p * (1 - self.p), 1e-12) if self.needs_grad[0] else None
        dy = g * (self.log_q - self.log_p) if self.needs_grad[1] else None
        return dp, dy


def binary_cross_entropy(probs: Tensor, target: Any, weight: Any = None, reduction: str = "mean") -> Tensor:
    """l_i = -w_i [y_i log p_i + (1 - y_i) log(1 - p_i)] on probabilities p in [0, 1]; each log is
    clamped at -100 as in PyTorch, so p = 0 or 1 gives a finite loss and gradient. Prefer
    :func:`binary_cross_entropy_with_logits` on raw scores (it is stable)."""
    _check_reduction(reduction)
    y = _target(probs, target, "binary_cross_entropy")
    p = probs.data
    if bool(((p < 0) | (p > 1)).any()):
        raise ValueError("binary_cross_entropy: the input must be probabilities in [0, 1] (for raw scores use "
                         "binary_cross_entropy_with_logits)")
    loss = BinaryCrossEntropy.apply(probs, y)
    if weight is not None:
        loss = loss * as_tensor(weight, like=probs)
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- binary classification

class BinaryCrossEntropyWithLogits(Function):
    """Binary cross-entropy of logits x against targets y in [0, 1], as one node.

    With sigma = sigmoid and pos_weight w (1 when not given):
        l = -[w y log sigma(x) + (1 - y) log(1 - sigma(x))]
          = (1 - y) x + (1 + (w - 1) y) softplus(-x)
    and softplus(-x) = log(1 + e^{-x}) = max(-x, 0) + log(1 + e^{-|x|}), which never
    overflows (with w = 1 this is  max(x, 0) - x y + log(1 + e^{-|x|})). Backward:
        dl/dx = (1 - y) - (1 + (w - 1) y) sigma(-x)      (= sigma(x) - y when w = 1)
        dl/dy = -x + (w - 1) softplus(-x)
    'mean' divides by the number of elements.
    """

    def forward(self, x, y, pos_weight=None, reduction="mean"):
        xp = get_array_module(x)
        softplus_neg = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))     # log(1 + e^{-x}), stable
        coef = 1.0 if pos_weight is None else 1 + (pos_weight - 1) * y        # 1 + (w - 1) y
        loss = (1 - y) * x + coef * softplus_neg
        self.x, self.y, self.coef, self.pos_weight, self.reduction = x, y, coef, pos_weight, reduction
        self.softplus_neg, self.shape = softplus_neg, x.shape
        if reduction == "none":
            return loss
        total = loss.sum()
        return total / max(loss.size, 1) if reduction == "mean" else total

    def backward(self, g):
        xp = get_array_module(g)
        if self.reduction == "mean":
            g = g / max(self.x.size, 1)
        x, y = self.x, self.y
        dx = dy = None
        if self.needs_grad[0]:
            sig_neg = 0.5 * (1 - xp.tanh(0.5 * x))                            # sigma(-x), no overflow
            dx = g * ((1 - y) - self.coef * sig_neg)
        if self.needs_grad[1]:
            dy = -x if self.pos_weight is None else -x + (self.pos_weight - 1) * self.softplus_neg
            dy = g * dy
        return dx, dy


def binary_cross_entropy_with_logits(logits: Tensor, targets: Any, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable step (see :class:`BinaryCrossEntropyWithLogits`).

    Args:
        logits: raw scores x, any shape.
        targets: probabilities y in [0, 1], same shape (a tensor that requires grad gets one).
        reduction: "mean" (over all elements), "sum" or "none".
        pos_weight: weight w of the positive term, broadcastable to the last axis (e.g. (C,)):
            w > 1 raises recall on rare positive classes. Not learned.
    """
    _check_reduction(reduction)
    targets = as_tensor(targets, like=logits)
    if tuple(targets.shape) != tuple(logits.shape):
        raise ValueError(f"binary_cross_entropy_with_logits: targets shape {tuple(targets.shape)} "
                         f"differs from logits shape {tuple(logits.shape)}")
    if targets.dtype != logits.dtype:
        targets = targets.astype(logits.dtype)                              # e.g. integer 0/1 labels
    if pos_weight is not None:
        pw = pos_weight.data if isinstance(pos_weight, Tensor) else pos_weight
        pos_weight = get_array_module(logits.data).asarray(pw, dtype=logits.dtype)
        if not _broadcasts_to(pos_weight.shape, tuple(logits.shape)):
            raise ValueError(f"pos_weight shape {pos_weight.shape} does not broadcast to logits shape "
                             f"{tuple(logits.shape)}")
    return BinaryCrossEntropyWithLogits.apply(logits, targets, pos_weight=pos_weight, reduction=reduction)


__all__ = ["BinaryCrossEntropy", "BinaryCrossEntropyWithLogits", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "cross_entropy", "huber_loss", "l1_loss", "mse_loss", "nll_loss",
           "smooth_l1_loss"]
