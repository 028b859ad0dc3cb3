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
from . import tensor_methods as _methods
from .tensor_methods import Size, TensorMethods, bind_math  # noqa: F401  (bind_math: for tinyllm/__init__.py)

_grad_enabled = True
OP_REGISTRY: dict[str, type] = {}  # every differentiable op, for the gradient-check meta-test



# ----------------------------------------------------------------------------- grad mode

class no_grad:
    """Record nothing inside: ``with tinyllm.no_grad():``, ``@tinyllm.no_grad()`` or ``@tinyllm.no_grad``."""

    mode = False                                 # whether the graph is recorded inside

    def __new__(cls, fn: Callable | None = None) -> Any:
        self = super().__new__(cls)
        return self if fn is None else self(fn)  # bare @no_grad: decorate fn at once

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, self.mode

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    """Record the graph inside, even within ``no_grad``: ``with tinyllm.enable_grad():`` or as a decorator."""

    mode = True


class inference_mode(no_grad):
    """PyTorch's name for a no-recording block: ``inference_mode()`` is ``no_grad()``;
    ``inference_mode(False)`` leaves the mode as it is."""

    def __new__(cls, mode: Any = True) -> Any:
        if callable(mode):                       # bare @inference_mode
            return no_grad(mode)
        self = object.__new__(cls)
        self.on = bool(mode)
        return self

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev = _grad_enabled
        if self.on:
            _grad_enabled = False

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with inference_mode(self.on):
                return fn(*args, **kwargs)
        return wrapper


class set_grad_enabled:
    """Turn recording on or off: at once when called (``tinyllm.set_grad_enabled(False)``), and
    back to the previous mode at the end of a ``with`` block or of a decorated function."""

    def __init__(self, mode: bool) -> None:
        global _grad_enabled
        self._prev, self.mode = _grad_enabled, bool(mode)
        _grad_enabled = self.mode

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn: Callable) -> Callable:
        global _grad_enabled
        _grad_enabled = self._prev                # as a decorator it changes nothing until called
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper


def is_grad_enabled() -> bool:
    return _grad_enabled


_methods._grad_mode.is_grad_enabled, _methods._grad_mode.no_grad = is_grad_enabled, no_grad


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

class Tensor(TensorMethods):
    """An n-dimensional array of the active backend that can record its history.

    Its operators and PyTorch-named methods come from :class:`~tinyllm.tensor_methods.TensorMethods`;
    this class holds the data, the facts about it and the autograd record.

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
    def grad_fn(self) -> "Function | None":
        """The Function node that made this tensor (None for a leaf or a constant)."""
        return self._ctx

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

    def to(self, target: Any = None, dtype: Any = None, device: Any = None) -> "Tensor":
        """PyTorch's ``to``: a dtype (``to("float64")``, ``to(np.int64)``, ``dtype=``), a
        backend or device ("numpy"/"cpu", "cupy"/"cuda"), or another tensor's dtype and backend.

        A dtype conversion stays in the graph; a move to another backend is a new leaf.
        """
        out = self
        target, dtype = (device, target if dtype is None else dtype) if device is not None else (target, dtype)
        if isinstance(target, Tensor):
            target, dtype = target.device, target.dtype
        if isinstance(target, str) and target.split(":")[0] in _DEVICES:
            name = _DEVICES[target.split(":")[0]]
            if name != ("cupy" if backend.is_cupy_array(self.data) else "numpy"):
                out = Tensor(backend.asarray(self.data, backend=name), requires_grad=self.requires_grad)
        elif target is not None:
            dtype = target
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), precision=4, separator=", ", prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}, dtype={self.dtype}{extra})"

    def __bool__(self) -> bool:
        return bool(self._one_value("bool"))

    def __float__(self) -> float:
        return float(self._one_value("float"))

    def __int__(self) -> int:
        return int(self._one_value("int"))

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub" or self.data.size != 1:
            raise TypeError(f"only integer tensors of one element can be used as an index, got {self.dtype} "
                            f"of shape {self.shape}")
        return int(self._one_value("int"))

    __hash__ = object.__hash__  # identity, so tensors can key dicts despite __eq__

    # -- autograd
    def backward(self, grad: Any = None, retain_graph: bool = False, gradient: Any = None) -> None:
        """Accumulate dL/d(leaf) into ``.grad`` of every leaf this tensor depends on.

        Args:
            grad: dL/d(self); may be omitted only for a one-element tensor (1 is used).
            retain_graph: keep the graph so backward can run through it again.
            gradient: PyTorch's name for ``grad``.
        """
        grad = gradient if grad is None else grad
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

    def new_tensor(self, data: Any, dtype: Any = None) -> "Tensor": return Tensor(data, dtype=dtype or self.dtype)
_DEVICES = {"numpy": "numpy", "cpu": "numpy", "cupy": "cupy", "cuda": "cupy"}


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
