"""Adam(W) as one compiled loop over the flat parameter buffers, bit-identical to the formula.

Formula and reference: :class:`tinyllm.optim.adam.AdamReference`.
"""
from __future__ import annotations

import math

import numpy as np

from .jit import F, jit_exact
from .threads import run_kernel

NS_PER_ELEMENT = 0.6                    # on one core (2-core VM, AVX2)


@jit_exact
def adam_update_(p, g, m, v, decay, wd, b1, c1, b2, c2, sqrt_bias2, eps, step):
    """In place over flat float32 buffers, in the reference's order of operations:
        p <- p * decay                       (AdamW: decay = 1 - lr λ; else 1)
        g' = p λ + g                         (Adam with weight decay: wd = λ; else 0)
        m <- m β1 + g' (1 - β1),   v <- v β2 + g'^2 (1 - β2)
        p <- p + m / (sqrt(v) / sqrt(1 - β2^t) + ε) * step,   step = -lr / (1 - β1^t)."""
    for i in range(p.size):
        pi = p[i]
        if decay != F(1.0):
            pi = pi * decay
        gi = g[i]
        if wd != F(0.0):
            gi = pi * wd + gi
        mi = m[i] * b1 + gi * c1
        vi = v[i] * b2 + gi * gi * c2
        m[i] = mi
        v[i] = vi
        p[i] = pi + mi / (math.sqrt(vi) / sqrt_bias2 + eps) * step


class Adam:
    """One Adam(W) step on flat float32 NumPy buffers, in place, shared between the cores."""

    def update_(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, *, lr: float, b1: float,
                b2: float, eps: float, wd: float, decoupled: bool, step: int) -> None:
        f = np.float32
        coupled = wd != 0 and not decoupled
        consts = (f(1.0 - lr * wd) if decoupled else f(1.0), f(wd) if coupled else f(0.0),
                  f(b1), f(1.0 - b1), f(b2), f(1.0 - b2), f(math.sqrt(1.0 - b2 ** step)), f(eps),
                  f(-lr / (1.0 - b1 ** step)))
        run_kernel(lambda r: adam_update_(p[r], g[r], m[r], v[r], *consts), p.size, p.size, NS_PER_ELEMENT)
