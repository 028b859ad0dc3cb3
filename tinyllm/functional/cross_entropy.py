"""Cross-entropy of logits and integer targets, with label smoothing, as one graph node."""
from __future__ import annotations

from typing import Any

from .. import backend, kernels
from ..backend import get_array_module
from ..tensor import Function, Tensor


class CrossEntropyReference:
    """The formula, for NumPy and CuPy alike, per row of logits z (N, C); saves p = softmax(z)."""

    def forward(self, z: Any, t: Any, valid: Any, ignore_index: int, eps: float) -> Any:
        xp = get_array_module(z)
        self.t, self.eps, self.rows = xp.where(valid, t, 0), eps, xp.arange(z.shape[0])
        shifted = z - z.max(axis=1, keepdims=True)
        logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))          # (N, C)
        loss = -logp[self.rows, self.t]                                              # -log p_t
        if eps:
            loss = (1 - eps) * loss - eps * logp.mean(axis=1)
        self.p = xp.exp(logp)
        return loss * valid

    def backward(self, w: Any, shape: tuple) -> Any:
        """dz_n = w_n (p_n - (1 - eps) onehot(t_n) - eps / C) for row weights w (N,)."""
        dz = self.p * w[:, None]
        dz[self.rows, self.t] -= (1 - self.eps) * w
        if self.eps:
            dz -= (self.eps / self.p.shape[1]) * w[:, None]
        return dz.reshape(shape)


class CrossEntropy(Function):
    """Fused log-softmax + negative log-likelihood over the last axis (C classes):
        loss_n = -(1 - eps) log p[n, t_n] - (eps / C) sum_c log p[n, c]
    with p = softmax(logits). Rows whose target is ``ignore_index`` contribute 0.
    d loss_n / d logits_n = p_n - (1 - eps) onehot(t_n) - eps / C.
    'mean' divides by the number of rows not ignored.
    The formula is :class:`CrossEntropyReference`; ``kernels.select`` may run a
    kernel instead (``kernels/cpu/cross_entropy.py``, ``kernels/cuda/cross_entropy.py``).
    """

    def forward(self, logits, targets=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        c = logits.shape[-1]
        self.shape, self.dtype, self.reduction = logits.shape, logits.dtype, reduction
        z = logits.reshape(-1, c)                                       # (N, C)
        t = targets.reshape(-1)                                         # (N,)
        self.valid = valid = t != ignore_index
        self.impl = kernels.select("cross_entropy", z, reference=CrossEntropyReference)
        loss = self.impl.forward(z, t, valid, ignore_index, label_smoothing)   # (N,), 0 where ignored
        if backend.is_cupy_array(z):    # the count stays on the device: int() would make the CPU wait
            self.count = get_array_module(z).maximum(valid.sum(dtype=z.dtype), 1) if reduction == "mean" else 1
        else:
            self.count = max(int(valid.sum()), 1) if reduction == "mean" else 1
        if reduction == "none":
            return loss.reshape(self.shape[:-1])
        total = loss.sum()
        return total / self.count if reduction == "mean" else total

    def backward(self, g):
        w = self.valid.astype(self.dtype)                                # (N,) the weight of each row's loss
        w *= g.reshape(-1) if self.reduction == "none" else g / self.count
        return (self.impl.backward(w, self.shape),)


def cross_entropy(logits: Tensor, targets: Any, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """Cross-entropy between ``logits`` (..., C) and integer ``targets`` (...).

    Args:
        logits: unnormalized scores, (N, C) or (B, T, C).
        targets: class indices with the logits' leading shape; ``ignore_index`` rows are skipped.
        label_smoothing: eps in [0, 1): the target distribution is (1-eps) onehot + eps/C.
        reduction: "mean" (over rows not ignored), "sum" or "none".
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    t = targets.data if isinstance(targets, Tensor) else get_array_module(logits.data).asarray(targets)
    if t.shape != logits.shape[:-1]:
        raise ValueError(f"targets shape {t.shape} does not match logits shape {logits.shape} (minus classes)")
    if t.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer class indices, got {t.dtype}")
    bad = (t != ignore_index) & ((t < 0) | (t >= logits.shape[-1]))
    if backend.is_cupy_array(bad):                                      # see backend.check about waiting
        backend.check(bad, f"a target is out of range for {logits.shape[-1]} classes")
    elif bad.any():
        raise IndexError(f"target {int(t[bad].reshape(-1)[0])} is out of range for {logits.shape[-1]} classes")
    return CrossEntropy.apply(logits, targets=t, ignore_index=ignore_index,
                              label_smoothing=label_smoothing, reduction=reduction)
