"""Cross-entropy with label smoothing as one compiled loop per direction, per row of logits.

Formula and reference: :class:`tinyllm.functional.cross_entropy.CrossEntropy`.
"""
from __future__ import annotations

import math

import numpy as np

from .exp import exp_neg
from .jit import F, inline, jit
from .threads import run_kernel

NS_FORWARD, NS_BACKWARD = 1.0, 0.85     # per element on one core (2-core VM, AVX2)


@inline
def row_max(z, i, c):
    m = F(-np.inf)
    for j in range(c):
        m = max(m, z[i, j])
    return m


@jit
def cross_entropy_forward(z, t, valid, eps, loss, mx, log_s_out):
    """Per row n of logits z (N, C), target t_n, all relative to the row max m (exact at +-1e4):
        lse_n = m + log S,   S = sum_c e^(z_c - m),
        loss_n = log S - (1 - eps) (z_{t_n} - m) - eps mean_c(z_c - m)
               (= -(1 - eps) log p_t - eps/C sum_c log p_c),
    0 where ``valid`` is False. m and log S are kept for the backward."""
    n, c = z.shape
    for i in range(n):
        m = row_max(z, i, c)
        s = F(0.0)
        zsum = F(0.0)
        for j in range(c):
            s += exp_neg(z[i, j] - m)
            zsum += z[i, j] - m
        log_s = F(math.log(s))
        if m != m or s != s:                                 # a NaN anywhere in the row: say so
            log_s = F(np.nan)
        mx[i] = m
        log_s_out[i] = log_s
        if valid[i]:
            loss[i] = log_s - (F(1.0) - eps) * (z[i, t[i]] - m) - eps * zsum / F(c)
        else:
            loss[i] = F(0.0)


@jit
def cross_entropy_backward(z, t, mx, log_s, w, eps, dz):
    """dz_n = w_n (p_n - (1 - eps) onehot(t_n) - eps / C), p_n = e^((z_n - m) - log S) recomputed."""
    n, c = z.shape
    for i in range(n):
        wi = w[i]
        m, ls = mx[i], log_s[i]
        off = eps / F(c)
        for j in range(c):
            dz[i, j] = wi * (exp_neg((z[i, j] - m) - ls) - off)
        if wi != F(0.0):
            dz[i, t[i]] -= wi * (F(1.0) - eps)


class CrossEntropy:
    """Per-row losses of float32 logits; keeps z, each row's max and log-sum-exp (not p):
    the backward recomputes p from them."""

    def forward(self, z: np.ndarray, t: np.ndarray, valid: np.ndarray, ignore_index: int,
                eps: float) -> np.ndarray:
        self.z, self.t, self.eps = np.ascontiguousarray(z), np.where(valid, t, 0), eps
        n = z.shape[0]
        loss, self.mx, self.ls = (np.empty(n, dtype=np.float32) for _ in range(3))
        run_kernel(lambda r: cross_entropy_forward(self.z[r], self.t[r], valid[r], np.float32(eps),
                                                   loss[r], self.mx[r], self.ls[r]), n, z.size, NS_FORWARD)
        return loss

    def backward(self, w: np.ndarray, shape: tuple) -> np.ndarray:
        dz = np.empty(shape, dtype=np.float32)                          # its own array: no copy on the leaf
        dz2 = dz.reshape(self.z.shape)
        run_kernel(lambda r: cross_entropy_backward(self.z[r], self.t[r], self.mx[r], self.ls[r], w[r],
                                                    np.float32(self.eps), dz2[r]),
                   dz2.shape[0], dz2.size, NS_BACKWARD)
        return dz
