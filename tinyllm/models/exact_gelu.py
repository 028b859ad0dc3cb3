"""The exact GELU, as BERT and Hugging Face's ``hidden_act="gelu"`` compute it (Hendrycks & Gimpel, 2016):

    GELU(x)  = x Phi(x) = x/2 (1 + erf(x / sqrt 2))
    GELU'(x) = Phi(x) + x phi(x),    phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

tinyllm's default GELU is the tanh approximation (GPT-2's ``gelu_new``); the two
differ by up to about 1e-3, too much to reproduce a Hugging Face BERT's logits
to 1e-10. NumPy has no ``erf``: on the CPU it runs as a Numba ufunc over
``math.erf`` (the C library's, correctly rounded to about one ulp), or
``math.erf`` element by element without Numba; on the GPU as a CuPy
elementwise kernel over CUDA's ``erf``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import get_array_module
from ..nn import Module
from ..tensor import Function, Tensor

_erf_impl: dict[str, Any] = {}


def _numpy_erf() -> Any:
    if "numpy" not in _erf_impl:
        try:
            import numba  # noqa: PLC0415

            @numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
            def erf(x):  # pragma: no cover - compiled
                return math.erf(x)
        except Exception:                                              # no Numba: the slow, exact loop
            scalar = np.frompyfunc(math.erf, 1, 1)

            def erf(x: np.ndarray) -> np.ndarray:
                return scalar(x).astype(x.dtype)
        _erf_impl["numpy"] = erf
    return _erf_impl["numpy"]


def erf(x: Any) -> Any:
    """The error function, elementwise, in the dtype of ``x`` (NumPy or CuPy)."""
    xp = get_array_module(x)
    if xp is np:
        return _numpy_erf()(x)
    if "cupy" not in _erf_impl:
        _erf_impl["cupy"] = xp.ElementwiseKernel("T x", "T y", "y = erf(x)", "tinyllm_erf")
    return _erf_impl["cupy"](x)


class ExactGelu(Function):
    """y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2;   dx = g (Phi(x) + x phi(x))."""

    def forward(self, x):
        cdf = erf(x * x.dtype.type(1 / math.sqrt(2)))
        cdf += 1
        cdf *= 0.5                                                     # Phi(x)
        self.x, self.cdf = x, cdf
        return x * cdf

    def backward(self, g):
        xp = get_array_module(g)
        x = self.x
        pdf = xp.exp(-0.5 * x * x) * x.dtype.type(1 / math.sqrt(2 * math.pi))   # phi(x)
        return (g * (self.cdf + x * pdf),)


def exact_gelu(x: Tensor) -> Tensor:
    """GELU with the exact normal CDF (see :class:`ExactGelu`)."""
    return ExactGelu.apply(x)


class ExactGELU(Module):
    """GELU activation with erf (BERT, Hugging Face ``hidden_act="gelu"``)."""

    def forward(self, x: Tensor) -> Tensor:
        return exact_gelu(x)
