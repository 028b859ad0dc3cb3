"""Loss functions: cross-entropy, mean squared error, binary cross-entropy on
logits, and the contrastive (InfoNCE) loss of paired embeddings.

Each takes predictions and targets and returns a scalar tensor (or, with
``reduction="none"``, one loss per element). ``cross_entropy`` is the fused op
of :mod:`tinyllm.functional`, re-exported here so every loss has one home.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_array_module
from ..functional import cross_entropy
from ..tensor import Function, Tensor, as_tensor

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


# ----------------------------------------------------------------------------- regression

def mse_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error:  l_i = (pred_i - target_i)^2,  then mean, sum or none.

    Built from primitive ops, so d l_i / d pred_i = 2 (pred_i - target_i) comes
    from the engine. ``target`` may be a tensor that requires grad (then it gets
    the opposite gradient) or a plain array; its shape must equal ``pred``'s.
    """
    _check_reduction(reduction)
    target = as_tensor(target, like=pred)
    if tuple(target.shape) != tuple(pred.shape):
        raise ValueError(f"mse_loss: target shape {tuple(target.shape)} differs from pred shape {tuple(pred.shape)}")
    diff = pred - target
    return _reduce(diff * diff, reduction)


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


# ----------------------------------------------------------------------------- contrastive

def l2_normalize(x: Tensor, axis: int = -1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_2, eps) along ``axis`` (PyTorch's ``F.normalize``), from differentiable ops.

    The clip comes before the square root, as max(||x||^2, eps^2), so a zero row
    gets a zero gradient instead of sqrt's 0/0 at the origin.
    """
    sq_norm = (x * x).sum(axis=axis, keepdims=True)                            # (..., 1)
    return x / sq_norm.clip(lo=eps * eps).sqrt()


def contrastive_loss(z_a: Tensor, z_b: Tensor, temperature: float = 0.07, symmetric: bool = True,
                     normalize: bool = True) -> Tensor:
    """InfoNCE over a batch of B paired embeddings (CLIP, SimCLR): row i of ``z_a``
    should match row i of ``z_b`` and no other row.

        s_ij = <z_a_i, z_b_j> / tau          (cosine similarity when ``normalize``)
        L_a  = -(1/B) sum_i log( exp(s_ii) / sum_k exp(s_ik) )
        L    = (L_a + L_b) / 2 when ``symmetric`` (L_b: the same over the columns of s), else L_a

    Built as a matmul and a cross-entropy of the (B, B) similarity matrix against
    targets 0..B-1, so its gradient is exact.

    Args:
        z_a, z_b: (B, D) embeddings; row i of each is a positive pair.
        temperature: tau > 0; smaller sharpens the softmax.
        symmetric: average the a->b and b->a losses.
        normalize: L2-normalize the rows first.
    """
    if z_a.ndim != 2 or tuple(z_a.shape) != tuple(z_b.shape):
        raise ValueError(f"contrastive_loss needs two (B, D) tensors of one shape, got "
                         f"{tuple(z_a.shape)} and {tuple(z_b.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if normalize:
        z_a, z_b = l2_normalize(z_a), l2_normalize(z_b)
    logits = (z_a @ z_b.T) * (1.0 / temperature)                            # (B, D) @ (D, B) -> (B, B)
    targets = get_array_module(logits.data).arange(z_a.shape[0])           # (B,) row i matches column i
    loss = cross_entropy(logits, targets)
    if symmetric:
        loss = (loss + cross_entropy(logits.T, targets)) * 0.5
    return loss


__all__ = ["BinaryCrossEntropyWithLogits", "binary_cross_entropy_with_logits", "contrastive_loss",
           "cross_entropy", "l2_normalize", "mse_loss"]
