"""Flat buffers: the parameters of a group laid end to end in one array.

An optimizer that loops over parameters makes several small array calls per
parameter per step; with a hundred parameters that is a thousand Python calls.
Instead each parameter group keeps ONE contiguous buffer holding all of its
parameters end to end, one for their gradients, and (in the optimizer) one per
moment. Each ``p.data`` is rebound to a view (a reshaped slice) of the
parameter buffer and each ``p.grad`` to a view of the gradient buffer::

    flat param  [ w w w w w w | b b | w w w w ... ]
                  p0.data (2, 3)  p1.data (2,)  ...
    flat grad   [ same layout, one slice per p.grad ]

so the model reads and writes its weights through the views unchanged,
backward accumulates ``p.grad += g`` straight into the gradient buffer, and
the optimizer updates every parameter of the group in a few whole-buffer calls.

Views can be broken from outside: ``p.data = new_array`` (weights loaded by
assignment) or ``p.grad = None`` followed by a backward that assigns a fresh
array. :meth:`FlatGroup.sync` checks identity (``p.data is view``) before every
use and copies any such array back into the buffer, rebinding the view.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import backend
from ..backend import get_array_module
from ..tensor import Tensor


class FlatGroup:
    """The flat parameter and gradient buffers of one parameter group.

    Attributes:
        params: the tensors, in buffer order.
        shapes, offsets: parameter ``i`` occupies ``param[offsets[i]:offsets[i+1]]``.
        param, grad: the flat 1-D buffers (same dtype and backend as the parameters).
        xp, dtype: the array module and dtype all parameters share.
    """

    def __init__(self, params: Sequence[Tensor], where: str) -> None:
        self.params = list(params)
        self.where = where
        first = self.params[0].data if self.params else backend.xp().zeros(0, np.float32)
        self.xp, self.dtype = get_array_module(first), first.dtype
        for i, p in enumerate(self.params):
            if get_array_module(p.data) is not self.xp:
                raise TypeError(f"{where}: parameter {i} is on another backend than parameter 0; "
                                f"one group needs one backend")
            if p.dtype != self.dtype:
                raise TypeError(f"{where}: parameter {i} has dtype {p.dtype} but parameter 0 has "
                                f"{self.dtype}; one group needs one dtype")
        self.shapes = [tuple(p.shape) for p in self.params]
        self.offsets = [0]
        for p in self.params:
            self.offsets.append(self.offsets[-1] + int(p.size))
        self.param = self.xp.empty(self.offsets[-1], dtype=self.dtype)
        self.grad = self.xp.zeros(self.offsets[-1], dtype=self.dtype)
        self.data_views = [self.param[a:b].reshape(s) for a, b, s in self._slots()]
        self.grad_views = [self.grad[a:b].reshape(s) for a, b, s in self._slots()]
        # bound[i]: p.grad is (or was, until set to None) the view, so its slice may hold values
        self.bound = [False] * len(self.params)
        for i, p in enumerate(self.params):
            self.data_views[i][...] = p.data
            p.data = self.data_views[i]
        self.sync()

    def _slots(self) -> list:
        return [(self.offsets[i], self.offsets[i + 1], s) for i, s in enumerate(self.shapes)]

    @property
    def size(self) -> int:
        """Number of scalars in the group."""
        return self.offsets[-1]

    def _copy_in(self, i: int, arr: Any, view: Any, what: str) -> None:
        """Copy an array assigned from outside into parameter ``i``'s slice of a buffer."""
        if isinstance(arr, Tensor):
            arr = arr.data
        if isinstance(arr, np.ndarray) and self.xp is not np:    # host values for a GPU group: copy them over
            arr = backend.asarray(arr, backend="cupy")
        if not hasattr(arr, "shape") or get_array_module(arr) is not self.xp:
            raise TypeError(f"{self.where}: parameter {i} got a new .{what} that is not an array of "
                            f"this group's backend ({type(arr).__name__}); build a new optimizer "
                            f"after moving a model")
        if tuple(arr.shape) != self.shapes[i]:
            raise ValueError(f"{self.where}: parameter {i} got a new .{what} of shape "
                             f"{tuple(arr.shape)}, expected {self.shapes[i]}")
        view[...] = arr  # one copy (cast to the group's dtype if needed)

    def sync(self) -> list[bool]:
        """Bring arrays assigned from outside back into the buffers and rebind the views.

        Returns, per parameter, whether it has a gradient (``p.grad is not None``).
        The gradient slice of a parameter without one is zero-filled once, so that
        whole-buffer reductions (the gradient norm) see zeros there.
        """
        has_grad = []
        for i, p in enumerate(self.params):
            if p.data is not self.data_views[i]:  # e.g. weights loaded by ``p.data = array``
                self._copy_in(i, p.data, self.data_views[i], "data")
                p.data = self.data_views[i]
            g = p.grad
            if g is None:
                if self.bound[i]:
                    self.grad_views[i].fill(0)
                    self.bound[i] = False
                has_grad.append(False)
                continue
            if g is not self.grad_views[i]:  # a fresh array from backward, or assigned
                self._copy_in(i, g, self.grad_views[i], "grad")
                p.grad = self.grad_views[i]
            self.bound[i] = True
            has_grad.append(True)
        return has_grad

    def bind_grad(self, i: int) -> None:
        """Give parameter ``i`` its view of the gradient buffer as ``p.grad`` (its values as they are)."""
        self.params[i].grad = self.grad_views[i]
        self.bound[i] = True

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero the gradient buffer in one call.

        ``set_to_none=False`` (the fast path): every parameter that has a gradient
        keeps (or gets back) its view, now zero, and the next backward accumulates
        straight into the buffer. A parameter whose grad is None stays None, as
        in torch. ``set_to_none=True``: every ``p.grad`` becomes None; the next
        backward assigns fresh arrays, which the next step copies in.
        """
        self.grad.fill(0)
        for i, p in enumerate(self.params):
            if set_to_none:
                p.grad = None
                self.bound[i] = False
            elif p.grad is not None:
                p.grad = self.grad_views[i]
                self.bound[i] = True


def check_no_shared_memory(params: Sequence[Tensor]) -> None:
    """Raise if two distinct parameters share memory (a tie the flat buffer would break).

    Weights are tied by using the same Tensor object twice; two tensors whose
    ``.data`` overlap would each get their own slice and silently drift apart.
    Only arrays with the same base array are compared, so the check is cheap.
    """
    by_root: dict[int, list] = {}
    for i, p in enumerate(params):
        root = p.data
        while getattr(root, "base", None) is not None:
            root = root.base
        by_root.setdefault(id(root), []).append(i)
    for idx in by_root.values():
        for k, i in enumerate(idx):
            a = params[i].data
            xp = get_array_module(a)
            for j in idx[k + 1:]:
                if a.size and params[j].size and xp.may_share_memory(a, params[j].data):
                    raise ValueError(f"parameters {i} and {j} share memory: tie weights by using "
                                     f"the same Tensor object, not two tensors over one array")
