"""Module and Parameter: the containers layers and models are built from.

A :class:`Module` registers every :class:`Parameter` and sub-module assigned
to one of its attributes, in assignment order, so ``named_parameters()``
yields dotted names in a deterministic order (``h.0.attn.c_attn.weight``).
Attributes stay ordinary Python attributes: ``self.weight`` is a plain
lookup on the hot path, the registry only remembers the names.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .. import backend
from ..ops.axes import ShapeError
from ..tensor import _DEVICES, Tensor


class StateDictError(KeyError, RuntimeError):
    """Missing or unexpected state-dict entries: a ``KeyError``, and PyTorch's ``RuntimeError``."""

    def __str__(self) -> str:
        return str(self.args[0])


class LoadResult(list):
    """What ``load_state_dict`` returns: the missing names (a list), with PyTorch's
    ``missing_keys`` and ``unexpected_keys``."""

    def __init__(self, missing: list, unexpected: list) -> None:
        super().__init__(missing)
        self.missing_keys, self.unexpected_keys = list(missing), list(unexpected)


class Parameters(list):
    """What ``parameters()`` returns: a fresh list, which ``next()`` also walks as it walks
    PyTorch's generator (``next(model.parameters())`` is the first parameter)."""

    def __next__(self) -> "Parameter":
        if not self:
            raise StopIteration
        return self.pop(0)


class Parameter(Tensor):
    """A tensor that is a learnable weight of a module (always requires grad)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module:
    """Base class of layers and models: call it like a function to run ``forward``."""

    def __init__(self) -> None:
        object.__setattr__(self, "_param_names", [])
        object.__setattr__(self, "_module_names", [])
        object.__setattr__(self, "_buffer_names", [])
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_param_names" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        if name in self._param_names and isinstance(value, Tensor) and not isinstance(value, Parameter):
            raise TypeError(f"cannot assign a plain Tensor to parameter {name!r} of {type(self).__name__}: "
                            f"wrap it in nn.Parameter (or assign None to remove it)")
        if name in self._buffer_names and (value is None or isinstance(value, Tensor)) \
                and not isinstance(value, Parameter):
            object.__setattr__(self, name, value)                      # a new value for a buffer stays a buffer
            return
        for names in (self._param_names, self._module_names, self._buffer_names):
            if name in names:
                names.remove(name)
        if isinstance(value, Parameter):
            self._param_names.append(name)
        elif isinstance(value, Module):
            self._module_names.append(name)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for names in (self._param_names, self._module_names, self._buffer_names):
            if name in names:
                names.remove(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: Tensor | None) -> None:
        """A tensor that is part of the module's state but not learned (saved in ``state_dict``)."""
        object.__setattr__(self, name, value)
        if name not in self._buffer_names:
            self._buffer_names.append(name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} does not define forward()")

    # -- traversal
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name in self._module_names:
            yield name, getattr(self, name)

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """This module and every sub-module, depth first, with dotted names."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs; a tied parameter is listed once, under its first name."""
        seen: set[int] = set()
        for mod_name, mod in self.named_modules(prefix):
            for name in mod._param_names:
                p = getattr(mod, name)
                if remove_duplicate:
                    if id(p) in seen:
                        continue
                    seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> "Parameters":
        return Parameters(p for _, p in self.named_parameters())

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for mod_name, mod in self.named_modules():
            for name in mod._buffer_names:
                b = getattr(mod, name)
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of scalar weights (tied weights counted once)."""
        return int(sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only))

    # -- modes and gradients
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active) or, with ``mode=False``, evaluation mode."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (PyTorch's default), or with ``set_to_none=False`` zero it in place."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def requires_grad_(self, flag: bool = True) -> "Module":
        """Freeze (``False``) or unfreeze every parameter."""
        for p in self.parameters():
            p.requires_grad = flag
        return self

    # -- state
    def state_dict(self) -> dict[str, Any]:
        """Name -> array for every parameter (tied ones under each name) and buffer."""
        out = {name: p.data for name, p in self.named_parameters(remove_duplicate=False)}
        out.update({name: b.data for name, b in self.named_buffers()})
        return out

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> LoadResult:
        """Copy arrays into the parameters and buffers, in place (views stay valid).

        With ``strict`` a missing, unexpected or wrongly shaped entry is an error
        naming it (a wrong shape is one even when not strict). Returns the names that
        were missing (when not strict), with ``missing_keys`` and ``unexpected_keys``.
        """
        targets = dict(self.named_parameters(remove_duplicate=False))
        targets.update(dict(self.named_buffers()))
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
            if unexpected:
                parts.append(f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
            raise StateDictError(f"state dict does not match the model: {'; '.join(parts)}")
        values = {name: state[name].data if isinstance(state[name], Tensor) else state[name]
                  for name in targets if name in state}
        for name, value in values.items():  # check every shape before copying any: no half-loaded model
            if tuple(value.shape) != tuple(targets[name].shape):
                raise ShapeError(f"state dict entry {name!r} has shape {tuple(value.shape)}, "
                                 f"the model expects {tuple(targets[name].shape)}")
        for name, value in values.items():
            t = targets[name]
            mod = backend.get_array_module(t.data)
            t.data[...] = mod.asarray(backend.to_numpy(value) if mod is np else value, dtype=t.dtype)
        return LoadResult(missing, unexpected)

    def to(self, dtype: Any = None, backend_name: str | None = None, *, device: Any = None) -> "Module":
        """Convert every parameter and buffer to ``dtype`` and/or move it to a backend, in place;
        a device as PyTorch names it (``to("cpu")``, ``to("cuda:0")``, ``device=``) is a backend."""
        if isinstance(dtype, str) and dtype.split(":")[0] in _DEVICES:
            dtype, device = None, dtype
        if device is not None:
            backend_name = _DEVICES[str(device).split(":")[0]]
        for t in list(self.parameters()) + [b for _, b in self.named_buffers()]:
            data = t.data
            if backend_name is not None:
                data = backend.asarray(data, backend=backend_name)
            if dtype is not None and t.dtype.kind == "f":
                data = data.astype(dtype)
            t.data = data
            t.grad = None
        return self

    def double(self) -> "Module": return self.to(np.float64)
    def float(self) -> "Module": return self.to(np.float32)  # noqa: A003  (PyTorch's name)
    def half(self) -> "Module": return self.to(np.float16)
    def cpu(self) -> "Module": return self.to("cpu")
    def cuda(self) -> "Module": return self.to("cuda")

    # -- display
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        children = list(self.named_children())
        if not children:
            return lines[0] + ")"
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


class ModuleList(Module):
    """A list of modules, registered under the names "0", "1", ..."""

    def __init__(self, modules: Any = ()) -> None:
        super().__init__()
        self._items: list[Module] = []
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> None:
        setattr(self, str(len(self._items)), module)
        self._items.append(module)

    def __getitem__(self, i: int) -> Module:
        return self._items[i]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items)


class Sequential(ModuleList):
    """Modules applied one after another: ``Sequential(a, b)(x) == b(a(x))``."""

    def __init__(self, *modules: Module) -> None:
        super().__init__(modules)

    def forward(self, x: Any) -> Any:
        for m in self._items:
            x = m(x)
        return x


def functional_call(module: Module, params: dict[str, Tensor], *args: Any, **kwargs: Any) -> Any:
    """Run ``module(*args, **kwargs)`` with some parameters replaced by the given tensors.

    ``params`` maps names from ``named_parameters()`` to tensors. Every place a
    replaced parameter is used, tied copies included, sees the new tensor, so
    gradients flow to it. The module is restored afterwards. This is what lets
    ``gradcheck`` differentiate a whole model with respect to its weights:
    ``gradcheck(lambda *ws: functional_call(model, dict(zip(names, ws)), x), *weights)``.
    """
    named = dict(module.named_parameters())
    unknown = [k for k in params if k not in named]
    if unknown:
        raise KeyError(f"functional_call: no parameter named {', '.join(unknown)}")
    by_id = {id(named[k]): v for k, v in params.items()}
    swapped = []
    try:
        for m in module.modules():
            for name in m._param_names:
                old = getattr(m, name)
                if id(old) in by_id:
                    object.__setattr__(m, name, by_id[id(old)])
                    swapped.append((m, name, old))
        return module(*args, **kwargs)
    finally:
        for m, name, old in swapped:
            object.__setattr__(m, name, old)
