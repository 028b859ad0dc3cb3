"""What a Tensor does, as opposed to what it records: its operators, its in-place
updates, and its methods under PyTorch's names and meanings.

:class:`TensorMethods` is the base class of :class:`tinyllm.tensor.Tensor`. Each
method is one line that calls the function of the same name in :mod:`tinyllm.ops`
or :mod:`tinyllm.functional`. Those layers sit above this one, so it imports
neither: ``tinyllm/__init__.py`` hands them in once with :func:`bind_math`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import backend

if TYPE_CHECKING:  # annotations only: tensor.py imports this module
    from .tensor import Tensor

_ops: Any = None
_fn: Any = None


def bind_math(ops: Any, functional: Any) -> None:
    """Give the operators and methods their implementations (``tinyllm/__init__.py`` calls it)."""
    global _ops, _fn
    _ops, _fn = ops, functional


class _GradMode:
    """``is_grad_enabled`` and ``no_grad`` of :mod:`tinyllm.tensor`, which sets them (it imports this module)."""

    is_grad_enabled: Callable[[], bool]
    no_grad: Any


_grad_mode = _GradMode()


class TensorMethods:
    """The operators and PyTorch-named methods of :class:`~tinyllm.tensor.Tensor`."""

    __slots__ = ()
    data: Any
    requires_grad: bool

    def _one_value(self, to: str) -> Any:
        """The value of a one-element tensor (any shape) for ``bool()``, ``float()``, ``int()``;
        PyTorch's errors otherwise."""
        if self.data.size != 1:
            if to == "bool":
                raise RuntimeError(f"the truth value of a tensor of shape {self.data.shape} is ambiguous: "
                                   "use .any() or .all()")
            raise ValueError(f"only one-element tensors can be converted to Python scalars, got shape "
                             f"{self.data.shape}")
        return self.data.reshape(()).item()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """``np.asarray(t)``: the values as a NumPy array (copied from the GPU), as a CPU torch
        tensor gives them; without it NumPy made an object array of 0-d tensors."""
        arr = backend.to_numpy(self.data)
        arr = arr if dtype is None else arr.astype(dtype, copy=False)
        return arr.copy() if copy else arr

    # -- in place (PyTorch's trailing underscore), on tensors outside the graph only
    # -- copies and conversions
    def clone(self) -> "Tensor":
        """A copy of the data that stays in the graph (the gradient flows back to ``self``)."""
        return _ops.clone(self)

    def contiguous(self) -> "Tensor":
        """``self`` with C-contiguous data (a copy in the graph when it is not already)."""
        return self if self.data.flags.c_contiguous else _ops.clone(self)

    def astype(self, dtype: Any) -> "Tensor":
        """Convert to ``dtype`` (differentiable between floating types)."""
        return _ops.cast(self, dtype)

    def float(self) -> "Tensor": return _ops.cast(self, np.float32)
    def double(self) -> "Tensor": return _ops.cast(self, np.float64)
    def half(self) -> "Tensor": return _ops.cast(self, np.float16)
    def long(self) -> "Tensor": return _ops.cast(self, np.int64)
    def int(self) -> "Tensor": return _ops.cast(self, np.int32)
    def bool(self) -> "Tensor": return _ops.cast(self, np.bool_)
    def type_as(self, other: "Tensor") -> "Tensor": return _ops.cast(self, other.dtype)
    def cpu(self) -> "Tensor": return self.to("cpu")  # type: ignore[attr-defined]  (Tensor.to)
    def cuda(self) -> "Tensor": return self.to("cuda")  # type: ignore[attr-defined]

    def _check_writable(self, op: str) -> None:
        if self.requires_grad and _grad_mode.is_grad_enabled():
            raise RuntimeError(f"{op}: a tensor that requires grad cannot be modified in place (its old "
                               "values may be needed by backward); use the out-of-place op, or run "
                               "it under tinyllm.no_grad()")

    def _in_place(self, op: str, compute: Callable[[], Any]) -> "Tensor":
        """Write ``compute()`` (an array or Tensor, computed without recording) into
        ``self.data``, after PyTorch's checks."""
        self._check_writable(op)
        with _grad_mode.no_grad():
            result = compute()
        result = result.data if isinstance(result, TensorMethods) else result
        if _KIND_RANK[result.dtype.kind] > _KIND_RANK[self.dtype.kind]:
            raise RuntimeError(f"{op}: the result type {result.dtype} cannot be cast to this tensor's {self.dtype}")
        if result.shape != self.shape:  # the other operand broadcast this tensor to a larger shape
            raise RuntimeError(f"{op}: output with shape {self.shape} doesn't match the broadcast shape {result.shape}")
        self.data[...] = result
        return self

    def _augmented(self, op: str, other: Any) -> "Tensor":
        """``x += y`` (``-=``, ``*=``, ``/=``) as in PyTorch: in place, so every alias of ``x``
        sees it; on a tensor made in the graph the name is rebound to the out-of-place result
        (the same values), and on a leaf that requires grad it is an error outside ``no_grad``."""
        if self.requires_grad and _grad_mode.is_grad_enabled() and getattr(self, "_ctx", None) is not None:
            return getattr(_ops, op)(self, other)
        return self._in_place(f"{op}_", lambda: getattr(_ops, op)(self, other))

    def __iadd__(self, other: Any) -> "Tensor": return self._augmented("add", other)
    def __isub__(self, other: Any) -> "Tensor": return self._augmented("sub", other)
    def __imul__(self, other: Any) -> "Tensor": return self._augmented("mul", other)
    def __itruediv__(self, other: Any) -> "Tensor": return self._augmented("div", other)

    def __setitem__(self, index: Any, value: Any) -> None:
        """``x[index] = value``: ``value`` (a scalar, array or tensor) broadcast to ``x[index]``'s
        shape and converted to this dtype (as ``copy_``), written in place; like every in-place
        update, not on a tensor that requires grad outside ``no_grad``."""
        self._check_writable("setitem")
        raw = _ops.raw_index(self, index)
        self.data[raw] = self._broadcast_value("setitem", value, self.data[raw].shape)

    def _broadcast_value(self, op: str, value: Any, shape: tuple) -> Any:
        """``value`` (scalar, array or tensor) as an array of this backend broadcast to ``shape``."""
        mod = backend.get_array_module(self.data)
        value = mod.asarray(value.data if isinstance(value, TensorMethods) else value)
        try:
            return mod.broadcast_to(value, shape)
        except ValueError:
            raise RuntimeError(f"{op}: a value of shape {value.shape} cannot be broadcast to the shape "
                               f"{shape}") from None

    def add_(self, other: Any, alpha: Any = None) -> "Tensor":
        return self._in_place("add_", lambda: _ops.add(self, other, alpha=alpha))

    def sub_(self, other: Any, alpha: Any = None) -> "Tensor":
        return self._in_place("sub_", lambda: _ops.sub(self, other, alpha=alpha))

    def mul_(self, other: Any) -> "Tensor":
        return self._in_place("mul_", lambda: _ops.mul(self, other))

    def div_(self, other: Any) -> "Tensor":
        return self._in_place("div_", lambda: _ops.div(self, other))

    def clamp_(self, min: Any = None, max: Any = None) -> "Tensor":  # noqa: A002  (PyTorch's names)
        return self._in_place("clamp_", lambda: _ops.clip(self, min, max))

    clip_ = clamp_

    def fill_(self, value: Any) -> "Tensor":
        value = value.item() if isinstance(value, TensorMethods) else value
        return self._in_place("fill_", lambda: backend.get_array_module(self.data).full(self.shape, value,
                                                                                       dtype=self.dtype))

    def zero_(self) -> "Tensor":
        return self.fill_(0)

    def copy_(self, src: Any) -> "Tensor":
        """Copy ``src``'s values (broadcast to this shape, converted to this dtype) into ``self``."""
        src = self._broadcast_value("copy_", src, self.shape)
        return self._in_place("copy_", lambda: src.astype(self.dtype))

    # -- operators (the math lives in ops/ and functional/)
    def __add__(self, other: Any) -> "Tensor": return _ops.add(self, other)
    def __radd__(self, other: Any) -> "Tensor": return _ops.add(other, self)
    def __sub__(self, other: Any) -> "Tensor": return _ops.sub(self, other)
    def __rsub__(self, other: Any) -> "Tensor": return _ops.sub(other, self)
    def __mul__(self, other: Any) -> "Tensor": return _ops.mul(self, other)
    def __rmul__(self, other: Any) -> "Tensor": return _ops.mul(other, self)
    def __truediv__(self, other: Any) -> "Tensor": return _ops.div(self, other)
    def __rtruediv__(self, other: Any) -> "Tensor": return _ops.div(other, self)
    def __floordiv__(self, other: Any) -> "Tensor": return _ops.floor_divide(self, other)
    def __rfloordiv__(self, other: Any) -> "Tensor": return _ops.floor_divide(other, self)
    def __mod__(self, other: Any) -> "Tensor": return _ops.remainder(self, other)
    def __rmod__(self, other: Any) -> "Tensor": return _ops.remainder(other, self)
    def __pow__(self, other: Any) -> "Tensor": return _ops.pow(self, other)
    def __rpow__(self, other: Any) -> "Tensor": return _ops.pow(other, self)
    def __matmul__(self, other: Any) -> "Tensor": return _ops.matmul(self, other)
    def __rmatmul__(self, other: Any) -> "Tensor": return _ops.matmul(other, self)
    def __and__(self, other: Any) -> "Tensor": return _ops.bitwise_and(self, other)
    def __rand__(self, other: Any) -> "Tensor": return _ops.bitwise_and(other, self)
    def __or__(self, other: Any) -> "Tensor": return _ops.bitwise_or(self, other)
    def __ror__(self, other: Any) -> "Tensor": return _ops.bitwise_or(other, self)
    def __xor__(self, other: Any) -> "Tensor": return _ops.bitwise_xor(self, other)
    def __rxor__(self, other: Any) -> "Tensor": return _ops.bitwise_xor(other, self)
    def __invert__(self) -> "Tensor": return _ops.bitwise_not(self)
    def __neg__(self) -> "Tensor": return _ops.neg(self)
    def __pos__(self) -> "Tensor": return self
    def __abs__(self) -> "Tensor": return _ops.abs(self)
    def __getitem__(self, index: Any) -> "Tensor": return _ops.getitem(self, index)
    def __lt__(self, other: Any) -> "Tensor": return _ops.lt(self, other)
    def __le__(self, other: Any) -> "Tensor": return _ops.le(self, other)
    def __gt__(self, other: Any) -> "Tensor": return _ops.gt(self, other)
    def __ge__(self, other: Any) -> "Tensor": return _ops.ge(self, other)
    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return NotImplemented if other is None or isinstance(other, str) else _ops.eq(self, other)  # t == None: False

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return NotImplemented if other is None or isinstance(other, str) else _ops.ne(self, other)

    # -- methods, PyTorch names and meanings (each one calls the function of the same name)
    def add(self, other: Any, alpha: Any = None) -> "Tensor": return _ops.add(self, other, alpha=alpha)
    def sub(self, other: Any, alpha: Any = None) -> "Tensor": return _ops.sub(self, other, alpha=alpha)
    def mul(self, other: Any) -> "Tensor": return _ops.mul(self, other)
    def div(self, other: Any, rounding_mode: str | None = None) -> "Tensor":
        return _ops.div(self, other, rounding_mode=rounding_mode)
    def pow(self, other: Any) -> "Tensor": return _ops.pow(self, other)
    def exp(self) -> "Tensor": return _ops.exp(self)
    def log(self) -> "Tensor": return _ops.log(self)
    def sqrt(self) -> "Tensor": return _ops.sqrt(self)
    def tanh(self) -> "Tensor": return _ops.tanh(self)
    def sigmoid(self) -> "Tensor": return _ops.sigmoid(self)
    def relu(self) -> "Tensor": return _ops.relu(self)
    def gelu(self, approximate: str = "none") -> "Tensor": return _fn.activations.gelu(self, approximate)
    def abs(self) -> "Tensor": return _ops.abs(self)
    def sin(self) -> "Tensor": return _ops.sin(self)
    def cos(self) -> "Tensor": return _ops.cos(self)
    def tan(self) -> "Tensor": return _ops.tan(self)
    def asin(self) -> "Tensor": return _ops.asin(self)
    def acos(self) -> "Tensor": return _ops.acos(self)
    def atan(self) -> "Tensor": return _ops.atan(self)
    def sinh(self) -> "Tensor": return _ops.sinh(self)
    def cosh(self) -> "Tensor": return _ops.cosh(self)
    def log2(self) -> "Tensor": return _ops.log2(self)
    def log10(self) -> "Tensor": return _ops.log10(self)
    def log1p(self) -> "Tensor": return _ops.log1p(self)
    def expm1(self) -> "Tensor": return _ops.expm1(self)
    def exp2(self) -> "Tensor": return _ops.exp2(self)
    def rsqrt(self) -> "Tensor": return _ops.rsqrt(self)
    def erf(self) -> "Tensor": return _ops.erf(self)
    def sign(self) -> "Tensor": return _ops.sign(self)
    def floor(self) -> "Tensor": return _ops.floor(self)
    def ceil(self) -> "Tensor": return _ops.ceil(self)
    def trunc(self) -> "Tensor": return _ops.trunc(self)
    def isnan(self) -> "Tensor": return _ops.isnan(self)
    def isinf(self) -> "Tensor": return _ops.isinf(self)
    def isfinite(self) -> "Tensor": return _ops.isfinite(self)
    def logical_not(self) -> "Tensor": return _ops.logical_not(self)
    def bitwise_not(self) -> "Tensor": return _ops.bitwise_not(self)
    def round(self, decimals: int = 0) -> "Tensor": return _ops.round(self, decimals)
    def nan_to_num(self, nan: float = 0.0, posinf: Any = None, neginf: Any = None) -> "Tensor":
        return _ops.nan_to_num(self, nan, posinf, neginf)
    def atan2(self, other: Any) -> "Tensor": return _ops.atan2(self, other)
    def logaddexp(self, other: Any) -> "Tensor": return _ops.logaddexp(self, other)
    def lerp(self, end: Any, weight: Any) -> "Tensor": return _ops.lerp(self, end, weight)
    def remainder(self, other: Any) -> "Tensor": return _ops.remainder(self, other)
    def fmod(self, other: Any) -> "Tensor": return _ops.fmod(self, other)
    def floor_divide(self, other: Any) -> "Tensor": return _ops.floor_divide(self, other)
    def logical_and(self, other: Any) -> "Tensor": return _ops.logical_and(self, other)
    def logical_or(self, other: Any) -> "Tensor": return _ops.logical_or(self, other)
    def logical_xor(self, other: Any) -> "Tensor": return _ops.logical_xor(self, other)
    def isclose(self, other: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> "Tensor":
        return _ops.isclose(self, other, rtol, atol, equal_nan)
    def allclose(self, other: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
        return _ops.allclose(self, other, rtol, atol, equal_nan)
    def equal(self, other: Any) -> bool: return _ops.equal(self, other)
    def eq(self, other: Any) -> "Tensor": return _ops.eq(self, other)
    def ne(self, other: Any) -> "Tensor": return _ops.ne(self, other)
    def lt(self, other: Any) -> "Tensor": return _ops.lt(self, other)
    def le(self, other: Any) -> "Tensor": return _ops.le(self, other)
    def gt(self, other: Any) -> "Tensor": return _ops.gt(self, other)
    def ge(self, other: Any) -> "Tensor": return _ops.ge(self, other)
    def neg(self) -> "Tensor": return _ops.neg(self)
    def clip(self, min: Any = None, max: Any = None, **lo_hi: Any) -> "Tensor":  # noqa: A002
        return _ops.clip(self, min, max, **lo_hi)
    clamp = clip
    def maximum(self, other: Any) -> "Tensor": return _ops.maximum(self, other)
    def minimum(self, other: Any) -> "Tensor": return _ops.minimum(self, other)
    def sum(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.sum(self, dim, keepdim, **kw)
    def mean(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.mean(self, dim, keepdim, **kw)
    def max(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> Any: return _ops.max(self, dim, keepdim, **kw)
    def min(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> Any: return _ops.min(self, dim, keepdim, **kw)
    def amax(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.amax(self, dim, keepdim, **kw)
    def amin(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.amin(self, dim, keepdim, **kw)
    def var(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.var(self, dim, keepdim, **kw)
    def std(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.std(self, dim, keepdim, **kw)
    def prod(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.prod(self, dim, keepdim, **kw)
    def norm(self, p: Any = 2, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.norm(self, p, dim, keepdim, **kw)
    def any(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.any(self, dim, keepdim, **kw)
    def all(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.all(self, dim, keepdim, **kw)
    def argmax(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.argmax(self, dim, keepdim, **kw)
    def argmin(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _ops.argmin(self, dim, keepdim, **kw)
    def reshape(self, *shape: Any) -> "Tensor": return _ops.reshape(self, *shape)
    view = reshape
    def reshape_as(self, other: "Tensor") -> "Tensor": return _ops.reshape(self, other.shape)
    view_as = reshape_as
    def transpose(self, dim0: int, dim1: int) -> "Tensor": return _ops.transpose(self, dim0, dim1)
    def permute(self, *dims: Any) -> "Tensor": return _ops.permute(self, *dims)
    def swapaxes(self, dim0: int, dim1: int) -> "Tensor": return _ops.swapaxes(self, dim0, dim1)
    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor": return _ops.flatten(self, start_dim, end_dim)
    def squeeze(self, dim: Any = None, **kw: Any) -> "Tensor": return _ops.squeeze(self, dim, **kw)
    def unsqueeze(self, dim: Any = None, **kw: Any) -> "Tensor": return _ops.unsqueeze(self, dim, **kw)
    def expand(self, *shape: Any) -> "Tensor": return _ops.expand(self, *shape)
    def expand_as(self, other: "Tensor") -> "Tensor": return _ops.broadcast_to(self, other.shape)
    def broadcast_to(self, shape: tuple) -> "Tensor": return _ops.broadcast_to(self, shape)
    def split(self, split_size: Any, dim: int | None = None, **kw: Any) -> list:
        return _ops.split(self, split_size, dim, **kw)
    def masked_fill(self, mask: Any, value: Any) -> "Tensor": return _ops.masked_fill(self, mask, value)
    def masked_fill_(self, mask: Any, value: Any) -> "Tensor":
        return self._in_place("masked_fill_", lambda: _ops.masked_fill(self, mask, value))
    def flip(self, *dims: Any) -> "Tensor": return _ops.flip(self, dims[0] if len(dims) == 1 else dims)
    def roll(self, shifts: Any, dims: Any = None) -> "Tensor": return _ops.roll(self, shifts, dims)
    def repeat(self, *sizes: Any) -> "Tensor": return _ops.repeat(self, *sizes)
    def tile(self, *dims: Any) -> "Tensor":
        """PyTorch's ``tile``: ``repeat`` with missing leading counts taken as 1."""
        reps = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return _ops.repeat(self, *((1,) * (self.ndim - len(reps)) + tuple(reps)))
    def where(self, condition: Any, other: Any) -> "Tensor":
        """``self`` where ``condition`` holds, else ``other`` (PyTorch's ``x.where(cond, y)``)."""
        return _ops.where(condition, self, other)
    def square(self) -> "Tensor": return self * self
    def is_contiguous(self) -> bool: return bool(self.data.flags.c_contiguous)
    def is_floating_point(self) -> bool: return self.data.dtype.kind == "f"
    def element_size(self) -> int: return int(self.data.itemsize)
    def nelement(self) -> int: return int(self.data.size)
    def ndimension(self) -> int: return int(self.data.ndim)
    def repeat_interleave(self, repeats: Any, dim: int | None = None) -> "Tensor":
        return _ops.repeat_interleave(self, repeats, dim)
    def chunk(self, chunks: int, dim: int = 0) -> list: return _ops.chunk(self, chunks, dim)
    def unflatten(self, dim: int, sizes: Any) -> "Tensor": return _ops.unflatten(self, dim, sizes)
    def tril(self, diagonal: int = 0) -> "Tensor": return _ops.tril(self, diagonal)
    def triu(self, diagonal: int = 0) -> "Tensor": return _ops.triu(self, diagonal)
    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1) -> "Tensor":
        return _ops.diagonal(self, offset, dim1, dim2)
    def diag(self, diagonal: int = 0) -> "Tensor": return _ops.diag(self, diagonal)
    def t(self) -> "Tensor":
        """The transpose of a matrix (a 0-d or 1-d tensor is returned as it is)."""
        if self.data.ndim > 2:
            raise ValueError(f"t() needs at most 2 dimensions, got shape {self.data.shape}: use transpose(dim0, dim1)")
        return _ops.reverse_axes(self)
    def mm(self, other: "Tensor") -> "Tensor": return _ops.mm(self, other)
    def bmm(self, other: "Tensor") -> "Tensor": return _ops.bmm(self, other)
    def dot(self, other: "Tensor") -> "Tensor": return _ops.dot(self, other)
    def outer(self, other: "Tensor") -> "Tensor": return _ops.outer(self, other)
    def unbind(self, dim: int = 0) -> tuple: return _ops.unbind(self, dim)
    def narrow(self, dim: int, start: int, length: int) -> "Tensor": return _ops.narrow(self, dim, start, length)
    def movedim(self, source: Any, destination: Any) -> "Tensor": return _ops.movedim(self, source, destination)
    def cumsum(self, dim: int, dtype: Any = None) -> "Tensor": return _ops.cumsum(self, dim, dtype)
    def cumprod(self, dim: int, dtype: Any = None) -> "Tensor": return _ops.cumprod(self, dim, dtype)
    def logcumsumexp(self, dim: int) -> "Tensor": return _ops.logcumsumexp(self, dim)
    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
        return _ops.sort(self, dim, descending, stable)
    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> "Tensor":
        return _ops.argsort(self, dim, descending, stable)
    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:  # noqa: A002
        return _ops.topk(self, k, dim, largest, sorted)
    def gather(self, dim: int, index: Any) -> "Tensor": return _ops.gather(self, dim, index)
    def scatter(self, dim: int, index: Any, src: Any = None, **kw: Any) -> "Tensor":
        return _ops.scatter(self, dim, index, src, **kw)
    def scatter_add(self, dim: int, index: Any, src: Any) -> "Tensor": return _ops.scatter_add(self, dim, index, src)
    def index_select(self, dim: int, index: Any) -> "Tensor": return _ops.index_select(self, dim, index)
    def masked_select(self, mask: Any) -> "Tensor": return _ops.masked_select(self, mask)
    def nonzero(self, as_tuple: bool = False) -> Any: return _ops.nonzero(self, as_tuple)
    def new_zeros(self, *size: Any, dtype: Any = None) -> "Tensor": return _ops.zeros(*size, dtype=dtype or self.dtype)
    def new_ones(self, *size: Any, dtype: Any = None) -> "Tensor": return _ops.ones(*size, dtype=dtype or self.dtype)
    def new_full(self, size: Any, fill_value: Any, dtype: Any = None) -> "Tensor":
        return _ops.full(size, fill_value, dtype=dtype or self.dtype)
    def matmul(self, other: Any) -> "Tensor": return _ops.matmul(self, other)
    def softmax(self, dim: int | None = None, **kw: Any) -> "Tensor": return _fn.softmax(self, dim=dim, **kw)
    def log_softmax(self, dim: int | None = None, **kw: Any) -> "Tensor": return _fn.log_softmax(self, dim=dim, **kw)
    def logsumexp(self, dim: Any = None, keepdim: bool = False, **kw: Any) -> "Tensor":
        return _fn.logsumexp(self, dim=dim, keepdim=keepdim, **kw)

    @property
    def T(self) -> "Tensor":
        """All axes reversed (the matrix transpose of a 2-d tensor)."""
        return _ops.reverse_axes(self)

    @property
    def mT(self) -> "Tensor":
        """The last two axes exchanged (a batch of matrices, each transposed); a 0-d tensor as it is."""
        if self.data.ndim == 1:
            raise RuntimeError("mT needs a matrix or a batch of matrices, got a 1-d tensor")
        return _ops.transpose(self, -2, -1) if self.data.ndim else self


_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}   # bool < integer < floating < complex


class Size(int):
    """``Tensor.size``: the number of elements, as NumPy's ``size`` (an int); called, as
    PyTorch's ``size()``: the shape, or with ``dim`` the length of that axis."""

    def __new__(cls, n: int, shape: tuple) -> "Size":
        self = super().__new__(cls, n)
        self.shape = shape
        return self

    def __call__(self, dim: int | None = None) -> Any:
        if dim is None:
            return self.shape
        if not self.shape:
            raise IndexError(f"size({dim}): a 0-d tensor has no dimensions")
        return self.shape[_ops.normalize_axis(dim, len(self.shape), "size", self.shape)]
