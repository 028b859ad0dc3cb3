"""Fused elementwise and row-wise ops: GELU, layer norm, embedding lookup, dropout."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from .. import cpu_kernels as C
from .. import cuda_kernels as K
from ..backend import get_array_module
from ..tensor import Function, Tensor
from .rows import kernel_rows, over_rows

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715

# ----------------------------------------------------------------------------- GELU

def _tanh_u(x, t, xp):
    """t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3), computed in the buffer t."""
    xp.multiply(x, x, out=t)                                            # x^2
    t *= GELU_C
    t += 1
    t *= x
    t *= SQRT_2_OVER_PI                                                 # u
    return xp.tanh(t, out=t)                                            # tanh(u)


def _flat(a, xp):
    """``a`` as a 1-d array (a view when ``a`` is C-contiguous), for elementwise work in blocks."""
    return xp.ascontiguousarray(a).reshape(-1)


class Gelu(Function):
    """GELU, tanh approximation (GPT-2):  y = x/2 * (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3);
    dx = g * [ (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) ],  t = tanh(u).

    Elementwise ops run one NumPy pass over memory each, so both directions
    build their result in one or two buffers with ``out=`` instead of a fresh
    temporary per operator, block by block on every core (``rows.over_rows``).
    Backward uses 1 - t^2 = (1 - t)(1 + t):
        dx = g * (1 + t)/2 * (1 + x (1 - t) du),   du = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
    Only x is saved; backward recomputes t (as PyTorch does): the MLP's widest
    activation is then kept once per layer, not twice, for a few passes more.
    """

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        if K.supported(x):
            return K.gelu_forward(x)                                    # the GPU: one fused kernel
        y = xp.empty(x.shape, dtype=x.dtype)
        xs, ys = _flat(x, xp), y.reshape(-1)
        if C.supported(x):                                              # the CPU: one compiled loop
            kernel_rows(lambda r: C.kernels().gelu_forward(xs[r], ys[r]), xs.size, xs.size, 1.0)
            return y

        def block(r):                                                   # y = x/2 (1 + t)
            yr = _tanh_u(xs[r], ys[r], xp)
            yr += 1
            yr *= xs[r]
            yr *= 0.5

        over_rows(block, xs.size, xs.size, xp)
        return y

    def backward(self, g):
        xp = get_array_module(g)
        x = self.x
        if K.supported(g, x):
            return (K.gelu_backward(x, g),)
        dx = xp.empty(x.shape, dtype=x.dtype)
        xs, gs, dxs = _flat(x, xp), _flat(g, xp), dx.reshape(-1)
        if C.supported(x, g):
            kernel_rows(lambda r: C.kernels().gelu_backward(xs[r], gs[r], dxs[r]), xs.size, xs.size, 1.3)
            return (dx,)

        def block(r):
            x, a = xs[r], dxs[r]
            t = _tanh_u(x, xp.empty_like(x), xp)
            xp.multiply(x, x, out=a)
            a *= 3 * GELU_C * SQRT_2_OVER_PI
            a += SQRT_2_OVER_PI                                         # du
            a *= x
            b = xp.subtract(1, t, out=xp.empty_like(t))                # 1 - t
            a *= b
            a += 1                                                      # 1 + x (1 - t) du
            t += 1
            a *= t
            a *= 0.5                                                    # (1 + t)/2 (1 + x (1 - t) du)
            a *= gs[r]

        over_rows(block, xs.size, xs.size, xp)
        return (dx,)


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
    full-size arithmetic goes into buffers this node owns, in place, in
    blocks of rows on every core (``rows.over_rows``).
    """

    def forward(self, x, *wb, eps=1e-5):
        xp = get_array_module(x)
        self.w = wb[0] if wb else None
        if K.fits(x) and K.supported(*wb):                              # the GPU: one fused kernel
            y, self.xhat, self.rstd = K.layer_norm_forward(x, self.w, wb[1] if len(wb) > 1 else None, eps)
            return y
        c, w, b = x.shape[-1], self.w, wb[1] if len(wb) > 1 else None
        if C.supported(x, w, b):                                        # the CPU: one compiled loop
            return self._forward_kernel(x, w, b, eps)
        x2 = x.reshape(-1, c)                                           # (N, C)
        xhat = xp.empty(x2.shape, dtype=x.dtype)
        rstd = xp.empty((x2.shape[0], 1), dtype=x.dtype)
        y = xp.empty(x2.shape, dtype=xp.result_type(x, *wb))

        def block(r):
            xc = xp.subtract(x2[r], x2[r].mean(axis=-1, keepdims=True), out=xhat[r])   # x - mean
            var = xp.einsum("ij,ij->i", xc, xc)[:, None]                # sum of xc^2 per row
            var /= c
            var += eps
            xp.divide(1.0, xp.sqrt(var, out=var), out=rstd[r])          # 1 / sqrt(var + eps)
            xc *= rstd[r]                                               # xhat
            if w is None:
                y[r] = xc
                return
            xp.multiply(xc, w, out=y[r])
            if b is not None:
                y[r] += b

        over_rows(block, x2.shape[0], x2.size, xp)
        self.xhat, self.rstd = xhat.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,))
        return y.reshape(x.shape)

    def _forward_kernel(self, x, w, b, eps):
        """Keeps x, mean and rstd (not xhat): the backward recomputes xhat as it goes."""
        c = x.shape[-1]
        x2 = C.rows2d(x)                                                # (N, C)
        w = w if w is not None else np.ones(c, dtype=np.float32)
        b = b if b is not None else np.zeros(c, dtype=np.float32)
        y = np.empty(x2.shape, dtype=np.float32)
        mean, rstd = np.empty(x2.shape[0], dtype=np.float32), np.empty(x2.shape[0], dtype=np.float32)
        kernel_rows(lambda r: C.kernels().layer_norm_forward(x2[r], w, b, np.float32(eps), y[r], mean[r], rstd[r]),
                    x2.shape[0], x2.size, 0.33)
        self.x2, self.mean, self.rstd, self.xhat = x2, mean, rstd, None
        return y.reshape(x.shape)

    def _backward_kernel(self, g):
        """dx, dw, db in one pass over the rows per core; each core sums its own dw and db."""
        x2, c = self.x2, self.x2.shape[-1]
        g2 = C.rows2d(g)
        w = self.w if self.w is not None else np.ones(c, dtype=np.float32)
        dx = np.empty(g.shape, dtype=np.float32)                        # its own array: no copy on the leaf
        dx2 = dx.reshape(x2.shape)
        parts: list = []

        def block(r):
            dw, db = np.zeros(c, dtype=np.float32), np.zeros(c, dtype=np.float32)
            C.kernels().layer_norm_backward(g2[r], x2[r], self.mean[r], self.rstd[r], w, dx2[r], dw, db)
            parts.append((dw, db))

        kernel_rows(block, x2.shape[0], x2.size, 0.5)
        grads = [dx if self.needs_grad[0] else None]
        if self.w is not None:
            grads.append(sum(p[0] for p in parts) if self.needs_grad[1] else None)
        if len(self.needs_grad) > 2:
            grads.append(sum(p[1] for p in parts) if self.needs_grad[2] else None)
        return tuple(grads)

    def backward(self, g):
        xp = get_array_module(g)
        if self.xhat is None:                                           # the compiled forward ran
            return self._backward_kernel(g)
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
            grads[0] = self._backward_x(g, xp)
        return tuple(grads)

    def _backward_x(self, g, xp):
        """dx, the reference: in blocks of rows on every core (``rows.over_rows``)."""
        c, w = g.shape[-1], self.w
        g2, xhat, rstd = g.reshape(-1, c), self.xhat.reshape(-1, c), self.rstd.reshape(-1, 1)
        dx = xp.empty(g.shape, dtype=g.dtype if w is None else xp.result_type(g, w))
        dx2 = dx.reshape(g2.shape)                                      # returned: dx, which has no base

        def block(r):
            gs = dx2[r]                                                 # gxhat
            if w is None:
                gs[...] = g2[r]
            else:
                xp.multiply(g2[r], w, out=gs)
            gs *= rstd[r]                                               # gxhat / sqrt(var + eps)
            m1 = gs.mean(axis=-1, keepdims=True)
            m2 = xp.einsum("ij,ij->i", gs, xhat[r])[:, None]
            m2 /= c
            tmp = xhat[r] * m2                                          # xhat * mean(gxhat * xhat)
            tmp += m1
            gs -= tmp

        over_rows(block, g2.shape[0], g2.size, xp)
        return dx


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
