"""The optimizer base class: parameter groups, flat buffers, the step loop, state.

A concrete optimizer (SGD, Adam, AdamW) writes only two methods, after MLX:

* ``init_state(group, flat_param)`` -> ``{name: zero buffer}``, its moments;
* ``update_one(param, grad, state, step, group)``, the update rule applied in
  place to flat 1-D arrays covering many parameters at once.

Everything else lives here: turning ``params`` into groups, one
:class:`~tinyllm.optim.flat.FlatGroup` per group (so a step is a few
whole-buffer calls, not a few calls per parameter), learning-rate control,
gradient clipping on the flat buffers, and a checkpointable ``state_dict``.

Parameters without a gradient (``p.grad is None``) are skipped, as torch does:
no update, no weight decay, their moments untouched and their step count not
advanced. Step counts are therefore kept per parameter; consecutive parameters
with a gradient and equal counts form one *run* (normally the whole group),
updated by ``update_one`` calls on cache-sized chunks of it.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import numpy as np

from ..backend import get_array_module, to_numpy
from ..tensor import Tensor
from .clip import clip_arrays_
from .flat import FlatGroup, check_no_shared_memory

_GROUP_EXTRAS = ("lr_scale", "name")  # group keys besides "params" and the hyperparameters


def _real(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a real number, got {value!r}")
    value = float(value)  # Python floats keep float32 arrays float32 (NEP 50)
    if not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be finite, got {value}")
    return value


def _nonnegative(value: Any, name: str, where: str) -> float:
    value = _real(value, name, where)
    if value < 0:
        raise ValueError(f"{where}: {name} must be >= 0, got {value}")
    return value


def _runs(has_grad: list, steps: list) -> list:
    """Maximal ranges ``[i, j)`` of consecutive parameters with a gradient and equal step counts."""
    runs, i, n = [], 0, len(has_grad)
    while i < n:
        if not has_grad[i]:
            i += 1
            continue
        j = i + 1
        while j < n and has_grad[j] and steps[j] == steps[i]:
            j += 1
        runs.append((i, j))
        i = j
    return runs


class Optimizer:
    """Base class of the optimizers.

    Args:
        params: an iterable of Tensors, or of parameter-group dicts such as
            ``{"params": [...], "weight_decay": 0.0, "lr_scale": 0.1}``. A group
            may override any hyperparameter; its ``lr`` (default: the ``lr``
            argument) is multiplied by its ``lr_scale`` (default 1).
        lr: the base learning rate.
        **hyper: the optimizer's other hyperparameters (the defaults of each group).

    Attributes:
        param_groups: list of dicts, torch-style; ``group["lr"]`` is the
            learning rate used for the group and may be edited between steps.
        state: per group, ``{moment name: flat buffer}``.
        step_count: number of ``step()`` calls so far.
        chunk_size: on the CPU, ``update_one`` sees at most this many values at
            a time, so the dozen passes of an update run over arrays that stay
            in cache (1.5-2x faster than whole-buffer passes over 12M float32
            values); on the GPU it sees whole runs.
    """

    chunk_size: int = 1 << 18

    def __init__(self, params: Iterable, lr: float, **hyper: Any) -> None:
        self.defaults = self.check_hyperparameters({"lr": lr, **hyper}, "optimizer")
        self._lr = self.defaults["lr"]
        self.param_groups = [self._make_group(g, gi) for gi, g in enumerate(_as_groups(params))]
        everything = [p for g in self.param_groups for p in g["params"]]
        if not everything:
            raise ValueError("optimizer got an empty parameter list")
        seen: dict[int, int] = {}
        for gi, g in enumerate(self.param_groups):
            for p in g["params"]:
                if id(p) in seen:
                    where = "twice in" if seen[id(p)] == gi else f"in param groups {seen[id(p)]} and"
                    raise ValueError(f"a parameter of shape {p.shape} appears {where} param group {gi}")
                seen[id(p)] = gi
        check_no_shared_memory(everything)
        self._flat = [FlatGroup(g["params"], f"param group {gi}") for gi, g in enumerate(self.param_groups)]
        self.state = [self.init_state(g, f.param) for g, f in zip(self.param_groups, self._flat)]
        self._steps = [[0] * len(f.params) for f in self._flat]
        self._where = {id(p): (gi, i) for gi, f in enumerate(self._flat) for i, p in enumerate(f.params)}
        self._work: dict = {}
        self.step_count = 0

    # ------------------------------------------------------------------ to override
    def check_hyperparameters(self, group: dict, where: str) -> dict:
        """Validate and normalise a group's hyperparameters (Python floats); return the group."""
        group["lr"] = _nonnegative(group["lr"], "lr", where)
        return group

    def init_state(self, group: dict, flat_param: Any) -> dict:
        """The optimizer's per-group buffers, zero-initialised, shaped like ``flat_param``."""
        return {}

    def update_one(self, param: Any, grad: Any, state: dict, step: int, group: dict) -> None:
        """Update ``param`` (a flat run of parameters) in place; ``step`` counts from 1."""
        raise TypeError(f"{type(self).__name__} must define update_one()")

    # ------------------------------------------------------------------ groups
    def _make_group(self, spec: dict, gi: int) -> dict:
        where = f"param group {gi}"
        unknown = set(spec) - {"params", *self.defaults, *_GROUP_EXTRAS}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: "
                             f"{sorted({'params', *self.defaults, *_GROUP_EXTRAS})}")
        params = spec["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{where}: parameter {i} is a {type(p).__name__}, not a Tensor")
            if not p.is_leaf:
                raise ValueError(f"{where}: parameter {i} is not a leaf tensor (it was computed "
                                 f"from others); optimize the leaves")
            if p.dtype.kind != "f":
                raise TypeError(f"{where}: parameter {i} has dtype {p.dtype}; only floating tensors "
                                f"can be optimized")
        group = {"params": tuple(params), **self.defaults,
                 **{k: v for k, v in spec.items() if k != "params"}}
        group = self.check_hyperparameters(group, where)
        group["lr_scale"] = _nonnegative(group.get("lr_scale", 1.0), "lr_scale", where)
        group["lr"] = group["lr"] * group["lr_scale"]
        if not isinstance(group.get("name", ""), str):
            raise TypeError(f"{where}: name must be a string")
        return group

    @property
    def lr(self) -> float:
        """The base learning rate (constructor ``lr`` or the last :meth:`set_lr`)."""
        return self._lr

    @lr.setter
    def lr(self, lr: float) -> None:
        self.set_lr(lr)

    def set_lr(self, lr: float) -> None:
        """Set every group's learning rate to ``lr * group["lr_scale"]`` (call it once per step)."""
        lr = _nonnegative(lr, "lr", "set_lr")
        self._lr = lr
        for g in self.param_groups:
            g["lr"] = lr * g["lr_scale"]

    # ------------------------------------------------------------------ the step
    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero all gradients: one fill per group; ``p.grad`` keep their views (see FlatGroup)."""
        for flat in self._flat:
            flat.zero_grad(set_to_none)

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        for gi, group in enumerate(self.param_groups):  # groups may have been edited: check all first
            group.update(self.check_hyperparameters(dict(group), f"param group {gi}"))
        for gi, (group, flat) in enumerate(zip(self.param_groups, self._flat)):
            has_grad, steps = flat.sync(), self._steps[gi]
            chunk = self.chunk_size if flat.xp is np else max(flat.size, 1)
            for i, j in _runs(has_grad, steps):
                t = steps[i] + 1
                for a in range(flat.offsets[i], flat.offsets[j], chunk):
                    b = min(a + chunk, flat.offsets[j])
                    state = {name: buf[a:b] for name, buf in self.state[gi].items()}
                    self.update_one(flat.param[a:b], flat.grad[a:b], state, t, group)
                steps[i:j] = [t] * (j - i)
        self.step_count += 1

    def _scratch(self, like: Any, k: int) -> list:
        """``k`` work arrays shaped like the flat run ``like``, reused across steps and groups."""
        key = (type(like), like.dtype.str)
        bufs = self._work.setdefault(key, [])
        n = max(min(max(f.size for f in self._flat), self.chunk_size), like.size)
        xp = get_array_module(like)
        for i in range(k):
            if i == len(bufs) or bufs[i].size < like.size:
                bufs[i:i + 1] = [xp.empty(n, dtype=like.dtype)]
        return [buf[:like.size] for buf in bufs[:k]]

    def clip_grad_norm_(self, max_norm: float, sync: bool = True) -> Any:
        """Scale all gradients so their global L2 norm is at most ``max_norm``; return the norm.

        :func:`tinyllm.optim.clip.clip_grad_norm_` (the rule, torch's) applied to the
        flat gradient buffers: one dot and one scale per group. On the GPU,
        ``sync=False`` keeps the whole computation there and returns the norm as
        a 0-d device array, so the CPU does not wait for the GPU (the training
        loop reads it later); the default returns a float.
        """
        return clip_arrays_(self.grad_buffers(), max_norm, sync)

    # ------------------------------------------------------------------ distributed seams
    def grad_buffers(self) -> list:
        """The flat gradient buffers, one 1-D array per param group, synced with ``p.grad``.

        Gradients assigned from outside (a fresh array from backward after
        ``zero_grad(set_to_none=True)``) are first copied in and every ``p.grad``
        is rebound to its view, so each buffer holds exactly the group's
        gradients and the slices of parameters without one are zero. The
        buffers may then be changed *in place*, for example by one all-reduce
        per group in data-parallel training: ``p.grad`` (views) and the next
        :meth:`step` see the new values. Between this call and :meth:`step`
        the gradients must not be re-assigned (``p.grad = ...``), or the
        assigned arrays replace the buffer's values.
        """
        for flat in self._flat:
            flat.sync()
        return [flat.grad for flat in self._flat]

    def grad_mask(self) -> np.ndarray:
        """Per parameter (all groups, in buffer order), 1 if it has a gradient, else 0 (uint8)."""
        return np.asarray([p.grad is not None for f in self._flat for p in f.params], dtype=np.uint8)

    def bind_grads(self, mask: Any) -> None:
        """Give each parameter with ``mask`` set and no gradient its (zero) view of the buffer.

        After an all-reduce, a parameter that had no gradient here but had one on
        another process must be updated like everywhere else; call this with the
        reduced :meth:`grad_mask` (nonzero: some process had a gradient).
        """
        mask = np.asarray(mask).reshape(-1)
        total = sum(len(f.params) for f in self._flat)
        if mask.size != total:
            raise ValueError(f"bind_grads: mask has {mask.size} entries, the optimizer has {total} parameters")
        k = 0
        for flat in self._flat:
            for i, p in enumerate(flat.params):
                if mask[k] and p.grad is None:
                    flat.bind_grad(i)
                k += 1

    def param_buffers(self) -> list:
        """The flat parameter buffers (one per group) and the optimizer's state buffers, in a fixed order.

        Weights assigned from outside are synced in first. Writing into the
        buffers in place (a broadcast from rank 0) changes the parameters and the
        moments; the step counts travel separately, as :meth:`step_counts`.
        """
        for flat in self._flat:
            flat.sync()
        return [f.param for f in self._flat] + [buf for st in self.state for _, buf in sorted(st.items())]

    def state_of(self, p: Tensor) -> dict:
        """The optimizer state of one parameter: views of its moments, shaped like it, and its step."""
        if id(p) not in self._where:
            raise ValueError(f"this tensor of shape {p.shape} is not optimized by this optimizer")
        gi, i = self._where[id(p)]
        f = self._flat[gi]
        a, b, shape = f.offsets[i], f.offsets[i + 1], f.shapes[i]
        out = {name: buf[a:b].reshape(shape) for name, buf in self.state[gi].items()}
        out["step"] = self._steps[gi][i]
        return out

    def step_counts(self) -> np.ndarray:
        """``[step_count, per-parameter step counts of every group...]`` as one int64 array."""
        return np.asarray([self.step_count] + [t for steps in self._steps for t in steps], dtype=np.int64)

    def set_step_counts(self, counts: Any) -> None:
        """Restore what :meth:`step_counts` returned (e.g. after broadcasting it)."""
        counts = [int(c) for c in np.asarray(counts).reshape(-1)]
        if len(counts) != 1 + sum(len(s) for s in self._steps) or min(counts) < 0:
            raise ValueError("set_step_counts: the counts do not fit this optimizer's parameters")
        self.step_count, k = counts[0], 1
        for steps in self._steps:
            steps[:] = counts[k:k + len(steps)]
            k += len(steps)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything needed to resume: hyperparameters, step counts, moment buffers.

        Returns ``{"type", "lr", "step", "param_groups", "state"}``: every array is
        a NumPy copy under ``"state"`` (``"group0.exp_avg"``, ``"group0.step"``
        (per-parameter step counts), ...); all the rest is JSON-serializable.
        """
        groups = []
        for g, f in zip(self.param_groups, self._flat):
            d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"}
            d.update(num_params=len(f.params), shapes=[list(s) for s in f.shapes], dtype=str(f.dtype))
            groups.append(d)
        state: dict[str, np.ndarray] = {}
        for gi, bufs in enumerate(self.state):
            for name, buf in bufs.items():
                state[f"group{gi}.{name}"] = np.array(to_numpy(buf), copy=True)
            state[f"group{gi}.step"] = np.asarray(self._steps[gi], dtype=np.int64)
        return {"type": type(self).__name__, "lr": self._lr, "step": self.step_count,
                "param_groups": groups, "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` returned (arrays may be NumPy; they move to the backend).

        Hyperparameters, step counts and moments are restored (moments cast to
        the parameters' dtype); the parameters themselves are the model's to
        load. Everything is checked before anything changes; a mismatch raises
        a ValueError naming the group, parameter or buffer that differs.
        """
        for key in ("param_groups", "state", "step"):
            if key not in state_dict:
                raise ValueError(f"load_state_dict: missing key {key!r}")
        kind = state_dict.get("type", type(self).__name__)
        if kind != type(self).__name__:
            raise ValueError(f"load_state_dict: state of a {kind} optimizer given to {type(self).__name__}")
        saved_groups, arrays = state_dict["param_groups"], state_dict["state"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"load_state_dict: {len(saved_groups)} param groups saved, "
                             f"{len(self.param_groups)} here")
        new_groups, expected = [], {}
        for gi, (saved, group, f) in enumerate(zip(saved_groups, self.param_groups, self._flat)):
            where = f"load_state_dict: param group {gi}"
            if saved.get("num_params") != len(f.params):
                raise ValueError(f"{where} has {len(f.params)} parameters here, "
                                 f"{saved.get('num_params')} saved")
            shapes = saved.get("shapes") or []
            if len(shapes) != len(f.params):
                raise ValueError(f"{where}: 'shapes' lists {len(shapes)} parameters, expected {len(f.params)}")
            for i, (shape, old) in enumerate(zip(f.shapes, shapes)):
                if tuple(old) != shape:
                    raise ValueError(f"{where}: parameter {i} has shape {shape} here, {tuple(old)} saved")
            missing = [k for k in group if k != "params" and k not in saved and k != "name"]
            if missing:
                raise ValueError(f"{where}: hyperparameter(s) {missing} missing")
            new = {k: (tuple(saved[k]) if isinstance(saved[k], list) else saved[k])
                   for k in group if k != "params" and k in saved}
            new = self.check_hyperparameters(new, where)
            new["lr_scale"] = _nonnegative(new["lr_scale"], "lr_scale", where)
            new_groups.append(new)
            for name, buf in self.state[gi].items():
                expected[f"group{gi}.{name}"] = (buf.size,)
            expected[f"group{gi}.step"] = (len(f.params),)
        if set(arrays) != set(expected):
            raise ValueError(f"load_state_dict: state buffers missing {sorted(set(expected) - set(arrays))}"
                             f", unexpected {sorted(set(arrays) - set(expected))}")
        for name, shape in expected.items():
            if not hasattr(arrays[name], "shape"):
                raise TypeError(f"load_state_dict: {name} is a {type(arrays[name]).__name__}, not an array")
            if tuple(arrays[name].shape) != shape:
                raise ValueError(f"load_state_dict: {name} has shape {tuple(arrays[name].shape)}, "
                                 f"expected {shape}")
            if name.endswith(".step") and (np.asarray(to_numpy(arrays[name])) < 0).any():
                raise ValueError(f"load_state_dict: {name} holds negative step counts")
        # all checked: now change state
        for gi, (group, new) in enumerate(zip(self.param_groups, new_groups)):
            group.update(new)
            for name, buf in self.state[gi].items():
                buf[...] = self._flat[gi].xp.asarray(arrays[f"group{gi}.{name}"])
            self._steps[gi] = [int(s) for s in to_numpy(arrays[f"group{gi}.step"])]
        self._lr = _nonnegative(state_dict.get("lr", self._lr), "lr", "load_state_dict")
        self.step_count = int(state_dict["step"])

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for gi, g in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {gi}: {len(g['params'])} params, {self._flat[gi].size} values, {hyper}")
        return "\n".join(lines + [")"])


def _as_groups(params: Any) -> list:
    """``params`` as a list of group dicts (each with a "params" entry)."""
    if isinstance(params, (Tensor, dict)):
        raise TypeError("params must be an iterable of Tensors or of param-group dicts, "
                        f"got a single {type(params).__name__}")
    if isinstance(params, (str, bytes)) or not hasattr(params, "__iter__"):
        raise TypeError(f"params must be an iterable of Tensors or dicts, got {type(params).__name__}")
    items = list(params)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    if all(isinstance(x, dict) for x in items):
        for gi, g in enumerate(items):
            if "params" not in g:
                raise ValueError(f"param group {gi} has no 'params' entry")
        return items
    if any(isinstance(x, dict) for x in items):
        raise TypeError("params mixes Tensors and param-group dicts: pass one kind")
    return [{"params": items}]
