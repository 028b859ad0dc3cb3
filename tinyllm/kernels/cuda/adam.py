"""Adam(W) as one elementwise CUDA kernel over the flat buffers.
Formula: :class:`tinyllm.optim.adam.AdamReference`, in the same order of operations."""
from __future__ import annotations

import math
from typing import Any

from . import NO_FMA, cached


class Adam:
    """One Adam(W) step on flat CuPy buffers, in place, one pass over memory."""

    def update_(self, p: Any, g: Any, m: Any, v: Any, *, lr: float, b1: float, b2: float, eps: float,
                wd: float, decoupled: bool, step: int) -> None:
        k = cached("adam", lambda cp: cp.ElementwiseKernel(
            "T g, T b1, T b2, T c1, T c2, T eps, T wd, T decay, T step_size, T sqrt_bias2, bool coupled",
            "T p, T m, T v",
            """T gg = coupled ? p * wd + g : g;
            p = p * decay;
            m = m * b1 + gg * c1;
            v = v * b2 + (gg * gg) * c2;
            p = p + (m / (sqrt(v) / sqrt_bias2 + eps)) * step_size;""", "tinyllm_adam", options=NO_FMA))
        t = p.dtype.type
        bias1, bias2 = 1.0 - b1 ** step, 1.0 - b2 ** step
        decay = 1.0 - lr * wd if decoupled else 1.0
        k(g, t(b1), t(b2), t(1.0 - b1), t(1.0 - b2), t(eps), t(wd), t(decay), t(-lr / bias1), t(math.sqrt(bias2)),
          not decoupled and wd != 0, p, m, v)
