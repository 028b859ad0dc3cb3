"""Basic layers: Linear, Embedding, LayerNorm, Dropout, activations, MLP and
positional encodings. Each ``forward`` is a line or two on top of an op.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from .. import functional as F
from ..backend import get_array_module
from ..functional.linear import LinearFunction, linear  # noqa: F401  (nn's names)
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


def _empty(*shape: int) -> Parameter:
    return Parameter(backend.xp().zeros(shape, dtype=backend.get_default_dtype()))


class Linear(Module):
    """y = x W^T + b.  W: (out_features, in_features), initialized U(-1/sqrt(in), 1/sqrt(in)) as PyTorch."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty(out_features, in_features)
        self.bias = _empty(out_features) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)                      # (..., in) -> (..., out)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: row ``i`` of ``weight`` (num_embeddings, dim) is the vector of token ``i``.

    The ``padding_idx`` row, if given, starts at zero and receives no gradient.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"padding_idx {padding_idx} is outside the table of {num_embeddings} rows")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        self.weight = _empty(num_embeddings, embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, idx: Any) -> Tensor:
        return F.embedding(self.weight, idx, self.padding_idx)       # (...) -> (..., dim)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """Normalize the last axis to mean 0, variance 1, then scale by ``weight`` and shift by ``bias``."""

    def __init__(self, dim: int, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.dim, self.eps, self.normalized_shape = dim, eps, (dim,)
        xp, dt = backend.xp(), backend.get_default_dtype()
        self.weight = Parameter(xp.ones(dim, dtype=dt)) if elementwise_affine else None
        self.bias = Parameter(xp.zeros(dim, dtype=dt)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.weight, self.bias, self.eps)     # (..., dim) -> (..., dim)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class Dropout(Module):
    """Zero each element with probability ``p`` while training (scaling the rest by 1/(1-p))."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GELU(Module):
    """GELU activation, tanh approximation (GPT-2, BERT): the engine's MLP activation.
    (``tinyllm.nn.GELU`` is PyTorch's module, exact unless ``approximate="tanh"``.)"""

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, approximate="tanh")


class ReLU(Module):
    """max(x, 0), the original Transformer's FFN activation."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class MLP(Module):
    """The position-wise feed-forward network: Linear -> activation -> Linear -> dropout.

    FFN(x) = act(x W_fc^T + b_fc) W_proj^T + b_proj, with a hidden width of
    ``4 * dim`` by default; ``activation`` is "gelu" (GPT-2, BERT) or "relu"
    (the original Transformer).
    """

    def __init__(self, dim: int, hidden: int | None = None, activation: str = "gelu",
                 bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        acts = {"gelu": GELU, "relu": ReLU}
        if activation not in acts:
            raise ValueError(f"activation must be 'gelu' or 'relu', got {activation!r}")
        hidden = hidden or 4 * dim
        self.c_fc = Linear(dim, hidden, bias)
        self.act = acts[activation]()
        self.c_proj = Linear(hidden, dim, bias)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.c_fc(x))                                    # (B, T, C) -> (B, T, 4C)
        return self.dropout(self.c_proj(h))                           # (B, T, 4C) -> (B, T, C)


class SinusoidalPositionalEncoding(Module):
    """Fixed encodings of "Attention Is All You Need":
        PE(pos, 2i) = sin(pos / 10000^(2i/d)),   PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).
    ``forward(T, offset)`` returns rows offset..offset+T-1, shape (T, d), with no gradient.
    """

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        pos = np.arange(max_len)[:, None]
        freq = np.exp(-math.log(10000.0) * np.arange(0, dim, 2) / dim)
        table = np.zeros((max_len, dim))
        table[:, 0::2] = np.sin(pos * freq)
        table[:, 1::2] = np.cos(pos * freq)[:, : dim // 2]
        self.max_len = max_len
        self.register_buffer("table", Tensor(backend.xp().asarray(table, dtype=backend.get_default_dtype())))

    def forward(self, length: int, offset: int = 0) -> Tensor:
        if offset + length > self.max_len:
            raise ValueError(f"positions up to {offset + length} exceed max_len {self.max_len}")
        return self.table[offset:offset + length]                     # (T, d)


class LearnedPositionalEmbedding(Embedding):
    """One learned vector per position (GPT-2's ``wpe``, BERT's position embeddings)."""

    def forward(self, length: int, offset: int = 0) -> Tensor:  # type: ignore[override]
        if offset + length > self.num_embeddings:
            raise ValueError(f"positions up to {offset + length} exceed the {self.num_embeddings} learned ones")
        pos = get_array_module(self.weight.data).arange(offset, offset + length)
        return F.embedding(self.weight, pos)                          # (T, d)
