"""Matrix products: ``matmul`` (``@``) and ``einsum``, forward and backward side by side."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .axes import ShapeError, broadcast_shape
from .dtypes import operands, result_type, to_dtype


class MatMul(Function):
    """Y = A @ B (batched, broadcasting);  dA = G @ B^T,  dB = A^T @ G.

    A stack of matrices times one matrix, (..., n, k) @ (k, m), is run as ONE
    (N, k) @ (k, m) product, forward and backward: one large BLAS call is far
    faster than many small ones.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        if b.ndim == 2 and a.ndim > 2:
            return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if a.ndim == 1 and b.ndim == 1:  # dot product: g is a scalar
            return (g * b if self.needs_grad[0] else None), (g * a if self.needs_grad[1] else None)
        if b.ndim == 2 and a.ndim > 2:
            if self.needs_grad[0]:
                ga = (g.reshape(-1, g.shape[-1]) @ b.T).reshape(a.shape)
            if self.needs_grad[1]:
                gb = a.reshape(-1, a.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            return ga, gb
        a2 = a[None, :] if a.ndim == 1 else a          # (k,) -> (1, k)
        b2 = b[:, None] if b.ndim == 1 else b          # (k,) -> (k, 1)
        if a.ndim == 1:
            g = g[..., None, :]
        if b.ndim == 1:
            g = g[..., None]
        if self.needs_grad[0]:
            ga = g @ b2.swapaxes(-1, -2)
            if a.ndim == 1:
                ga = ga[..., 0, :]
        if self.needs_grad[1]:
            gb = a2.swapaxes(-1, -2) @ g
            if b.ndim == 1:
                gb = gb[..., 0]
        return ga, gb


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's (and PyTorch's) semantics: 1-D promotion, batch broadcasting."""
    a, b = operands(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least one dimension, got shapes {a.shape} and {b.shape}")
    k_a, k_b = a.shape[-1], b.shape[0 if b.ndim == 1 else -2]
    if k_a != k_b:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} do not fit ({k_a} columns against {k_b} rows)")
    if a.ndim > 2 and b.ndim > 2:
        broadcast_shape("matmul (batch axes)", a.shape[:-2], b.shape[:-2])
    return MatMul.apply(a, b)


class Einsum(Function):
    """y = einsum(spec, x_1, ..., x_n) (explicit output, each letter once per operand);
    dx_k = einsum(g and the other operands -> x_k's letters), broadcast over the letters
    that appear nowhere else (they were summed out of x_k alone)."""

    def forward(self, *xs, inputs=(), output=""):
        self.xs, self.specs, self.output = xs, inputs, output
        return get_array_module(*xs).einsum(f"{','.join(inputs)}->{output}", *xs)

    def backward(self, g):
        xp = get_array_module(g)
        grads = []
        for k, (x, letters) in enumerate(zip(self.xs, self.specs)):
            if not self.needs_grad[k]:
                grads.append(None)
                continue
            others = [(s, o) for i, (s, o) in enumerate(zip(self.specs, self.xs)) if i != k]
            present = set(self.output).union(*[set(s) for s, _ in others])
            target = "".join(c for c in letters if c in present)
            spec = ",".join([self.output] + [s for s, _ in others]) + "->" + target
            d = xp.einsum(spec, g, *[o for _, o in others])
            shape = [x.shape[i] if c in present else 1 for i, c in enumerate(letters)]
            grads.append(xp.broadcast_to(d.reshape(shape), x.shape))
        return tuple(grads)


def _parse_einsum(equation: str, shapes: list) -> tuple:
    """Operand and output letters with any ``...`` spelled out (and the output inferred if absent)."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {equation!r} names {len(ins)} operands, got {len(shapes)}")
    used = set(c for c in eq if c.isalpha())
    spare = iter(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used)
    ell_ndim = max((len(s) - (len(i) - 3) for i, s in zip(ins, shapes) if "..." in i), default=0)
    ell = "".join(next(spare) for _ in range(ell_ndim))
    spelled = []
    for letters, shape in zip(ins, shapes):
        if "..." in letters:
            n = len(shape) - (len(letters) - 3)
            letters = letters.replace("...", ell[len(ell) - n:] if n else "")
        if len(letters) != len(shape):
            raise ValueError(f"einsum: {letters!r} names {len(letters)} axes of an operand of shape {shape}")
        if len(set(letters)) != len(letters):
            raise ValueError(f"einsum: repeated letters within one operand ({letters!r}) are not supported")
        spelled.append(letters)
    if arrow:
        out = out.replace("...", ell)
    else:
        counts = {c: "".join(spelled).count(c) for c in "".join(spelled)}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return spelled, out


def einsum(equation: str, *operands_: Any) -> Tensor:
    """Einstein summation, ``torch.einsum(equation, *operands)``: e.g. "bij,bjk->bik",
    "...ij,...jk" (the output inferred), "i,i->". Operands may also be given as one list."""
    ts = list(operands_[0]) if len(operands_) == 1 and isinstance(operands_[0], (list, tuple)) else list(operands_)
    ts = [t if isinstance(t, Tensor) else Tensor(t) for t in ts]
    dt = result_type(*ts)
    ts = [to_dtype(t, dt) for t in ts]
    inputs, output = _parse_einsum(equation, [t.shape for t in ts])
    sizes: dict = {}
    for letters, t in zip(inputs, ts):
        for c, n in zip(letters, t.shape):
            if sizes.setdefault(c, n) != n:
                raise ValueError(f"einsum: axis {c!r} has size {sizes[c]} in one operand and {n} in another "
                                 f"(shapes {[t.shape for t in ts]})")
    return Einsum.apply(*ts, inputs=tuple(inputs), output=output)


def mm(a: Tensor, b: Tensor) -> Tensor:
    """The product of two matrices (2-d only, as ``torch.mm``)."""
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"mm needs two 2-d tensors, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix products, (B, n, k) @ (B, k, m) (3-d only, as ``torch.bmm``)."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ShapeError(f"bmm needs two 3-d tensors with one batch size, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def dot(a: Tensor, b: Tensor) -> Tensor:
    """The inner product of two 1-d tensors."""
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"dot needs two 1-d tensors, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def outer(a: Tensor, b: Tensor) -> Tensor:
    """a_i b_j for 1-d a and b: an (n, m) matrix."""
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"outer needs two 1-d tensors, got shapes {a.shape} and {b.shape}")
    return einsum("i,j->ij", a, b)
