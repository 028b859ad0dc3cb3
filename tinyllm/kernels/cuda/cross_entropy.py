"""Cross-entropy: per-row losses in one row kernel, the gradient in one elementwise kernel.
Formula: :class:`tinyllm.functional.cross_entropy.CrossEntropy`."""
from __future__ import annotations

from typing import Any

from . import NO_FMA, cached, cp, launch


def cross_entropy_forward(z: Any, t: Any, ignore_index: int, eps: float) -> tuple[Any, Any, Any]:
    """Per-row (loss, max, log-sum-exp after the max) of logits z (N, C) and targets t (N,)."""
    z = cp().ascontiguousarray(z)
    t = cp().ascontiguousarray(t, dtype=cp().int64)
    n, c = z.shape
    loss, mx, ls = (cp().empty(n, dtype=z.dtype) for _ in range(3))
    launch("xent_fwd", z.dtype, n, c, (z, t, loss, mx, ls, cp().int32(c), cp().int64(ignore_index), z.dtype.type(eps)))
    return loss, mx, ls


def cross_entropy_backward(z: Any, t: Any, mx: Any, ls: Any, w: Any, eps: float) -> Any:
    """dz[n, c] = w[n] (p[n, c] - (1 - eps) [c == t[n]] - eps / C),  p = exp((z - max) - ls);
    w[n] = 0 on ignored rows."""
    k = cached("xent_bwd", lambda cp: cp.ElementwiseKernel(
        "T z, raw T mx, raw T ls, raw int64 t, raw T w, int32 C, T eps", "T dz",
        """long long n = i / C, c = i % C;
        T p = exp((z - mx[n]) - ls[n]) - eps / (T)C - (c == t[n] ? (T)1 - eps : (T)0);
        dz = w[n] * p;""", "tinyllm_xent_bwd", options=NO_FMA))
    c = z.shape[1]
    return k(cp().ascontiguousarray(z), mx, ls, cp().ascontiguousarray(t, dtype=cp().int64), w, cp().int32(c),
             z.dtype.type(eps))


class CrossEntropy:
    """Per-row losses of CuPy logits; keeps z, each row's max and log-sum-exp (not p)."""

    def forward(self, z: Any, t: Any, valid: Any, ignore_index: int, eps: float) -> Any:
        self.z, self.t, self.eps = z, t, eps
        loss, self.mx, self.ls = cross_entropy_forward(z, t, ignore_index, eps)
        return loss

    def backward(self, w: Any, shape: tuple) -> Any:
        return cross_entropy_backward(self.z, self.t, self.mx, self.ls, w, self.eps).reshape(shape)
