"""Attention with the scale, the masks and the softmax in one row kernel, dropout in another.
Formula: :class:`tinyllm.functional.attention.Attention`."""
from __future__ import annotations

from typing import Any

from ... import backend
from . import MAX_ROW, cp, launch
from .dropout import dropout


def attention_softmax_(s: Any, causal: bool, scale: float) -> Any:
    """In place: P = softmax(S * scale) over keys for scores S = Q K^T (..., Tq, Tk), causal mask included."""
    tq, tk = s.shape[-2], s.shape[-1]
    launch("softmax_rows", s.dtype, s.size // tk if tk else 0, tk,
           (s, cp().int32(tk), cp().int32(tq), cp().int32(causal), s.dtype.type(scale)))
    return s


def attention_softmax_backward_(dp: Any, p: Any, scale: float) -> Any:
    """In place in dp: d(Q K^T) = scale * P * (dP - rowsum(dP * P)) (the scale of the forward folded in)."""
    c = dp.shape[-1]
    launch("softmax_bwd_rows", dp.dtype, dp.size // c if c else 0, c, (dp, p, cp().int32(c), dp.dtype.type(scale)))
    return dp


class Attention:
    """Attention of CuPy arrays (at most MAX_ROW keys). Keeps P; the dropout mask is not stored
    but redrawn in backward from its place in the generator's stream."""

    @staticmethod
    def accepts(q: Any, k: Any, v: Any) -> bool:
        return k.shape[-2] <= MAX_ROW

    def forward(self, q: Any, k: Any, v: Any, scale: float, causal: bool, mask: Any, dropout_p: float,
                out: Any = None) -> Any:                                # out: not used (the caller copies)
        self.q, self.k, self.v, self.scale, self.stream = q, k, v, scale, None
        s = q @ k.swapaxes(-1, -2)                                      # (..., Tq, Tk)
        if mask is not None:
            s = cp().where(mask, s, -cp().inf)
        attention_softmax_(s, causal, scale)                            # scale, mask, softmax in one kernel
        self.p = s                                                      # (..., Tq, Tk)
        if dropout_p > 0.0:                                             # the mask is drawn in the kernel
            self.dropout_p, self.stream = dropout_p, backend.rng(cp()).reserve(s.size)
            s = dropout(s, dropout_p, *self.stream)
        self.pd = s
        return s @ v                                                    # (..., Tq, dv)

    def weights(self) -> Any:
        return self.p

    def backward(self, g: Any, needs_grad: tuple, out: tuple | None = None) -> tuple:   # out: not used
        q, k, v, p, scale = self.q, self.k, self.v, self.p, self.scale
        gv = self.pd.swapaxes(-1, -2) @ g if needs_grad[2] else None
        dp = g @ v.swapaxes(-1, -2)                                     # (..., Tq, Tk)
        if self.stream is not None:
            dp = dropout(dp, self.dropout_p, *self.stream)
        ds = attention_softmax_backward_(dp, p, scale)                  # dS * scale, one kernel
        gq = ds @ k if needs_grad[0] else None
        gk = ds.swapaxes(-1, -2) @ q if needs_grad[1] else None
        return gq, gk, gv
