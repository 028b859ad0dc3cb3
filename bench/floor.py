"""The matmul floor of a training step: its matrix products alone, as the step runs them.

A step of a small model is BLAS plus everything around it (Python, NumPy's
elementwise passes, the compiled kernels, the allocator). This module times
the first part alone, so that what stands between the engine and a target
ratio is a number and not a guess:

    floor ms/step   = the step's matrix products, nothing else
    floor tokens/s  = tokens per step / floor
    best ratio      = floor tokens/s / PyTorch's tokens/s   (zero overhead outside the products)

The product list is not written down from the config: :func:`record` runs
ONE real training step with the implementations that call BLAS watched
(``LinearReference``: ``x W^T`` forward, ``dY W`` and ``dY^T X`` backward;
the attention implementation: per query span ``Q K^T`` and ``P V`` forward,
``P^T dY``, ``dY V^T``, ``dS K`` and ``dS^T Q`` backward), each recording
the layouts (shape, strides, dtype, and which buffer and offset) of the
arrays its products read and write, and the attention kernel its spans.
:func:`replay` then builds arrays of the same layouts (views of one buffer
where the step's were views of one buffer: q, k, v of the packed q|k|v, the
weights in the optimizer's flat buffer) and runs those products in the
step's order, with the step's BLAS threads (attention's products on one
BLAS thread per core, in row blocks, as its kernel runs them). Outputs the
code allocates are allocated here too; ``out=`` targets are written in place.
The bias adds, softmax, GELU, layer norms, gradient sums and AdamW are not
products: they are what the floor leaves out.

The replay runs the CPU Linear kernel's own ``backward_products`` (its two
products at once on two cores) and mirrors the other product expressions of
``tinyllm/functional/linear.py``, ``tinyllm/kernels/cpu/linear.py`` and
``tinyllm/kernels/cpu/attention.py``; ``tests/test_bench_floor.py``
checks the recording against a real step (every Linear and attention node
seen, the FLOPs of the products those expressions make). ``floor_run.py``
is the section: its child process and what it prints.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402


@dataclass(frozen=True)
class Layout:
    """Where an array lives: ``shape`` and byte ``strides`` at byte ``offset`` into a buffer of
    ``nbytes`` that the step knew by address ``base`` (two arrays with one base share memory)."""
    base: int
    nbytes: int
    offset: int
    shape: tuple
    strides: tuple
    dtype: str

    @staticmethod
    def of(a: Any) -> "Layout":
        root = a
        while getattr(root, "base", None) is not None and hasattr(root.base, "__array_interface__"):
            root = root.base
        ptr = a.__array_interface__["data"][0]
        base = root.__array_interface__["data"][0]
        nbytes = getattr(root, "nbytes", None) or a.nbytes
        return Layout(base, int(nbytes), ptr - base, tuple(a.shape), tuple(a.strides), a.dtype.str)


@dataclass
class Call:
    """One call of a watched implementation: ``kind`` (linear / attention, forward / backward),
    the layouts of its arrays by role, and its parameters (needs_grad, spans, ...)."""
    kind: str
    arrays: dict
    params: dict


def _products_flops(call: Call) -> list[tuple[str, int]]:
    """(label, FLOPs) of each product the call makes, as the mirrors in :func:`_replay_fn` run them."""
    a, p = call.arrays, call.params
    if call.kind.startswith("linear"):
        n_in, n_out = a["w"].shape[1], a["w"].shape[0]
        rows = 1
        for s in a["x"].shape[:-1]:
            rows *= s
        f = 2 * rows * n_in * n_out
        if call.kind == "linear_forward":
            return [("Linear x W^T", f)]
        return [(lab, f) for lab, need in (("Linear dY W", p["needs"][0]), ("Linear dY^T X", p["needs"][1])) if need]
    lead = 1
    for s in a["q"].shape[:-2]:
        lead *= s
    hs, dv = a["q"].shape[-1], a["v"].shape[-1]
    out = []
    for q0, q1, kb in p["spans"]:
        rows = lead * (q1 - q0) * kb
        if call.kind == "attention_forward":
            out += [("attention forward Q K^T", 2 * rows * hs), ("attention forward P V", 2 * rows * dv)]
        else:
            needs = p["needs"]
            out += [(lab, 2 * rows * d) for lab, d, need in (
                ("attention backward P^T dY", dv, needs[2]), ("attention backward dY V^T", dv, True),
                ("attention backward dS K", hs, needs[0]), ("attention backward dS^T Q", hs, needs[1])) if need]
    return out


def product_flops(calls: list[Call]) -> dict[str, int]:
    """FLOPs of the recorded products, by label."""
    out: dict[str, int] = {}
    for c in calls:
        for lab, f in _products_flops(c):
            out[lab] = out.get(lab, 0) + f
    return out


# ----------------------------------------------------------------------------- recording

def record(step: Callable[..., Any], batch: tuple) -> list[Call]:
    """Run ``step(*batch)`` once with the product-making implementations watched; the calls, in order."""
    impls = common.tinyllm_product_impls()
    calls: list[Call] = []
    forwards: dict[int, Call] = {}          # id of an attention implementation object -> its forward's record
    saved = []

    def watch(cls: type, name: str, before: Callable) -> None:
        fn = cls.__dict__[name]
        saved.append((cls, name, fn))

        def watched(self, *args, **kwargs):
            finish = before(self, *args, **kwargs)
            out = fn(self, *args, **kwargs)
            if finish is not None:
                finish(self, out)
            return out
        setattr(cls, name, watched)

    def linear_forward(kernel: bool):
        def before(self, x, w, b=None):
            calls.append(Call("linear_forward", {"x": Layout.of(x), "w": Layout.of(w)}, {"kernel": kernel}))
        return before

    def linear_backward(kernel: bool):
        def before(self, g, needs_grad):
            calls.append(Call("linear_backward", {"g": Layout.of(g), "w": Layout.of(self.w), "x": Layout.of(self.x)},
                              {"needs": tuple(needs_grad[:2]), "kernel": kernel}))
        return before

    def attention_forward(kernel: bool):
        def before(self, q, k, v, scale, causal, mask, dropout_p, out=None):
            if mask is not None or dropout_p > 0.0:
                raise ValueError("floor: attention with a key mask or dropout is not mirrored")

            def finish(self, y):
                arrays = {"q": Layout.of(q), "k": Layout.of(k), "v": Layout.of(v), "y": Layout.of(y)}
                if kernel:
                    arrays.update({f"p{i}": Layout.of(pa) for i, pa in enumerate(self.ps)})
                    spans = [tuple(s) for s in self.spans]
                else:
                    spans = [(0, q.shape[-2], k.shape[-2])]
                forwards[id(self)] = Call("attention_forward", arrays, {"spans": spans, "kernel": kernel})
                calls.append(forwards[id(self)])
            return finish
        return before

    def attention_backward(kernel: bool):
        def before(self, g, needs_grad, out=None):
            fwd = forwards.pop(id(self))

            def finish(self, grads):
                arrays = dict(fwd.arrays, g=Layout.of(g))
                arrays.update({n: Layout.of(d) for n, d in zip(("dq", "dk", "dv"), grads) if d is not None})
                calls.append(Call("attention_backward", arrays, dict(fwd.params, needs=tuple(needs_grad))))
            return finish
        return before

    for key, kernel in (("linear_kernel", True), ("linear", False)):
        if impls.get(key) is not None:
            watch(impls[key], "forward", linear_forward(kernel))
            watch(impls[key], "backward", linear_backward(kernel))
    for key, kernel in (("attention_kernel", True), ("attention_reference", False)):
        if impls.get(key) is not None:
            watch(impls[key], "forward", attention_forward(kernel))
            watch(impls[key], "backward", attention_backward(kernel))
    try:
        step(*batch)
    finally:
        for cls, name, fn in reversed(saved):
            setattr(cls, name, fn)
    return calls


# ----------------------------------------------------------------------------- replay

class Arrays:
    """Arrays of recorded layouts: one buffer per recorded base, filled once with small random values."""

    def __init__(self, seed: int = 0) -> None:
        import numpy as np  # noqa: PLC0415
        self.np, self.rng, self.buffers = np, np.random.default_rng(seed), {}

    def get(self, lay: Layout) -> Any:
        np = self.np
        buf = self.buffers.get(lay.base)
        if buf is None or buf.nbytes < lay.nbytes:
            buf = self.buffers[lay.base] = (self.rng.standard_normal(lay.nbytes // 4, dtype=np.float32)
                                            * np.float32(0.1)).view(np.uint8)
        item = np.dtype(lay.dtype).itemsize
        flat = buf[lay.offset:lay.offset + _extent(lay, item)].view(lay.dtype)
        return np.lib.stride_tricks.as_strided(flat, lay.shape, lay.strides, writeable=True)


def _extent(lay: Layout, item: int) -> int:
    """Bytes from the first element of an array to the end of its last one (non-negative strides)."""
    return item + sum((n - 1) * s for n, s in zip(lay.shape, lay.strides) if n > 0)


def _replay_fns(call: Call, arrays: Arrays) -> list[tuple[str, Callable[[], Any]]]:
    """(label, function) for the products of ``call``, on arrays of its layouts, as the engine runs them."""
    np = arrays.np
    a, p = call.arrays, call.params
    if call.kind == "linear_forward":                                       # LinearReference.forward
        x, w = arrays.get(a["x"]), arrays.get(a["w"])
        x2 = x.reshape(-1, x.shape[-1])
        return [("Linear x W^T", lambda: x2 @ w.T)]
    if call.kind == "linear_backward":                                      # LinearReference.backward
        g, w, x = arrays.get(a["g"]), arrays.get(a["w"]), arrays.get(a["x"])
        g2, x2, (nx, nw) = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1]), p["needs"]
        products = common.tinyllm_linear_backward_products()
        if p["kernel"] and products is not None and nx and nw:            # the kernel's own function
            return [("Linear dY W + Linear dY^T X", lambda: products(g2, w, x2, True, True))]
        return ([("Linear dY W", lambda: g2 @ w)] if nx else []) + ([("Linear dY^T X", lambda: g2.T @ x2)] if nw else [])
    q, k, v = (arrays.get(a[n]) for n in ("q", "k", "v"))
    if not p["kernel"]:                                                     # AttentionReference: whole products
        if call.kind == "attention_forward":
            return [("attention forward", lambda: (q @ k.swapaxes(-1, -2)) @ v)]
        g = arrays.get(a["g"])
        pr = np.matmul(q, k.swapaxes(-1, -2))
        return [("attention backward",
                 lambda: (pr.swapaxes(-1, -2) @ g, g @ v.swapaxes(-1, -2) @ k, pr.swapaxes(-1, -2) @ q))]
    lead = q.shape[:-2] or (1,)
    q, k, v = (np.broadcast_to(t, lead + t.shape[-2:]) for t in (q, k, v))
    spans = p["spans"]
    ps = [arrays.get(a[f"p{i}"]) for i in range(len(spans))]
    one_blas_thread, over_rows = common.tinyllm_row_threads()
    size = sum(pa.size for pa in ps)
    if call.kind == "attention_forward":
        y = arrays.get(a["y"]).reshape(lead + (q.shape[-2], v.shape[-1]))

        def forward_block(r):                                              # kernels/cpu/attention.py forward
            for (q0, q1, kb), pa in zip(spans, ps):
                np.matmul(q[r, ..., q0:q1, :], k[r, ..., :kb, :].swapaxes(-1, -2), out=pa[r])
                np.matmul(pa[r], v[r, ..., :kb, :], out=y[r, ..., q0:q1, :])

        def forward():
            with one_blas_thread():
                over_rows(forward_block, lead[0], size)
        return [("attention forward", forward)]
    g = np.broadcast_to(arrays.get(a["g"]), lead + (q.shape[-2], v.shape[-1]))
    d = {n: arrays.get(a[n]).reshape(lead + t.shape[-2:]) if n in a else None
         for n, t in (("dq", q), ("dk", k), ("dv", v))}
    several = len(spans) > 1

    def into(out, x, y):
        if not several:
            np.matmul(x, y, out=out)
        else:
            out += x @ y

    def backward_block(r):                                                  # kernels/cpu/attention.py backward
        for (q0, q1, kb), pa in zip(spans, ps):
            pr, gr = pa[r], g[r, ..., q0:q1, :]
            if d["dv"] is not None:
                into(d["dv"][r, ..., :kb, :], pr.swapaxes(-1, -2), gr)
            ds = gr @ v[r, ..., :kb, :].swapaxes(-1, -2)
            if d["dq"] is not None:
                np.matmul(ds, k[r, ..., :kb, :], out=d["dq"][r, ..., q0:q1, :])
            if d["dk"] is not None:
                into(d["dk"][r, ..., :kb, :], ds.swapaxes(-1, -2), q[r, ..., q0:q1, :])

    def backward():
        with one_blas_thread():
            over_rows(backward_block, lead[0], size)
    return [("attention backward", backward)]


def replay(calls: list[Call], seed: int = 0) -> list[tuple[str, Callable[[], Any]]]:
    """(label, function) per product (per attention call: its products), in the step's order:
    calling each in turn is the floor."""
    arrays = Arrays(seed)
    return [fn for c in calls for fn in _replay_fns(c, arrays)]


def time_floor(fns: list[tuple[str, Callable[[], Any]]], step: Callable[[], Any] | None, reps: int,
               warmup: int = 2, switch: Callable[[bool], None] | None = None) -> dict[str, Any]:
    """Median wall and CPU seconds of one pass over ``fns`` (and, interleaved with it, of ``step()``:
    the real step in the same process), with the median seconds of each label within a pass.

    With ``switch``, every round runs both settings, ``switch(True)`` and ``switch(False)`` (which
    first alternates): the figures of the second are under ``"off"``. ``switch(True)`` is left set."""
    import statistics  # noqa: PLC0415

    def one_pass() -> dict[str, float]:
        by_label: dict[str, float] = {}
        for label, fn in fns:
            t = time.perf_counter()
            fn()
            by_label[label] = by_label.get(label, 0.0) + time.perf_counter() - t
        return by_label

    settings = (True, False) if switch is not None else (True,)
    runs: dict[bool, dict[str, list]] = {v: {"walls": [], "cpus": [], "labels": [], "step_walls": [], "step_cpus": []}
                                         for v in settings}
    for r in range(warmup + reps):
        for v in settings if r % 2 == 0 else settings[::-1]:
            if switch is not None:
                switch(v)
            run = runs[v]
            w, c = time.perf_counter(), time.process_time()
            labels = one_pass()
            wall, cpu = time.perf_counter() - w, time.process_time() - c
            if r >= warmup:
                run["walls"].append(wall)
                run["cpus"].append(cpu)
                run["labels"].append(labels)
            if step is not None:
                w, c = time.perf_counter(), time.process_time()
                step()
                if r >= warmup:
                    run["step_walls"].append(time.perf_counter() - w)
                    run["step_cpus"].append(time.process_time() - c)
    if switch is not None:
        switch(True)
    med = statistics.median

    def summary(run: dict) -> dict[str, Any]:
        out = {"floor_wall_s": med(run["walls"]), "floor_cpu_s": med(run["cpus"]), "floor_min_wall_s": min(run["walls"]),
               "by_label_s": {k: med([lab[k] for lab in run["labels"]]) for k in run["labels"][0]}}
        if run["step_walls"]:
            out.update(step_wall_s=med(run["step_walls"]), step_cpu_s=med(run["step_cpus"]),
                       step_min_wall_s=min(run["step_walls"]))
        return out
    out = summary(runs[True])
    if switch is not None:
        out["off"] = summary(runs[False])
    return out
