"""Regression tests for the edge cases PyTorch users hit: axes, 0-d tensors,
``transpose``, type promotion, ``pow`` at 0, scalars in ``where``, shape errors,
and the names a PyTorch user types (``dim=``, ``size()``, ``item()``, in-place ops)."""
from __future__ import annotations

import numpy as np
import pytest

import tinyllm
import tinyllm.functional as F

torch = None
try:  # the comparisons below are optional; everything else runs without torch
    import torch  # type: ignore[no-redef]
except ImportError:  # pragma: no cover
    pass

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


def t(shape, dtype="float32"):
    return tinyllm.tensor(np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape))


# ----------------------------------------------------------------------------- axes out of range

@pytest.mark.parametrize("call", [
    lambda: t((4, 3, 1, 6)).squeeze(6),
    lambda: t((4, 3, 1, 6)).squeeze(-5),
    lambda: tinyllm.stack([t((2, 3, 4))], dim=77),
    lambda: tinyllm.stack([t((2, 3, 4))], dim=-5),
    lambda: tinyllm.concat([t((2, 3)), t((2, 3))], dim=2),
    lambda: t((2, 3)).unsqueeze(3),
    lambda: t((2, 3)).unsqueeze(-4),
    lambda: t((2, 3)).permute(0, 2),
    lambda: t((2, 3)).flatten(0, 2),
    lambda: t((2, 3)).split(1, dim=2),
    lambda: t((2, 3)).sum(2),
    lambda: t((2, 3)).mean(dim=-3),
    lambda: t((2, 3)).max(dim=2),
    lambda: t((2, 3)).argmax(2),
    lambda: t((2, 3)).softmax(2),
    lambda: t((2, 3)).log_softmax(-3),
    lambda: t((2, 3)).logsumexp(2),
    lambda: t((2, 3)).transpose(0, 2),
    lambda: t((2, 3)).size(2),
])
def test_an_axis_out_of_range_raises_index_error_naming_axis_and_shape(call) -> None:
    with pytest.raises(IndexError, match=r"dim -?\d+ is out of range for (shape \(|a \d-d)"):
        call()


def test_squeeze_and_stack_at_valid_axes() -> None:
    x = t((4, 3, 1, 6))
    assert x.squeeze(2).shape == (4, 3, 6) and x.squeeze(-2).shape == (4, 3, 6)
    assert x.squeeze(0).shape == (4, 3, 1, 6)                     # PyTorch: a side that is not 1 stays
    assert x.squeeze((0, 2)).shape == (4, 3, 6)
    assert tinyllm.stack([t((2, 3))] * 2, dim=2).shape == (2, 3, 2)
    assert tinyllm.stack([t((2, 3))] * 2, dim=-3).shape == (2, 2, 3)


# ----------------------------------------------------------------------------- 0-d tensors

@pytest.mark.parametrize("dim", [0, -1])
def test_0d_tensors_reduce_and_softmax_over_dim_0_and_minus_1(dim) -> None:
    x = tinyllm.tensor(2.5, requires_grad=True)
    for y, want in [(x.sum(dim), 2.5), (x.mean(dim), 2.5), (x.amax(dim), 2.5), (x.max(dim).values, 2.5),
                    (x.min(dim).values, 2.5), (x.logsumexp(dim), 2.5), (x.softmax(dim), 1.0),
                    (x.log_softmax(dim), 0.0), (x.prod(dim), 2.5), (F.softmax(x, dim=dim), 1.0)]:
        assert y.shape == () and y.item() == pytest.approx(want)
    assert x.max(dim).indices.item() == 0 and x.argmax(dim).item() == 0
    x.sum(dim).backward()
    assert x.grad == 1.0
    assert x.squeeze(dim).shape == () and x.unsqueeze(dim).shape == (1,) and x.flatten().shape == (1,)
    with pytest.raises(IndexError):
        x.sum(1)


def test_0d_tensors_cannot_be_concatenated_but_can_be_stacked() -> None:
    a, b = tinyllm.tensor(1.0), tinyllm.tensor(2.0)
    with pytest.raises(IndexError, match="0-d tensor .* cannot be concatenated"):
        tinyllm.concat([a, b])
    np.testing.assert_array_equal(tinyllm.stack([a, b]).numpy(), [1.0, 2.0])


# ----------------------------------------------------------------------------- transpose

def test_transpose_exchanges_two_axes_as_in_pytorch() -> None:
    x = t((2, 3))
    assert x.transpose(0, 1).shape == (3, 2)
    np.testing.assert_array_equal(x.transpose(0, 1).numpy(), x.numpy().T)
    y = t((2, 3, 4))
    assert y.transpose(1, 2).shape == (2, 4, 3) and y.transpose(-1, 0).shape == (4, 3, 2)
    assert tinyllm.transpose(y, 0, 1).shape == (3, 2, 4)
    assert y.permute(2, 0, 1).shape == (4, 2, 3) and y.T.shape == (4, 3, 2) and y.mT.shape == (2, 4, 3)
    z = tinyllm.tensor(np.ones((2, 3)), requires_grad=True)
    (z.transpose(0, 1) * tinyllm.tensor(np.arange(6.0).reshape(3, 2))).sum().backward()
    np.testing.assert_array_equal(z.grad, np.arange(6.0).reshape(3, 2).T)


# ----------------------------------------------------------------------------- type promotion

def test_type_promotion_follows_pytorch_and_never_leaks_float64() -> None:
    i64 = tinyllm.tensor([1, 2, 3])
    i32 = tinyllm.tensor(np.array([1, 2, 3], dtype=np.int32))
    f32 = tinyllm.tensor([1.0, 2.0, 3.0])
    f64 = tinyllm.tensor(np.array([1.0, 2.0, 3.0]))
    cases = [(i64 + 1.5, np.float32), (i64 / i64, np.float32), (i64 / 2, np.float32), (i64.exp(), np.float32),
             (i64 ** 0.5, np.float32), (f32 + i32, np.float32), (f32 * i64, np.float32), (i64 + 1, np.int64),
             (i32 + 1, np.int32), (i32 + i64, np.int64), (f32 + f64, np.float64), (2 ** i64, np.int64),
             (f32 + tinyllm.tensor(np.float64(2.0)), np.float32), (i64 + tinyllm.tensor(2.0), np.float32),
             (i64.sqrt(), np.float32), (i64.mean(), np.float32), (i64.sin(), np.float32),
             (tinyllm.where(i64 > 1, i64, 0.5), np.float32), (i64.sum(dtype="float32"), np.float32),
             (tinyllm.tensor([True, False]) + 1, np.int64), (i64.float(), np.float32), (f32.long(), np.int64)]
    for got, want in cases:
        assert got.dtype == want, (got, want)
    np.testing.assert_allclose((i64 / i64 * 2).numpy(), [2.0, 2.0, 2.0])


def test_float32_gradient_through_promotion_comes_back_in_float32() -> None:
    a = tinyllm.tensor([1.0, 2.0], requires_grad=True)
    b = tinyllm.tensor(np.array([3.0, 4.0]), requires_grad=True)
    (a * b).sum().backward()
    assert (a * b).dtype == np.float64 and a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])


# ----------------------------------------------------------------------------- pow at 0

def test_pow_gradients_at_zero_follow_pytorch() -> None:
    x = tinyllm.tensor([0.0, 0.0, 2.0], requires_grad=True)
    (x ** 0.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])
    e = tinyllm.tensor([0.0, 1.0, 2.5], requires_grad=True)
    (0.0 ** e).sum().backward()
    np.testing.assert_array_equal(e.grad, [0.0, 0.0, 0.0])
    base = tinyllm.tensor([0.0, 3.0], requires_grad=True)
    ex = tinyllm.tensor([2.0, 2.0], requires_grad=True)
    (base ** ex).sum().backward()
    np.testing.assert_allclose(base.grad, [0.0, 6.0])
    np.testing.assert_allclose(ex.grad, [0.0, 9.0 * np.log(3.0)], rtol=1e-6)
    assert np.isfinite(base.grad).all() and np.isfinite(ex.grad).all()


@needs_torch
def test_pow_at_zero_matches_torch() -> None:
    vals = [0.0, 0.0, 0.0, 1.5]
    exps = [0.0, 1.0, 2.0, 0.5]
    a, b = tinyllm.tensor(np.array(vals), requires_grad=True), tinyllm.tensor(np.array(exps), requires_grad=True)
    ta, tb = torch.tensor(vals, dtype=torch.float64, requires_grad=True), torch.tensor(exps, dtype=torch.float64,
                                                                                          requires_grad=True)
    (a ** b).sum().backward()
    (ta ** tb).sum().backward()
    np.testing.assert_allclose(a.grad, ta.grad.numpy())
    np.testing.assert_allclose(b.grad, tb.grad.numpy())


# ----------------------------------------------------------------------------- where, shape errors

def test_where_with_two_python_scalars() -> None:
    cond = tinyllm.tensor([True, False, True])
    y = tinyllm.where(cond, 4, 2)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y.numpy(), [4, 2, 4])
    assert tinyllm.where(cond, 1.0, 0.0).dtype == np.float32


@pytest.mark.parametrize("call, pattern", [
    (lambda: t((2, 3)) + t((4,)), r"add: shapes \(2, 3\) and \(4,\) do not broadcast"),
    (lambda: t((2, 3)) * t((3, 2)), r"mul: shapes \(2, 3\) and \(3, 2\)"),
    (lambda: t((2, 3)) @ t((2, 4)), r"matmul: shapes \(2, 3\) and \(2, 4\) do not fit"),
    (lambda: t((2, 3)).reshape(4), r"reshape: cannot view shape \(2, 3\)"),
    (lambda: t((2, 3)).expand(4, 3), r"cannot be broadcast to \(4, 3\)"),
    (lambda: tinyllm.concat([t((2, 3)), t((2, 4))]), r"tensor 1 has shape \(2, 4\)"),
    (lambda: tinyllm.stack([t((2, 3)), t((3, 2))]), r"tensor 1 has shape \(3, 2\)"),
    (lambda: tinyllm.where(t((2,)) > 0, t((3,)), 0.0), r"where: shapes"),
    (lambda: t((2, 3)) < t((4,)), r"shapes \(2, 3\) and \(4,\)"),
    (lambda: t((2, 3)).masked_fill(np.ones(4, dtype=bool), 0.0), r"shapes"),
])
def test_shapes_that_do_not_fit_raise_one_clear_value_error(call, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        call()


# ----------------------------------------------------------------------------- PyTorch names

def test_dim_and_keepdim_are_accepted_beside_axis_and_keepdims() -> None:
    x = t((2, 3, 4))
    for name in ["sum", "mean", "amax", "amin", "prod", "any", "all", "argmax", "argmin", "logsumexp"]:
        a = getattr(x, name)(dim=1, keepdim=True)
        b = getattr(x, name)(axis=1, keepdims=True)
        assert a.shape == b.shape == (2, 1, 4), name
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert x.var(dim=1).shape == (2, 4) and x.std(dim=(0, 2), keepdim=True).shape == (1, 3, 1)
    assert tinyllm.sum(x, dim=-1).shape == (2, 3) and x.softmax(dim=0).shape == x.shape
    assert tinyllm.concat([x, x], dim=1).shape == (2, 6, 4) and x.squeeze(dim=0).shape == x.shape
    with pytest.raises(TypeError, match="give one"):
        x.sum(dim=0, axis=1)


def test_max_and_min_over_a_dim_return_values_and_indices() -> None:
    x = tinyllm.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    values, indices = x.max(dim=1)
    np.testing.assert_array_equal(values.numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    assert x.min(0).indices.tolist() == [0, 1, 0] and x.max().item() == 7.0
    np.testing.assert_array_equal(x.max(x * 0 + 4).numpy(), [[4, 5, 4], [7, 4, 4]])
    assert x.max(1, keepdim=True).values.shape == (2, 1)


def test_var_and_std_defaults_follow_the_spelling() -> None:
    x = tinyllm.tensor([1.0, 2.0, 3.0, 4.0])
    assert x.var().item() == pytest.approx(np.var([1, 2, 3, 4], ddof=1))          # PyTorch: unbiased
    assert x.var(unbiased=False).item() == pytest.approx(np.var([1, 2, 3, 4]))
    assert x.var(axis=0).item() == pytest.approx(np.var([1, 2, 3, 4]))             # NumPy: ddof=0
    assert x.std(correction=0).item() == pytest.approx(np.std([1, 2, 3, 4]))


def test_tensor_facts_and_conversions() -> None:
    x = t((2, 3))
    assert x.size() == (2, 3) and x.size(1) == 3 and x.size(-2) == 2 and x.size == 6
    assert x.dim() == 2 and x.numel() == 6 and x.ndim == 2
    assert tinyllm.tensor([2.5]).item() == 2.5 and x.tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="one-element"):
        x.item()
    assert x.double().dtype == np.float64 and x.long().dtype == np.int64 and x.int().dtype == np.int32
    assert x.bool().dtype == np.bool_ and x.half().dtype == np.float16 and x.float().dtype == np.float32
    assert x.to("float64").dtype == np.float64 and x.to(np.int64).dtype == np.int64
    assert x.to(dtype="float16").dtype == np.float16 and x.to("cpu") is x if x.device == "cpu" else True
    assert x.to(tinyllm.tensor([1], dtype="int32")).dtype == np.int32


def test_detach_clone_contiguous() -> None:
    x = tinyllm.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.data is x.data
    c = x.clone()
    assert c.requires_grad and c.data is not x.data
    (c * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    y = tinyllm.tensor(np.ones((3, 2))).transpose(0, 1)
    assert not y.data.flags.c_contiguous and y.contiguous().data.flags.c_contiguous
    assert x.contiguous() is x


def test_in_place_ops_on_tensors_outside_the_graph() -> None:
    x = tinyllm.tensor([1.0, -2.0, 3.0])
    same = x.add_(1).mul_(2).clamp_(min=0.0, max=5.0)
    assert same is x
    np.testing.assert_array_equal(x.numpy(), [4.0, 0.0, 5.0])
    x.add_(tinyllm.tensor([1.0, 1.0, 1.0]), alpha=2).sub_(1).div_(2)
    np.testing.assert_array_equal(x.numpy(), [2.5, 0.5, 3.0])
    assert x.fill_(7).tolist() == [7.0, 7.0, 7.0] and x.zero_().tolist() == [0.0, 0.0, 0.0]
    i = tinyllm.tensor([1, 2])
    with pytest.raises(RuntimeError, match="cannot be cast"):
        i.add_(0.5)


def test_in_place_on_a_tensor_that_requires_grad_is_an_error_unless_no_grad() -> None:
    w = tinyllm.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad cannot be modified in place"):
        w.mul_(2)
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])                      # untouched
    with tinyllm.no_grad():
        w.mul_(2).zero_()
    np.testing.assert_array_equal(w.numpy(), [0.0, 0.0])


def test_matrix_helpers_and_slicing_names() -> None:
    m = t((2, 3))
    assert m.t().shape == (3, 2) and tinyllm.mm(m, m.t()).shape == (2, 2) and m.narrow(1, 1, 2).shape == (2, 2)
    assert tinyllm.bmm(m[None], m.t()[None]).shape == (1, 2, 2) and tinyllm.outer(m[0], m[1]).shape == (3, 3)
    assert tinyllm.dot(m[0], m[1]).item() == 0 * 3 + 1 * 4 + 2 * 5
    assert [u.shape for u in m.unbind(1)] == [(2,)] * 3 and t((2, 3, 4)).movedim(0, -1).shape == (3, 4, 2)
    for call in (lambda: t((2, 3, 4)).t(), lambda: tinyllm.mm(m, m), lambda: tinyllm.dot(m, m)):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(IndexError, match="do not fit"):
        m.narrow(1, 2, 2)
