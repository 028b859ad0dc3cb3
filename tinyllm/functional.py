"""Fused ops with closed-form backward: one graph node where a composition of
primitives would make many. Fewer nodes means less Python overhead, fewer
temporaries and better numerics (e.g. log-softmax never forms ``log(0)``).

softmax, log_softmax, logsumexp, gelu, layer_norm, embedding, dropout,
attention, cross_entropy.
"""
from __future__ import annotations

import math
from typing import Any

from . import backend
from . import cuda_kernels as K
from .backend import get_array_module
from .ops.reduce import _axes, _keep
from .tensor import Function, Tensor

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715


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


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Numerically stable softmax along ``axis``."""
    return Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Numerically stable log-softmax along ``axis``."""
    return LogSoftmax.apply(x, axis=axis)


def logsumexp(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``axis``, stable for large |x|."""
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)


# ----------------------------------------------------------------------------- GELU

def _tanh_u(x, xp):
    """t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3), in one new buffer."""
    t = xp.multiply(x, x, out=xp.empty_like(x))                         # x^2 (out=: 0-d stays an array)
    t *= GELU_C
    t += 1
    t *= x
    t *= SQRT_2_OVER_PI                                                 # u
    return xp.tanh(t, out=t)                                            # tanh(u)


class Gelu(Function):
    """GELU, tanh approximation (GPT-2):  y = x/2 * (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3);
    dx = g * [ (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) ],  t = tanh(u).

    Elementwise ops run one NumPy pass over memory each, so both directions
    build their result in one or two buffers with ``out=`` instead of a fresh
    temporary per operator. Backward uses 1 - t^2 = (1 - t)(1 + t):
        dx = g * (1 + t)/2 * (1 + x (1 - t) du),   du = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
    Only x is saved; backward recomputes t (as PyTorch does): the MLP's widest
    activation is then kept once per layer, not twice, for a few passes more.
    """

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        if K.supported(x):
            return K.gelu_forward(x)                                    # the GPU: one fused kernel
        y = _tanh_u(x, xp)
        y += 1
        y *= x
        y *= 0.5                                                        # x/2 (1 + t)
        return y

    def backward(self, g):
        xp = get_array_module(g)
        x = self.x
        if K.supported(g, x):
            return (K.gelu_backward(x, g),)
        t = _tanh_u(x, xp)
        a = xp.multiply(x, x, out=xp.empty_like(x))
        a *= 3 * GELU_C * SQRT_2_OVER_PI
        a += SQRT_2_OVER_PI                                             # du
        a *= x
        b = xp.subtract(1, t, out=xp.empty_like(t))                    # 1 - t
        a *= b
        a += 1                                                          # 1 + x (1 - t) du
        t += 1
        a *= t
        a *= 0.5                                                        # (1 + t)/2 (1 + x (1 - t) du)
        a *= g
        return (a,)


def gelu(x: Tensor) -> Tensor:
    """Gaussian error linear unit, tanh approximation (as GPT-2)."""
    return Gelu.apply(x)


# ----------------------------------------------------------------------------- layer norm

class LayerNorm(Function):
    """Normalize the last axis, then scale and shift:
        xhat = (x - mean) / sqrt(var + eps),   y = xhat * w + b
    Backward, with C features, gxhat = g * w:
        dx = (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)) / sqrt(var + eps)
        dw = sum over rows of g * xhat,   db = sum over rows of g
    Inputs are ``(x,)`` without affine parameters, ``(x, w)`` or ``(x, w, b)``.

    Speed: sums of products (sum(xc^2) and sum(gxhat * xhat) per row, dw per
    column) are ``einsum`` contractions, which form no product array;
    full-size arithmetic goes into buffers this node owns, in place.
    """

    def forward(self, x, *wb, eps=1e-5):
        xp = get_array_module(x)
        self.w = wb[0] if wb else None
        if K.fits(x) and K.supported(*wb):                              # the GPU: one fused kernel
            y, self.xhat, self.rstd = K.layer_norm_forward(x, self.w, wb[1] if len(wb) > 1 else None, eps)
            return y
        xhat = x - x.mean(axis=-1, keepdims=True)                       # xc = x - mean
        var = xp.einsum("...i,...i->...", xhat, xhat)[..., None]        # sum of xc^2 per row
        var /= x.shape[-1]
        var += eps
        self.rstd = 1.0 / xp.sqrt(var, out=var)                         # (..., 1)
        xhat *= self.rstd
        self.xhat = xhat
        y = xhat * self.w if wb else xhat.copy()
        if len(wb) > 1:
            y += wb[1]
        return y

    def backward(self, g):
        xp = get_array_module(g)
        xhat, c = self.xhat, g.shape[-1]
        rows = tuple(range(g.ndim - 1))
        grads: list = [None]
        fused = K.fits(g) and K.supported(xhat)
        if self.w is not None:
            dw = None
            if self.needs_grad[1]:
                dw = K.column_sum(g * xhat) if fused else \
                    xp.einsum("ij,ij->j", g.reshape(-1, c), xhat.reshape(-1, c))
            grads.append(dw)
        if len(self.needs_grad) > 2 and self.needs_grad[2]:
            grads.append(K.column_sum(g) if fused else g.sum(axis=rows))  # db
        elif len(self.needs_grad) > 2:
            grads.append(None)
        if self.needs_grad[0] and fused:
            grads[0] = K.layer_norm_backward_x(g, self.w, xhat, self.rstd)
        elif self.needs_grad[0]:
            gs = g * self.w if self.w is not None else g.copy()        # gxhat
            gs *= self.rstd                                             # gxhat / sqrt(var + eps)
            m1 = gs.mean(axis=-1, keepdims=True)
            m2 = xp.einsum("...i,...i->...", gs, xhat)[..., None]
            m2 /= c
            tmp = xhat * m2                                             # xhat * mean(gxhat * xhat)
            tmp += m1
            gs -= tmp
            grads[0] = gs
        return tuple(grads)


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalization over the last axis, with optional affine ``weight`` and ``bias``."""
    if bias is not None and weight is None:
        raise ValueError("layer_norm: a bias needs a weight")
    inputs = [t for t in (x, weight, bias) if t is not None]
    return LayerNorm.apply(*inputs, eps=eps)


# ----------------------------------------------------------------------------- embedding, dropout

class Embedding(Function):
    """y[...] = W[idx[...]] (row lookup);  dW = scatter-add of g into the rows used
    (rows used twice get both gradients; the ``padding_idx`` row gets none)."""

    def forward(self, w, idx=None, padding_idx=None):
        self.shape, self.idx, self.padding_idx = w.shape, idx, padding_idx
        return w[idx]

    def backward(self, g):
        dw = backend.scatter_add(self.shape, self.idx, g)
        if self.padding_idx is not None:
            dw[self.padding_idx] = 0
        return (dw,)


def embedding(weight: Tensor, idx: Any, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (V, C) picked by the integer array ``idx`` (...) -> (..., C)."""
    idx = idx.data if isinstance(idx, Tensor) else get_array_module(weight.data).asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding indices must be integers, got {idx.dtype}")
    if idx.size and backend.is_cupy_array(idx):   # one reduction; see backend.check about waiting
        backend.check((idx < 0) | (idx >= weight.shape[0]), f"embedding index out of range [0, {weight.shape[0]})")
    elif idx.size and (int(idx.min()) < 0 or int(idx.max()) >= weight.shape[0]):
        raise IndexError(f"embedding index out of range [0, {weight.shape[0]}): "
                         f"min {int(idx.min())}, max {int(idx.max())}")
    return Embedding.apply(weight, idx=idx, padding_idx=padding_idx)


def _uniform_dtype(dtype: Any) -> Any:
    """The generators draw float32 or float64 only: float16 masks are drawn in float32."""
    return dtype if dtype == "float64" else "float32"


class Dropout(Function):
    """y = x * m / (1 - p), m_i ~ Bernoulli(1 - p) (so E[y] = x);  dx = g * m / (1 - p)."""

    def forward(self, x, p=0.5):
        xp = get_array_module(x)
        if K.supported(x):                                              # the GPU: mask drawn in the kernel
            self.p, self.stream = p, backend.rng(xp).reserve(x.size)
            return K.dropout(x, p, *self.stream)
        keep = backend.rng(xp).random(x.shape, dtype=_uniform_dtype(x.dtype)) >= p
        self.scale = keep * x.dtype.type(1.0 / (1.0 - p))
        return x * self.scale

    def backward(self, g):
        if K.supported(g):                                              # the same numbers: the same mask
            return (K.dropout(g, self.p, *self.stream),)
        return (g * self.scale,)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p); identity when not training."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return Dropout.apply(x, p=p)


# ----------------------------------------------------------------------------- attention

_MASK_CACHE: dict = {}


def causal_bias(tq: int, tk: int, dtype: Any, xp: Any) -> Any:
    """(tq, tk) additive mask: 0 where query i may see key j (j <= i + tk - tq), -inf elsewhere.

    With a KV cache the tq queries are the LAST tq positions of the tk keys.
    """
    key = (tq, tk, str(dtype), xp.__name__)
    bias = _MASK_CACHE.get(key)
    if bias is None:
        allowed = xp.tril(xp.ones((tq, tk), dtype=bool), k=tk - tq)
        bias = xp.where(allowed, 0.0, -xp.inf).astype(dtype)
        if len(_MASK_CACHE) > 64:
            _MASK_CACHE.clear()
        _MASK_CACHE[key] = bias
    return bias


class Attention(Function):
    """Scaled dot-product attention over heads, as one node:
        S = Q K^T * scale + M,   P = softmax(S),   Y = dropout(P) V
    (M is 0 where attending is allowed and -inf elsewhere). Backward:
        dV = P'^T dY,   dP = dY V^T (through the dropout mask),
        dS = P * (dP - rowsum(dP * P)),   dQ = dS K * scale,   dK = dS^T Q * scale.
    Shapes: Q (..., Tq, d), K (..., Tk, d), V (..., Tk, dv) -> Y (..., Tq, dv).
    A row with no allowed key gets all-zero weights (and output).
    """

    def forward(self, q, k, v, scale=1.0, causal=False, mask=None, dropout_p=0.0, weights_out=None):
        xp = get_array_module(q)
        self.q, self.k, self.v, self.scale = q, k, v, scale
        self.fused = K.supported(q) and k.shape[-2] <= K.MAX_ROW
        if self.fused:                                      # the GPU: scale, mask and softmax in one kernel
            s = q @ k.swapaxes(-1, -2)                                  # (..., Tq, Tk)
            if mask is not None:
                s = xp.where(mask, s, -xp.inf)
            K.attention_softmax_(s, causal, scale)
        else:
            s = backend.small_matmul(q * scale, k.swapaxes(-1, -2))    # (..., Tq, Tk), scale on the smaller Q
            s = self._softmax_(s, causal, mask, xp)
        self.p = s                                                    # (..., Tq, Tk)
        if weights_out is not None:
            weights_out.append(s)
        self.drop = self.stream = None
        if dropout_p > 0.0 and K.supported(s):                          # the GPU: mask drawn in the kernel
            self.dropout_p, self.stream = dropout_p, backend.rng(xp).reserve(s.size)
            s = K.dropout(s, dropout_p, *self.stream)
        elif dropout_p > 0.0:
            keep = backend.rng(xp).random(s.shape, dtype=_uniform_dtype(s.dtype)) >= dropout_p
            self.drop = keep * s.dtype.type(1.0 / (1.0 - dropout_p))
            s = s * self.drop
        self.pd = s
        return backend.small_matmul(s, v)                             # (..., Tq, dv)

    @staticmethod
    def _softmax_(s, causal, mask, xp):
        """The reference: masked scores -> attention weights, in place where it can; returns them."""
        if causal:
            s += causal_bias(s.shape[-2], s.shape[-1], s.dtype, xp)
        if mask is not None:
            s = xp.where(mask, s, -xp.inf)
        m = s.max(axis=-1, keepdims=True)
        if causal or mask is not None:
            xp.copyto(m, 0, where=~xp.isfinite(m))                     # fully masked rows ...
        s -= m
        xp.exp(s, out=s)
        denom = s.sum(axis=-1, keepdims=True)
        if causal or mask is not None:
            xp.copyto(denom, 1, where=denom == 0)                     # ... get zero weights
        s *= 1 / denom
        return s

    def backward(self, g):
        xp = get_array_module(g)
        q, k, v, p, scale = self.q, self.k, self.v, self.p, self.scale
        gv = backend.small_matmul(self.pd.swapaxes(-1, -2), g) if self.needs_grad[2] else None
        dp = backend.small_matmul(g, v.swapaxes(-1, -2))               # (..., Tq, Tk)
        if self.drop is not None:
            dp *= self.drop
        elif self.stream is not None:
            dp = K.dropout(dp, self.dropout_p, *self.stream)
        if self.fused:                                                  # the GPU: dS * scale, one kernel
            ds = K.attention_softmax_backward_(dp, p, scale)
            gq = ds @ k if self.needs_grad[0] else None
            gk = ds.swapaxes(-1, -2) @ q if self.needs_grad[1] else None
            return gq, gk, gv
        ds = dp
        ds -= xp.einsum("...i,...i->...", dp, p)[..., None]            # rowsum(dP * P), no product array
        ds *= p                                                       # dS (without the scale)
        gq = backend.small_matmul(ds, k * scale) if self.needs_grad[0] else None
        gk = backend.small_matmul(ds.swapaxes(-1, -2), q * scale) if self.needs_grad[1] else None
        return gq, gk, gv


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Any = None, causal: bool = False,
              dropout_p: float = 0.0, scale: float | None = None, weights_out: list | None = None) -> Tensor:
    """softmax(Q K^T / sqrt(d) + mask) V for every head at once.

    Args:
        q, k, v: (..., T, d) query, key and value tensors (e.g. (B, nh, T, hs)).
        mask: boolean array broadcastable to (..., Tq, Tk); True where attending is allowed.
        causal: forbid query i from seeing keys after it (aligned at the end with a KV cache).
        dropout_p: dropout on the attention weights (training only; pass 0 in eval).
        scale: defaults to 1/sqrt(d).
        weights_out: if a list, the attention weights (..., Tq, Tk) are appended to it.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if mask is not None:
        mask = mask.data if isinstance(mask, Tensor) else mask
        mask = get_array_module(q.data).asarray(mask, dtype=bool)
    return Attention.apply(q, k, v, scale=scale, causal=causal, mask=mask,
                           dropout_p=dropout_p, weights_out=weights_out)


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
        rows = xp.arange(z.shape[0])
        shifted = z - z.max(axis=1, keepdims=True)
        e = xp.exp(shifted)
        sumexp = e.sum(axis=1, keepdims=True)
        logp_t = shifted[rows, t] - xp.log(sumexp[:, 0])                # (N,)
        loss = -logp_t
        if label_smoothing:
            mean_logp = shifted.mean(axis=1) - xp.log(sumexp[:, 0])
            loss = (1 - label_smoothing) * loss - label_smoothing * mean_logp
        loss = loss * valid
        e /= sumexp                                                     # e is now p (N, C)
        self.p, self.t, self.rows, self.valid, self.eps = e, t, rows, valid, label_smoothing
        self.count = max(int(valid.sum()), 1) if reduction == "mean" else 1
        if reduction == "none":
            return loss.reshape(self.shape[:-1])
        total = loss.sum()
        return total / self.count if reduction == "mean" else total

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
        if self.p is None:                                              # the fused forward ran
            w = self.valid.astype(self.z.dtype)
            w *= g.reshape(-1) if self.reduction == "none" else g / self.count
            return (K.cross_entropy_backward(self.z, self.t, self.mx, self.ls, w, self.eps).reshape(self.shape),)
        c = self.p.shape[1]
        w = self.valid.astype(self.p.dtype)                             # (N,) row weights
        w *= g.reshape(-1) if self.reduction == "none" else g / self.count
        dz = self.p * w[:, None]                                        # (N, C), p is kept intact
        dz[self.rows, self.t] -= (1 - self.eps) * w
        if self.eps:
            dz -= (self.eps / c) * w[:, None]
        return (dz.reshape(self.shape),)


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
