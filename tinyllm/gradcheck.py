"""Check autograd against central finite differences, in float64.

For a function f with tensor output y and a fixed random cotangent v, let
L(x) = sum(v * f(x)). Autograd gives dL/dx in one backward pass. The
central difference

    dL/dx_j  ~  (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)

has error O(eps^2), so in float64 with eps = 1e-6 the two agree to about
1e-8 for a correct backward. Inputs with many elements are compared along a
few random unit directions d instead (dL/dx . d against the difference
quotient along d), as chainer's ``check_backward`` does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .backend import get_array_module, to_numpy
from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """Autograd and finite differences disagree (or ``fn`` modified an input)."""


@dataclass
class InputReport:
    """How one input's analytic gradient compared with the numeric one."""

    index: int
    shape: tuple
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    worst: str = ""
    passed: bool = True


@dataclass
class GradcheckReport:
    inputs: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.inputs)

    @property
    def max_abs_err(self) -> float:
        return max((r.max_abs_err for r in self.inputs), default=0.0)

    @property
    def max_rel_err(self) -> float:
        return max((r.max_rel_err for r in self.inputs), default=0.0)


def _as_outputs(out: Any) -> list:
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got {type(o).__name__}")
    return outs


def check_gradients(fn: Callable[..., Any], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
                    rtol: float = 1e-3, max_elements: int = 512, directions: int = 4,
                    seed: int = 0) -> GradcheckReport:
    """Compare autograd with finite differences and return the errors per input (never raises on mismatch).

    Floating tensors among ``inputs`` are copied to float64; those with
    ``requires_grad`` are checked (all floating ones if none asks). Other
    arguments are passed through unchanged. See :func:`gradcheck`.
    """
    rng = np.random.default_rng(seed)
    xs, checked = [], []
    any_requested = any(isinstance(x, Tensor) and x.requires_grad for x in inputs)
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            wants = x.requires_grad or not any_requested
            x64 = Tensor(x.data.astype(np.float64), requires_grad=wants)
            xs.append(x64)
            if wants:
                checked.append(i)
        else:
            xs.append(x)
    originals = [to_numpy(x.data).copy() if isinstance(x, Tensor) else None for x in xs]

    outs = _as_outputs(fn(*xs))
    for o in outs:
        if o.dtype != np.float64:
            raise GradcheckError(f"gradcheck: fn returned dtype {o.dtype} from float64 inputs (a silent cast?)")
    cot = [get_array_module(o.data).asarray(rng.standard_normal(o.shape)) for o in outs]

    def loss_value() -> float:
        with no_grad():
            vals = _as_outputs(fn(*xs))
        return float(sum(float((v.data * c).sum()) for v, c in zip(vals, cot)))

    for i in checked:
        xs[i].grad = None
    live = [(o, c) for o, c in zip(outs, cot) if o.requires_grad]
    if not live:
        raise GradcheckError("gradcheck: the output does not depend on any checked input")
    for o, c in live:
        o.backward(c, retain_graph=len(live) > 1)

    report = GradcheckReport()
    for i in checked:
        x = xs[i]
        data = x.data
        analytic = to_numpy(x.grad) if x.grad is not None else np.zeros(x.shape)
        rep = InputReport(index=i, shape=tuple(x.shape))
        if data.size <= max_elements:
            flat = data.reshape(-1)  # a view: perturbing it perturbs x
            numeric = np.empty(data.size)
            for j in range(data.size):
                old = float(flat[j])
                flat[j] = old + eps
                hi = loss_value()
                flat[j] = old - eps
                lo = loss_value()
                flat[j] = old
                numeric[j] = (hi - lo) / (2 * eps)
            where = [tuple(int(i) for i in np.unravel_index(j, data.shape)) for j in range(data.size)]
            pairs = [(analytic.reshape(-1)[j], numeric[j], f"index {where[j]}") for j in range(data.size)]
        else:
            pairs = []
            base = data.copy()
            for k in range(directions):
                d = rng.standard_normal(data.shape)
                d /= np.linalg.norm(d)
                dd = get_array_module(data).asarray(d)
                data[...] = base + eps * dd
                hi = loss_value()
                data[...] = base - eps * dd
                lo = loss_value()
                data[...] = base
                pairs.append((float((analytic * d).sum()), (hi - lo) / (2 * eps), f"random direction {k}"))
        worst_score = -1.0
        for a, n, where in pairs:
            finite = np.isfinite(a) and np.isfinite(n)  # nan or inf never passes
            err = abs(a - n) if finite else np.inf
            rep.max_abs_err = max(rep.max_abs_err, err)
            rep.max_rel_err = max(rep.max_rel_err, err / max(abs(n), 1e-12) if err > atol else 0.0)
            score = err / (atol + rtol * abs(n)) if finite else np.inf  # > 1 fails; largest is worst
            if score > worst_score:
                worst_score = score
                rep.worst = f"{where}: analytic {a:.10g}, numeric {n:.10g}"
        rep.passed = worst_score <= 1.0
        report.inputs.append(rep)

    for i, (x, orig) in enumerate(zip(xs, originals)):
        if orig is not None and not np.array_equal(to_numpy(x.data), orig, equal_nan=True):
            raise GradcheckError(f"gradcheck: fn modified input {i} in place")
    return report


def gradcheck(fn: Callable[..., Any], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, max_elements: int = 512, directions: int = 4, seed: int = 0) -> bool:
    """Assert that autograd's gradients of ``fn`` match central finite differences.

    Args:
        fn: maps the inputs to a Tensor (or tuple of Tensors); must be deterministic.
        inputs: tensors (floating ones are checked in float64) and any other arguments.
        eps: finite-difference step.
        atol, rtol: pass when |analytic - numeric| <= atol + rtol * |numeric|.
        max_elements: inputs larger than this are checked along random directions.
        directions: how many random directions for large inputs.
        seed: seeds the random cotangent and directions.

    Returns:
        True. Raises :class:`GradcheckError` naming the input, the worst element and
        both values on a mismatch, or if ``fn`` modified an input.
    """
    report = check_gradients(fn, *inputs, eps=eps, atol=atol, rtol=rtol,
                             max_elements=max_elements, directions=directions, seed=seed)
    for rep in report.inputs:
        if not rep.passed:
            raise GradcheckError(f"gradient check failed for input {rep.index} (shape {rep.shape}) at "
                                 f"{rep.worst} (max abs err {rep.max_abs_err:.3g}, atol {atol}, rtol {rtol})")
    return True
