"""Every case in ``op_cases.py`` against PyTorch (CPU, float64): forward values
and the gradients of every input, for the same random cotangent.

Skipped where torch is not installed.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tinyllm
import tinyllm.functional as F
import op_cases_layout
import op_cases_surface
from op_cases import CASES

torch = pytest.importorskip("torch")
TF = torch.nn.functional

SAME = "the case's own expression runs on torch tensors as written"


def _to_torch(p):
    """NumPy arrays (indices, masks) inside a parameter become torch tensors."""
    if isinstance(p, np.ndarray):
        return torch.from_numpy(p)
    if isinstance(p, tuple):
        return tuple(_to_torch(i) for i in p)
    return p


def _reduce(op):
    """NumPy-style reduction in torch: axis None = all axes; axis () reduces nothing."""
    def run(T, x, axis, keepdims, **kw):
        if axis == ():
            return x * 0 if op == "var" else x + 0
        dims = tuple(range(x.ndim)) if axis is None else axis
        if op == "var":
            return T.var(x, dim=dims, correction=kw["ddof"], keepdim=keepdims)
        return getattr(T, op)(x, dim=dims, keepdim=keepdims)
    return run


def _getitem(T, x, index):
    items = index if isinstance(index, tuple) else (index,)
    assume(not any(isinstance(i, slice) and (i.step or 1) < 0 for i in items))  # torch has no negative steps
    return x[index]


def _attention(T, q, k, v, mask, causal, scale, dropout_p):
    tq, tk = q.shape[-2], k.shape[-2]
    allowed = T.ones(tq, tk, dtype=T.bool)
    if causal:
        allowed = allowed.tril(tk - tq)                  # aligned at the end, as with a KV cache
    if mask is not None:
        allowed = allowed & mask
    allowed = allowed.expand(*q.shape[:-2], tq, tk)
    if allowed.any(-1).all():                            # the real torch op where it is defined
        return TF.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale)
    s = (q @ k.transpose(-1, -2)) * (scale if scale is not None else 1.0 / math.sqrt(q.shape[-1]))
    p = T.softmax(s.masked_fill(~allowed, -math.inf), dim=-1)
    return T.where(allowed.any(-1, keepdim=True), p, 0.0) @ v   # rows with no key: zeros, not nan


def _cross_entropy(T, z, targets, ignore_index, label_smoothing, reduction):
    assume(reduction != "mean" or bool((targets != ignore_index).any()))   # torch: 0/0 = nan there
    loss = TF.cross_entropy(z.reshape(-1, z.shape[-1]), targets.reshape(-1), ignore_index=ignore_index,
                            label_smoothing=label_smoothing, reduction=reduction)
    return loss.reshape(targets.shape) if reduction == "none" else loss


def _logsumexp(T, x, axis, keepdims):
    if axis == ():
        return x + 0
    return T.logsumexp(x, dim=tuple(range(x.ndim)) if axis is None else axis, keepdim=keepdims)


# PyTorch's version of every case in op_cases.CASES, by name (None: no torch equivalent, with why)
TORCH_REFS = {
    **{name: SAME for name in [
        "add", "add_scalar", "sub", "sub_scalar", "mul", "mul_scalar", "div", "div_scalar", "pow",
        "pow_int_exponent", "pow_scalar_base", "matmul", "neg", "exp", "log", "sqrt", "tanh", "sigmoid",
        "relu", "abs", "clip", "clip_lower", "reshape", "view_flatten_squeeze", "swapaxes", "masked_fill",
        "softmax", "log_softmax"]},
    "maximum": lambda T, a, b: T.maximum(a, b),
    "minimum": lambda T, a, b: T.minimum(a, b),
    "cast": lambda T, x: x.to(T.float16).to(x.dtype),
    "sum": _reduce("sum"),
    "mean": _reduce("mean"),
    "var": _reduce("var"),
    "max": _reduce("amax"),
    "min": _reduce("amin"),
    "amax": _reduce("amax"),
    "amin": _reduce("amin"),
    "logsumexp": _logsumexp,
    "permute": lambda T, x, axes: x.permute(axes),
    "transpose": lambda T, x: x.permute(tuple(reversed(range(x.ndim)))),
    "expand": lambda T, x, shape: x.expand(shape),
    "broadcast_to": lambda T, x, shape: T.broadcast_to(x, shape),
    "getitem_basic": _getitem,
    "getitem_rows": _getitem,
    "getitem_fancy": _getitem,
    "getitem_bool": _getitem,
    "concat": lambda T, *xs, axis: T.cat(xs, dim=axis),
    "stack": lambda T, *xs, axis: T.stack(xs, dim=axis),
    "split": lambda T, x, size, axis: T.cat([p.reshape(-1) for p in T.split(x, size, axis)][::-1]),
    "where": lambda T, a, b, cond: T.where(cond, a, b),
    "gelu": lambda T, x: TF.gelu(x, approximate="tanh"),
    "layer_norm": lambda T, x, *wb: TF.layer_norm(x, x.shape[-1:], *wb, eps=1e-5),
    "embedding": lambda T, w, idx: TF.embedding(idx, w),
    "dropout": None,            # torch draws another mask: see the test with a shared mask below
    "attention": _attention,
    "attention_dropout": None,  # as dropout; the mask is applied as in the dropout op
    "cross_entropy": _cross_entropy,
}


TORCH_REFS.update({name: SAME if ref is op_cases_surface.SAME else ref
                   for name, ref in {**op_cases_surface.TORCH, **op_cases_layout.TORCH}.items()})


def test_every_case_has_a_torch_reference() -> None:
    assert set(TORCH_REFS) == set(CASES), "add a PyTorch reference to TORCH_REFS for each new case"


@pytest.mark.parametrize("name", sorted(n for n, ref in TORCH_REFS.items() if ref is not None))
@given(data=st.data())
def test_forward_and_gradients_match_torch(name: str, data: st.DataObject) -> None:
    case, ref = CASES[name], TORCH_REFS[name]
    arrays, params = data.draw(case.inputs, label="inputs")
    ours = [tinyllm.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = case.fn(*ours, **params)
    tparams = {k: _to_torch(v) for k, v in params.items()}
    ty = case.fn(*theirs, **tparams) if ref is SAME else ref(torch, *theirs, **tparams)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    cot = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(cot)
    ty.backward(torch.from_numpy(cot))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        tg = b.grad.numpy() if b.grad is not None else np.zeros(a.shape)
        np.testing.assert_allclose(a.grad, tg, rtol=1e-9, atol=1e-12, err_msg=f"gradient of input {i}")


def test_dropout_matches_torch_given_the_same_mask() -> None:
    """Inverted dropout, as torch: kept values are scaled by 1/(1-p), and so is their gradient."""
    x = np.random.default_rng(0).standard_normal((20, 30))
    ours = tinyllm.tensor(x, requires_grad=True)
    y = F.dropout(ours, 0.4)
    keep = torch.from_numpy(y.numpy() != 0)
    theirs = torch.tensor(x, requires_grad=True)
    ty = theirs * keep / (1 - 0.4)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
    y.backward(np.ones(y.shape))
    ty.sum().backward()
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12)
