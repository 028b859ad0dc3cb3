"""The softmax family and cross-entropy: softmax, log_softmax, logsumexp, cross_entropy.

Each is one graph node with a closed-form backward, stable for logits of +-1e4
(the row max is subtracted before exponentiating).
"""
from __future__ import annotations

from typing import Any

from .. import backend
import numpy as np

from .. import cpu_kernels as C
from .. import cuda_kernels as K
from ..backend import get_array_module
from ..ops.axes import normalize_axis, pick
from ..ops.reduce import _axes, _keep
from ..tensor import Function, Tensor
from .rows import kernel_rows, over_rows

# ----------------------------------------------------------------------------- softmax family

class Softmax(Function):
    """y_i = e^{x_i - m} / sum_j e^{x_j - m}  (m = max_j x_j, for stability);
    dx = y * (g - sum_j g_j y_j)."""

    def forward(self, x, axis=-1):
        xp = get_array_module(x)
        self.axis = axis
        if K.fits(x) and axis in (-1, x.ndim - 1):
            self.y = K.softmax_lastaxis(x)                              # the GPU: one fused kernel
            return self.y
        y = x - x.max(axis=axis, keepdims=True)
        xp.exp(y, out=y)
        y /= y.sum(axis=axis, keepdims=True)
        self.y = y
        return y

    def backward(self, g):
        y = self.y
        if K.fits(g) and self.axis in (-1, g.ndim - 1):
            return (K.softmax_lastaxis_backward(g, y),)
        return (y * (g - (g * y).sum(axis=self.axis, keepdims=True)),)


class LogSoftmax(Function):
    """y_i = x_i - logsumexp(x);  dx = g - softmax(x) * sum_j g_j."""

    def forward(self, x, axis=-1):
        xp = get_array_module(x)
        self.axis = axis
        shifted = x - x.max(axis=axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return self.y

    def backward(self, g):
        xp = get_array_module(g)
        return (g - xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True),)


class LogSumExp(Function):
    """y = m + log sum_i e^{x_i - m}  (m = max_i x_i);  dx_i = g * e^{x_i - y} = g * softmax(x)_i."""

    def forward(self, x, axis=None, keepdims=False):
        xp = get_array_module(x)
        self.x, self.axes, self.keepdims = x, _axes(axis, x.ndim), keepdims
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        self.y = m + xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True))
        return self.y if keepdims else self.y.reshape([n for i, n in enumerate(self.y.shape) if i not in self.axes])

    def backward(self, g):
        xp = get_array_module(g)
        return (_keep(g, self.axes, self.keepdims) * xp.exp(self.x - self.y),)


def softmax(x: Tensor, axis: int | None = None, dim: int | None = None) -> Tensor:
    """Numerically stable softmax along ``axis`` (or PyTorch's ``dim``; -1 by default)."""
    axis = normalize_axis(-1 if pick(dim, axis) is None else pick(dim, axis), x.ndim, "softmax", x.shape)
    return Softmax.apply(x, axis=axis) if x.ndim else Softmax.apply(x.reshape(1), axis=0).reshape(())


def log_softmax(x: Tensor, axis: int | None = None, dim: int | None = None) -> Tensor:
    """Numerically stable log-softmax along ``axis`` (or PyTorch's ``dim``; -1 by default)."""
    axis = normalize_axis(-1 if pick(dim, axis) is None else pick(dim, axis), x.ndim, "log_softmax", x.shape)
    return LogSoftmax.apply(x, axis=axis) if x.ndim else LogSoftmax.apply(x.reshape(1), axis=0).reshape(())


def logsumexp(x: Tensor, axis: Any = None, keepdims: bool = False, dim: Any = None, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``axis`` (or ``dim``), stable for large |x|."""
    return LogSumExp.apply(x, axis=pick(dim, axis), keepdims=keepdims or keepdim)

# ----------------------------------------------------------------------------- cross-entropy

class CrossEntropy(Function):
    """Fused log-softmax + negative log-likelihood over the last axis (C classes):
        loss_n = -(1 - eps) log p[n, t_n] - (eps / C) sum_c log p[n, c]
    with p = softmax(logits). Rows whose target is ``ignore_index`` contribute 0.
    d loss_n / d logits_n = p_n - (1 - eps) onehot(t_n) - eps / C.
    'mean' divides by the number of rows not ignored.
    """

    def forward(self, logits, targets=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        xp = get_array_module(logits)
        c = logits.shape[-1]
        self.shape, self.reduction = logits.shape, reduction
        z = logits.reshape(-1, c)                                       # (N, C)
        t = targets.reshape(-1)                                         # (N,)
        valid = t != ignore_index
        if K.supported(z):
            return self._forward_fused(z, t, valid, ignore_index, label_smoothing, reduction)
        t = xp.where(valid, t, 0)
        if C.supported(z):                                              # the CPU: one compiled loop
            return self._forward_kernel(z, t, valid, label_smoothing, reduction)
        n = z.shape[0]
        rows = xp.arange(n)
        p = xp.empty(z.shape, dtype=z.dtype)
        logp_t, mean_logp = xp.empty(n, dtype=z.dtype), xp.empty(n, dtype=z.dtype)

        def block(r):                                                   # rows r, on every core
            e = xp.subtract(z[r], z[r].max(axis=1, keepdims=True), out=p[r])   # shifted
            logp_t[r] = e[rows[r] - r.start, t[r]]
            if label_smoothing:
                mean_logp[r] = e.mean(axis=1)
            xp.exp(e, out=e)
            sumexp = e.sum(axis=1, keepdims=True)
            log_sumexp = xp.log(sumexp[:, 0])
            logp_t[r] -= log_sumexp
            if label_smoothing:
                mean_logp[r] -= log_sumexp
            e /= sumexp                                                 # p (rows, C)

        over_rows(block, n, z.size, xp)
        loss = -logp_t
        if label_smoothing:
            loss = (1 - label_smoothing) * loss - label_smoothing * mean_logp
        loss = loss * valid
        self.p, self.t, self.rows, self.valid, self.eps = p, t, rows, valid, label_smoothing
        self.count = max(int(valid.sum()), 1) if reduction == "mean" else 1
        if reduction == "none":
            return loss.reshape(self.shape[:-1])
        total = loss.sum()
        return total / self.count if reduction == "mean" else total

    def _forward_kernel(self, z, t, valid, eps, reduction):
        """The CPU kernel: per-row losses and logsumexp; backward recomputes p from them."""
        z = np.ascontiguousarray(z)
        n = z.shape[0]
        loss, mx, log_s = (np.empty(n, dtype=np.float32) for _ in range(3))
        kernel_rows(lambda r: C.kernels().cross_entropy_forward(z[r], t[r], valid[r], np.float32(eps),
                                                                loss[r], mx[r], log_s[r]), n, z.size, 1.0)
        self.z, self.t, self.valid, self.eps, self.mx, self.ls, self.p = z, t, valid, eps, mx, log_s, None
        self.count = max(int(valid.sum()), 1) if reduction == "mean" else 1
        if reduction == "none":
            return loss.reshape(self.shape[:-1])
        total = loss.sum()
        return total / np.float32(self.count) if reduction == "mean" else total

    def _backward_kernel(self, g):
        w = self.valid.astype(np.float32)
        w *= g.reshape(-1) if self.reduction == "none" else g / np.float32(self.count)
        dz = np.empty(self.shape, dtype=np.float32)                     # its own array: no copy on the leaf
        dz2 = dz.reshape(self.z.shape)
        kernel_rows(lambda r: C.kernels().cross_entropy_backward(self.z[r], self.t[r], self.mx[r], self.ls[r], w[r],
                                                                 np.float32(self.eps), dz2[r]),
                    dz2.shape[0], dz2.size, 0.85)
        return (dz,)

    def _forward_fused(self, z, t, valid, ignore_index, eps, reduction):
        """The GPU: one kernel for the per-row losses; backward recomputes p from z and logsumexp(z)."""
        xp = get_array_module(z)
        loss, self.mx, self.ls = K.cross_entropy_forward(z, t, ignore_index, eps)
        self.z, self.t, self.valid, self.eps, self.p = z, t, valid, eps, None
        # The count stays on the device: int() here would make the CPU wait for the GPU.
        self.count = xp.maximum(valid.sum(dtype=z.dtype), 1) if reduction == "mean" else 1
        if reduction == "none":
            return loss.reshape(self.shape[:-1])
        total = loss.sum()
        return total / self.count if reduction == "mean" else total

    def backward(self, g):
        if self.p is None and C.supported(self.z):                      # the CPU kernel ran
            return self._backward_kernel(g)
        if self.p is None:                                              # the fused forward ran
            w = self.valid.astype(self.z.dtype)
            w *= g.reshape(-1) if self.reduction == "none" else g / self.count
            return (K.cross_entropy_backward(self.z, self.t, self.mx, self.ls, w, self.eps).reshape(self.shape),)
        xp = get_array_module(self.p)
        c = self.p.shape[1]
        w = self.valid.astype(self.p.dtype)                             # (N,) row weights
        w *= g.reshape(-1) if self.reduction == "none" else g / self.count
        dz = xp.empty(self.shape, dtype=xp.result_type(self.p, w))
        dz2 = dz.reshape(self.p.shape)                                  # returned: dz, which has no base

        def block(r):                                                   # rows r, on every core
            d = xp.multiply(self.p[r], w[r, None], out=dz2[r])          # p is kept intact
            d[self.rows[r] - r.start, self.t[r]] -= (1 - self.eps) * w[r]
            if self.eps:
                d -= (self.eps / c) * w[r, None]

        over_rows(block, dz2.shape[0], dz2.size, xp)
        return (dz,)


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
