"""Forward values against NumPy for every case in ``op_cases.py``, float32 in ->
float32 out (values and gradients) for every op, and extreme inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyllm
import tinyllm.functional as F
import op_cases_layout
import op_cases_surface
from op_cases import CASES

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _split_ref(x, size, axis):
    n = x.shape[axis]
    cuts = range(size, n, size) if isinstance(size, int) else np.cumsum(size)[:-1]
    return np.concatenate([p.reshape(-1) for p in np.split(x, list(cuts), axis=axis)][::-1])


def _softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _logsumexp_ref(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis if axis is not None else tuple(range(x.ndim)))


def _layer_norm_ref(x, *wb):
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    return y * wb[0] + (wb[1] if len(wb) > 1 else 0.0) if wb else y


def _dropout_ref(x, p):
    """The engine's documented draw: keep where the seeded generator's uniform >= p."""
    tinyllm.manual_seed(7)
    keep = tinyllm.backend.to_numpy(tinyllm.backend.rng().random(x.shape, dtype=x.dtype)) >= p
    return x * keep / (1.0 - p)


def _attention_ref(q, k, v, mask, causal, scale, dropout_p):
    tq, tk = q.shape[-2], k.shape[-2]
    s = q @ np.swapaxes(k, -1, -2) * (scale if scale is not None else 1.0 / math.sqrt(q.shape[-1]))
    allowed = np.ones((tq, tk), dtype=bool)
    if causal:
        allowed = np.arange(tk)[None, :] <= np.arange(tq)[:, None] + (tk - tq)  # aligned at the end
    if mask is not None:
        allowed = allowed & mask
    allowed = np.broadcast_to(allowed, s.shape)
    s = np.where(allowed, s, -np.inf)
    m = np.where(allowed.any(-1, keepdims=True), s.max(-1, keepdims=True), 0.0)
    e = np.where(allowed, np.exp(s - m), 0.0)
    p = e / np.maximum(e.sum(-1, keepdims=True), np.finfo(e.dtype).tiny)
    if dropout_p:
        tinyllm.manual_seed(3)
        u = tinyllm.backend.to_numpy(tinyllm.backend.rng().random(p.shape, dtype=p.dtype))
        p = p * (u >= dropout_p) / (1.0 - dropout_p)
    return p @ v


def _cross_entropy_ref(z, targets, ignore_index, label_smoothing, reduction):
    logp = z - _logsumexp_ref(z, axis=-1, keepdims=True)
    valid = targets != ignore_index
    picked = np.take_along_axis(logp, np.where(valid, targets, 0)[..., None], axis=-1)[..., 0]
    loss = -(1 - label_smoothing) * picked - label_smoothing * logp.mean(-1)
    loss = np.where(valid, loss, 0.0)
    if reduction == "none":
        return loss
    return loss.sum() / (max(valid.sum(), 1) if reduction == "mean" else 1)


# NumPy's version of every case in op_cases.CASES, by name
NUMPY_REFS = {
    "add": lambda a, b: a + b,
    "add_scalar": lambda a: 2.5 + a,
    "sub": lambda a, b: a - b,
    "sub_scalar": lambda a: 1.5 - a,
    "mul": lambda a, b: a * b,
    "mul_scalar": lambda a: 3 * a,
    "div": lambda a, b: a / b,
    "div_scalar": lambda b: 2.0 / b,
    "pow": lambda a, b: a ** b,
    "pow_int_exponent": lambda a: a ** 3,
    "pow_scalar_base": lambda b: 2.0 ** b,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "matmul": np.matmul,
    "neg": np.negative,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0.0),
    "abs": np.abs,
    "clip": lambda x: np.clip(x, -0.5, 0.5),
    "clip_lower": lambda x: np.maximum(x, 0.25),
    "cast": lambda x: x.astype(np.float16).astype(x.dtype),
    "sum": lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
    "mean": lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims),
    "var": lambda x, axis, keepdims, ddof: np.var(x, axis=axis, keepdims=keepdims, ddof=ddof),
    "max": lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
    "min": lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
    "amax": lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
    "amin": lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
    "reshape": lambda x, shape: x.reshape(shape),
    "view_flatten_squeeze": lambda x: x.reshape(-1),
    "permute": lambda x, axes: np.transpose(x, axes),
    "transpose": lambda x: x.T,
    "swapaxes": lambda x, a, b: np.swapaxes(x, a, b),
    "broadcast_to": lambda x, shape: np.broadcast_to(x, shape),
    "expand": lambda x, shape: np.broadcast_to(x, shape),
    "getitem_basic": lambda x, index: x[index],
    "getitem_rows": lambda x, index: x[index],
    "getitem_fancy": lambda x, index: x[index],
    "getitem_bool": lambda x, index: x[index],
    "concat": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "stack": lambda *xs, axis: np.stack(xs, axis=axis),
    "split": _split_ref,
    "where": lambda a, b, cond: np.where(cond, a, b),
    "masked_fill": lambda x, mask, value: np.where(mask, value, x),
    "softmax": _softmax_ref,
    "log_softmax": lambda x, axis: x - _logsumexp_ref(x, axis, keepdims=True),
    "logsumexp": _logsumexp_ref,
    "gelu": lambda x: 0.5 * x * (1 + np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))),
    "layer_norm": _layer_norm_ref,
    "embedding": lambda w, idx: w[idx],
    "dropout": _dropout_ref,
    "attention": _attention_ref,
    "attention_dropout": _attention_ref,
    "cross_entropy": _cross_entropy_ref,
}

NUMPY_REFS.update(op_cases_surface.NUMPY)
NUMPY_REFS.update(op_cases_layout.NUMPY)

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}


def test_every_case_has_a_numpy_reference() -> None:
    assert set(NUMPY_REFS) == set(CASES), "add a NumPy reference to NUMPY_REFS for each new case"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_forward_matches_numpy(name: str, dtype: type, data: st.DataObject) -> None:
    arrays, params = data.draw(CASES[name].inputs, label="inputs")
    arrays = [a.astype(dtype) for a in arrays]
    out = CASES[name].fn(*[tinyllm.tensor(a) for a in arrays], **params)
    ref = np.asarray(NUMPY_REFS[name](*arrays, **params))
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.numpy(), ref, **TOL[dtype])


@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_float32_in_gives_float32_out_and_float32_gradients(name: str, data: st.DataObject) -> None:
    arrays, params = data.draw(CASES[name].inputs, label="inputs")
    xs = [tinyllm.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    out = CASES[name].fn(*xs, **params)
    assert out.dtype == np.float32
    out.backward(np.ones(out.shape, dtype=np.float32))
    for x in xs:
        assert x.grad is not None and x.grad.dtype == np.float32


# ----------------------------------------------------------------------------- extreme inputs

EXTREME = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_softmax_family_is_stable_at_plus_minus_1e4(dtype: type) -> None:
    x = tinyllm.tensor(EXTREME.astype(dtype), requires_grad=True)
    log3, log2 = math.log(3.0), math.log(2.0)
    cases = [
        (F.softmax(x), [[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]]),
        (F.log_softmax(x), [[0, -2e4, -1e4], [-log3] * 3, [-log2, -log2, -2e4 - log2]]),
        (F.logsumexp(x, axis=1), [1e4, -1e4 + log3, 1e4 + log2]),
        (F.cross_entropy(x, np.array([1, 0, 2]), reduction="none"), [2e4, log3, 2e4 + log2]),
    ]
    for y, expected in cases:
        assert y.dtype == dtype
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=1e-6)
        x.grad = None
        y.backward(np.ones(y.shape, dtype=dtype))
        assert np.isfinite(x.grad).all()


def test_cross_entropy_with_huge_logits_and_label_smoothing_stays_finite() -> None:
    for dtype in (np.float32, np.float64):
        z = tinyllm.tensor(EXTREME.astype(dtype), requires_grad=True)
        loss = F.cross_entropy(z, np.array([0, 1, 2]), label_smoothing=0.1)
        loss.backward()
        ref = _cross_entropy_ref(EXTREME, np.array([0, 1, 2]), -100, 0.1, "mean")
        np.testing.assert_allclose(loss.item(), ref, rtol=1e-6)
        assert np.isfinite(z.grad).all() and z.grad.dtype == dtype


def test_sigmoid_and_gelu_saturate_without_overflow() -> None:
    x = tinyllm.tensor(np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype=np.float32))
    np.testing.assert_allclose(x.sigmoid().numpy(), [0, 0, 0.5, 1, 1], atol=1e-7)
    for form in ("none", "tanh"):
        np.testing.assert_allclose(x.gelu(approximate=form).numpy(), [0, 0, 0, 50, 1e4], atol=1e-6)
    np.testing.assert_array_equal(tinyllm.tensor([-np.inf, 2.0]).relu().numpy(), [0.0, 2.0])


# ----------------------------------------------------------------------------- the rest of the surface

def test_comparisons_give_boolean_tensors_that_record_nothing() -> None:
    a = tinyllm.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = np.array([3.0, 2.0, 1.0], dtype=np.float32)
    for got, want in [(a < tinyllm.tensor(b), [1, 0, 0]), (a <= 2.0, [1, 1, 0]), (a > 2, [0, 0, 1]),
                      (a >= tinyllm.tensor(b), [0, 1, 1]), (a == 2.0, [0, 1, 0]), (a != 2.0, [1, 0, 1]),
                      (2.0 < a, [0, 0, 1])]:
        assert got.dtype == np.bool_ and not got.requires_grad and got.is_leaf
        np.testing.assert_array_equal(got.numpy(), np.array(want, dtype=bool))


def test_argmax_and_shape_helpers() -> None:
    x = tinyllm.tensor(np.arange(24.0).reshape(2, 3, 4))
    assert x.argmax().item() == 23
    np.testing.assert_array_equal(x.argmax(axis=1).numpy(), np.full((2, 4), 2))
    assert x.flatten(1).shape == (2, 12) and x.flatten(0, 1).shape == (6, 4)
    assert x.unsqueeze(0).shape == (1, 2, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert x.view(4, -1).shape == (4, 6) and x.reshape((6, 4)).shape == (6, 4)
    assert x[None, ..., 1].shape == (1, 2, 3) and x.T.shape == (4, 3, 2)
    assert [p.shape for p in x.split([1, 3], axis=2)] == [(2, 3, 1), (2, 3, 3)]
    assert [p.shape for p in tinyllm.split(x, 2, axis=1)] == [(2, 2, 4), (2, 1, 4)]
    assert tinyllm.cat([x, x], axis=-1).shape == (2, 3, 8)
    assert x.expand(5, -1, -1, -1).shape == (5, 2, 3, 4)


def test_numpy_arrays_on_the_left_defer_to_tensors() -> None:
    t = tinyllm.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * t - np.ones(2, dtype=np.float32)
    assert isinstance(y, tinyllm.Tensor) and y.requires_grad and y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), [2.0, 7.0])


def test_python_and_numpy_scalars_do_not_upcast_float32() -> None:
    t = tinyllm.tensor([1.0, 2.0])
    for y in [t * np.float64(2.0), t + 1, 2 ** t, t.clip(0.5, 1.5), tinyllm.where(t > 1, t, 0.0),
              t.masked_fill(t > 1, -np.inf), t / 3, t.mean(), t.var()]:
        assert y.dtype == np.float32


@pytest.mark.parametrize("call, error", [
    (lambda: tinyllm.matmul(tinyllm.tensor(2.0), tinyllm.tensor([1.0])), "at least one dimension"),
    (lambda: tinyllm.tensor([1.0, 2.0]).sum(axis=3), "out of range"),
    (lambda: tinyllm.tensor([1.0, 2.0]).split([1, 2]), "do not add up"),
    (lambda: tinyllm.tensor(np.zeros((4, 3, 1, 6))).squeeze(6), r"dim 6 is out of range for shape \(4, 3, 1, 6\)"),
    (lambda: tinyllm.tensor([1.0]).clip(), "clip needs lo or hi"),
    (lambda: tinyllm.tensor(np.zeros((2, 2))).permute(0, 0), "not an ordering"),
    (lambda: F.cross_entropy(tinyllm.tensor(np.zeros((2, 3))), np.array([0, 3])), "out of range"),
    (lambda: F.embedding(tinyllm.tensor(np.zeros((2, 3))), np.array([2])), "out of range"),
    (lambda: F.dropout(tinyllm.tensor([1.0]), 1.0), "must be in"),
    (lambda: tinyllm.tensor([1, 2], requires_grad=True), "only floating"),
])
def test_bad_input_gives_a_clear_error(call, error) -> None:
    with pytest.raises((ValueError, TypeError, IndexError), match=error):
        call()
