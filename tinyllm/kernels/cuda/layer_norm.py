"""Layer norm as one row kernel per direction. Formula: :class:`tinyllm.functional.layer_norm.LayerNorm`."""
from __future__ import annotations

from typing import Any

from ...backend import column_sum
from . import cp, fits, launch, ptr, supported


def layer_norm_forward(x: Any, w: Any, b: Any, eps: float) -> tuple[Any, Any, Any]:
    """(y, xhat, rstd) of layer norm over the last axis; ``w``/``b`` may be None."""
    x = cp().ascontiguousarray(x)
    c = x.shape[-1]
    rows = x.size // c if c else 0
    y, xhat = cp().empty_like(x), cp().empty_like(x)
    rstd = cp().empty(x.shape[:-1] + (1,), dtype=x.dtype)
    args = (x, ptr(w, x.dtype), ptr(b, x.dtype), y, xhat, rstd, cp().int32(c), x.dtype.type(eps))
    launch("ln_fwd", x.dtype, rows, c, args)
    return y, xhat, rstd


def layer_norm_backward_x(g: Any, w: Any, xhat: Any, rstd: Any) -> Any:
    """dx of layer norm: (g w - mean(g w) - xhat mean(g w xhat)) * rstd, per row."""
    g = cp().ascontiguousarray(g)
    c = g.shape[-1]
    dx = cp().empty_like(g)
    launch("ln_bwd", g.dtype, g.size // c if c else 0, c, (g, ptr(w, g.dtype), xhat, rstd, dx, cp().int32(c)))
    return dx


class LayerNorm:
    """Layer norm on CuPy arrays (rows of at most MAX_ROW); keeps xhat and rstd.
    dw and db are column sums (``backend.column_sum``: one matrix-vector product each)."""

    @staticmethod
    def accepts(x: Any, w: Any = None, b: Any = None) -> bool:
        return fits(x) and supported(w, b)

    def forward(self, x: Any, w: Any, b: Any, eps: float) -> Any:
        self.w = w
        y, self.xhat, self.rstd = layer_norm_forward(x, w, b, eps)
        return y

    def backward(self, g: Any, needs_grad: tuple) -> tuple:
        """(dx, dw, db), None where ``needs_grad`` (for x, w, b) says no."""
        dw = column_sum(g * self.xhat) if needs_grad[1] else None
        db = column_sum(g) if needs_grad[2] else None
        dx = layer_norm_backward_x(g, self.w, self.xhat, self.rstd) if needs_grad[0] else None
        return dx, dw, db
