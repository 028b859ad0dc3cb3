"""Tensor and Function: define-by-run reverse-mode automatic differentiation.

A :class:`Tensor` wraps an array of the active backend (``.data``). Every op
that makes a tensor from others is a :class:`Function` subclass with a
``forward`` (raw arrays in, one raw array out) and, right under it, a
``backward`` (the gradient of the output in, one gradient per input out).
When any input requires a gradient, the output remembers the Function that
made it (``_ctx``), and the Function remembers its inputs: that chain of
records *is* the graph.

``loss.backward()`` walks the graph once in reverse topological order
(iteratively, so a chain of 100,000 ops needs no recursion), applies the
chain rule at each node, reduces each gradient to its input's shape in ONE
place (:func:`sum_to`, for broadcasting), accumulates into the ``.grad`` of
leaf tensors, and frees the graph as it goes unless ``retain_graph=True``.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

import numpy as np

from . import backend

_grad_enabled = True
OP_REGISTRY: dict[str, type] = {}  # every differentiable op, for the gradient-check meta-test

# The math behind the operators and methods lives in the layers above this one
# (tinyllm.ops, tinyllm.functional). This module imports neither: the package
# hands them in once, at import, through bind_math(), so arrows point down only.
_ops: Any = None
_fn: Any = None


def bind_math(ops: Any, functional: Any) -> None:
    """Give Tensor's operators and methods their implementations (``tinyllm/__init__.py`` calls it)."""
    global _ops, _fn
    _ops, _fn = ops, functional


# ----------------------------------------------------------------------------- grad mode

class no_grad:
    """Record nothing inside: ``with tinyllm.no_grad():``, ``@tinyllm.no_grad()`` or ``@tinyllm.no_grad``."""

    def __new__(cls, fn: Callable | None = None) -> Any:
        self = super().__new__(cls)
        return self if fn is None else self(fn)  # bare @no_grad: decorate fn at once

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, False

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return fn(*args, **kwargs)
        return wrapper


def is_grad_enabled() -> bool:
    return _grad_enabled


# ----------------------------------------------------------------------------- broadcasting

def sum_to(grad: Any, shape: tuple) -> Any:
    """Reduce ``grad`` to ``shape`` by summing the axes that broadcasting expanded.

    If ``y = broadcast(x)`` then ``dL/dx = sum of dL/dy over every copy of x``:
    the leading axes broadcasting added, and each axis where ``x`` had size 1.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


# ----------------------------------------------------------------------------- Function

class Function:
    """One differentiable op. Subclasses define ``forward`` and ``backward``.

    ``forward(*arrays, **params)`` gets the inputs' raw arrays and returns the
    output array; it stores on ``self`` only what backward needs.
    ``backward(grad)`` gets dL/d(output) and returns a tuple with one entry per
    input: dL/d(input) (any broadcastable shape) or ``None``. It must not
    return the same array object for two inputs unless that object is ``grad``
    itself (the engine copies it then before accumulating in place).
    ``self.needs_grad[i]`` tells backward which gradients are wanted.
    """

    __slots__ = ("inputs", "needs_grad", "__dict__")
    differentiable = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.differentiable:
            OP_REGISTRY[cls.__name__] = cls

    @classmethod
    def apply(cls, *inputs: "Tensor", **params: Any) -> "Tensor":
        ctx = cls.__new__(cls)
        out = ctx.forward(*[t.data for t in inputs], **params)
        if _grad_enabled and cls.differentiable:
            needs = tuple([t.requires_grad for t in inputs])  # a list is faster than a generator here
            if True in needs:
                ctx.inputs = inputs
                ctx.needs_grad = needs
                result = Tensor.__new__(Tensor)
                result.data, result.grad, result.requires_grad = out, None, True
                result._ctx, result._retain = ctx, False
                return result
        return Tensor._wrap(out)

    def forward(self, *arrays: Any, **params: Any) -> Any:  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must define forward()")

    def backward(self, grad: Any) -> tuple:  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must define backward()")


# ----------------------------------------------------------------------------- Tensor

class Tensor:
    """An n-dimensional array of the active backend that can record its history.

    Attributes:
        data: the backend array (``numpy.ndarray`` or ``cupy.ndarray``).
        grad: dL/d(self) after ``backward()``, same shape and dtype, or None.
        requires_grad: whether ops on this tensor are recorded for autograd.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retain", "__weakref__")
    __array_priority__ = 1000  # so ndarray (op) Tensor defers to Tensor's reflected op

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        mod = backend.get_array_module(data) if hasattr(data, "__array__") or backend.is_cupy_array(data) else None
        if mod is None or (mod is np and backend.get_backend() == "cupy"):
            mod = backend.xp()
        arr = mod.asarray(data, dtype=dtype)
        if dtype is None and arr.dtype.kind == "f" and not isinstance(data, (np.ndarray, np.generic)) \
                and not backend.is_cupy_array(data):
            arr = arr.astype(backend.get_default_dtype(), copy=False)  # Python floats -> default dtype
        if requires_grad and arr.dtype.kind not in "fc":
            raise TypeError(f"only floating tensors can require gradients, got dtype {arr.dtype}")
        self.data, self.grad, self.requires_grad = arr, None, requires_grad
        self._ctx, self._retain = None, False

    @staticmethod
    def _wrap(arr: Any) -> "Tensor":
        """A tensor around ``arr`` without copying or checking (used by ops)."""
        t = Tensor.__new__(Tensor)
        t.data, t.grad, t.requires_grad, t._ctx, t._retain = arr, None, False, None, False
        return t

    # -- array facts
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> "Size":
        """The number of elements (NumPy's ``size``); called, PyTorch's ``size()``: the shape,
        or ``size(dim)`` one side of it."""
        return Size(self.data.size, self.data.shape)

    def dim(self) -> int:
        """The number of axes (PyTorch's name for ``ndim``)."""
        return self.data.ndim

    def numel(self) -> int:
        """The number of elements."""
        return int(self.data.size)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def device(self) -> str:
        return "cuda" if backend.is_cupy_array(self.data) else "cpu"

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (copied from the GPU when on CuPy)."""
        return backend.to_numpy(self.data)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a one-element tensor, got shape {self.shape}")
        return self.data.item()

    def tolist(self) -> list:
        return self.numpy().tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def clone(self) -> "Tensor":
        """A copy of the data that stays in the graph (the gradient flows back to ``self``)."""
        return _ops.clone(self)

    def contiguous(self) -> "Tensor":
        """``self`` with C-contiguous data (a copy in the graph when it is not already)."""
        return self if self.data.flags.c_contiguous else _ops.clone(self)

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and self.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = flag
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor during backward (for inspection)."""
        self._retain = True

    def zero_grad(self) -> None:
        self.grad = None

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

    def to(self, target: Any = None, dtype: Any = None) -> "Tensor":
        """PyTorch's ``to``: a dtype (``to("float64")``, ``to(np.int64)``, ``dtype=``), a
        backend or device ("numpy"/"cpu", "cupy"/"cuda"), or another tensor's dtype and backend.

        A dtype conversion stays in the graph; a move to another backend is a new leaf.
        """
        out = self
        if isinstance(target, Tensor):
            target, dtype = target.device, target.dtype
        if isinstance(target, str) and target.split(":")[0] in _DEVICES:
            name = _DEVICES[target.split(":")[0]]
            if name != ("cupy" if backend.is_cupy_array(self.data) else "numpy"):
                out = Tensor(backend.asarray(self.data, backend=name), requires_grad=self.requires_grad)
        elif target is not None:
            dtype = target
        return out if dtype is None else _ops.cast(out, dtype)

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), precision=4, separator=", ", prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}, dtype={self.dtype}{extra})"

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub" or self.data.size != 1:
            raise TypeError(f"only integer tensors of one element can be used as an index, got {self.dtype} "
                            f"of shape {self.shape}")
        return int(self.data)

    __hash__ = object.__hash__  # identity, so tensors can key dicts despite __eq__

    # -- autograd
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate dL/d(leaf) into ``.grad`` of every leaf this tensor depends on.

        Args:
            grad: dL/d(self); may be omitted only for a one-element tensor (1 is used).
            retain_graph: keep the graph so backward can run through it again.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad "
                               "(no input had requires_grad=True, or it was made under no_grad)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a one-element tensor, "
                                   f"got shape {self.shape}: pass grad= of that shape")
            grad = backend.get_array_module(self.data).ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else backend.asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"grad has shape {grad.shape}, tensor has {self.shape}")
        if self._ctx is None:  # backward on a leaf: its gradient is grad itself
            _accumulate_leaf(self, grad, alias=True)
            return
        grads: dict[int, Any] = {id(self): grad}
        order = _toposort(self)
        while order:  # outputs before inputs; popping drops each node as soon as it is done
            node = order.pop()
            ctx = node._ctx
            g = grads.pop(id(node), None)
            if g is not None:
                if node._retain:
                    node.grad = g
                in_grads = ctx.backward(g)
                for inp, ig, need in zip(ctx.inputs, in_grads, ctx.needs_grad):
                    if ig is None or not need:
                        continue
                    if ig.shape != inp.data.shape:
                        ig = sum_to(ig, inp.data.shape)
                    if inp._ctx is None:
                        _accumulate_leaf(inp, ig, alias=ig is g or ig.base is not None)
                    else:
                        prev = grads.get(id(inp))
                        grads[id(inp)] = ig if prev is None else prev + ig
            if not retain_graph:  # free as we go: drop the saved arrays and the inputs
                ctx.inputs = None
                ctx.__dict__.clear()

    # -- in place (PyTorch's trailing underscore), on tensors outside the graph only
    def _in_place(self, op: str, compute: Callable[[], Any]) -> "Tensor":
        """Write ``compute()`` (an array or Tensor, computed without recording) into
        ``self.data``, after PyTorch's checks."""
        if self.requires_grad and _grad_enabled:
            raise RuntimeError(f"{op}: a tensor that requires grad cannot be modified in place (its old "
                               "values may be needed by backward); use the out-of-place op, or run "
                               "it under tinyllm.no_grad()")
        with no_grad():
            result = compute()
        result = result.data if isinstance(result, Tensor) else result
        if _KIND_RANK[result.dtype.kind] > _KIND_RANK[self.dtype.kind]:
            raise RuntimeError(f"{op}: the result type {result.dtype} cannot be cast to this tensor's {self.dtype}")
        self.data[...] = result
        return self

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
        value = value.item() if isinstance(value, Tensor) else value
        return self._in_place("fill_", lambda: backend.get_array_module(self.data).full(self.shape, value,
                                                                                       dtype=self.dtype))

    def zero_(self) -> "Tensor":
        return self.fill_(0)

    def copy_(self, src: Any) -> "Tensor":
        """Copy ``src``'s values (broadcast to this shape, converted to this dtype) into ``self``."""
        src = src.data if isinstance(src, Tensor) else src
        mod = backend.get_array_module(self.data)
        return self._in_place("copy_", lambda: mod.broadcast_to(mod.asarray(src), self.shape).astype(self.dtype))

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
    def __eq__(self, other: Any) -> "Tensor": return _ops.eq(self, other)  # type: ignore[override]
    def __ne__(self, other: Any) -> "Tensor": return _ops.ne(self, other)  # type: ignore[override]

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
    def gelu(self, approximate: str = "tanh") -> "Tensor": return _fn.activations.gelu(self, approximate)
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
    def repeat_interleave(self, repeats: Any, dim: int | None = None) -> "Tensor":
        return _ops.repeat_interleave(self, repeats, dim)
    def chunk(self, chunks: int, dim: int = 0) -> list: return _ops.chunk(self, chunks, dim)
    def unflatten(self, dim: int, sizes: Any) -> "Tensor": return _ops.unflatten(self, dim, sizes)
    def tril(self, diagonal: int = 0) -> "Tensor": return _ops.tril(self, diagonal)
    def triu(self, diagonal: int = 0) -> "Tensor": return _ops.triu(self, diagonal)
    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1) -> "Tensor":
        return _ops.diagonal(self, offset, dim1, dim2)
    def diag(self, diagonal: int = 0) -> "Tensor": return _ops.diag(self, diagonal)
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
    def new_tensor(self, data: Any, dtype: Any = None) -> "Tensor": return Tensor(data, dtype=dtype or self.dtype)
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
        """The last two axes exchanged (a batch of matrices, each transposed)."""
        return _ops.transpose(self, -2, -1)


_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}   # bool < integer < floating < complex
_DEVICES = {"numpy": "numpy", "cpu": "numpy", "cupy": "cupy", "cuda": "cupy"}


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


def _accumulate_leaf(t: Tensor, g: Any, alias: bool) -> None:
    """``t.grad += g``, in place when t already owns a gradient buffer."""
    if t.grad is None:
        t.grad = g.copy() if alias else g
        if t.grad.dtype != t.data.dtype:
            t.grad = t.grad.astype(t.data.dtype)
    else:
        t.grad += g


def _toposort(root: Tensor) -> list:
    """Non-leaf tensors reachable from ``root``, each after all its inputs (iterative DFS)."""
    order, seen = [], set()
    stack: list = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        ctx = t._ctx
        if ctx.inputs is None:
            raise RuntimeError("backward() through a graph that was already freed: "
                               "pass retain_graph=True to the first backward() to run it twice")
        stack.append((t, True))
        for inp in ctx.inputs:
            if inp._ctx is not None and id(inp) not in seen:
                stack.append((inp, False))
    return order


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a tensor on the active backend. Python floats become the default dtype."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def as_tensor(x: Any, like: Tensor | None = None) -> Tensor:
    """``x`` if it is a Tensor, else a constant tensor (scalars take ``like``'s dtype)."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float, bool)):
        dt = like.dtype if like.dtype.kind == "f" or isinstance(x, (int, bool)) else backend.get_default_dtype()
        return Tensor._wrap(backend.get_array_module(like.data).asarray(x, dtype=dt))
    return Tensor(x)


def parameters_of(tensors: Iterable[Tensor]) -> list:
    return [t for t in tensors if t.requires_grad]
