"""PyTorch's grad-mode helpers and dtype names: enable_grad, set_grad_enabled, inference_mode,
tinyllm.float32 and friends (what a PyTorch user writes, with PyTorch's meaning)."""
import numpy as np
import pytest

import tinyllm as tl
from gradcases import surface_case


def recorded() -> bool:
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    return (x * 2).sum().requires_grad


def test_enable_grad_records_inside_no_grad_and_restores():
    with tl.no_grad():
        assert not recorded()
        with tl.enable_grad():
            assert recorded() and tl.is_grad_enabled()
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()

    @tl.enable_grad()
    def f() -> bool:
        return recorded()

    with tl.no_grad():
        assert f() and not tl.is_grad_enabled()


def test_set_grad_enabled_acts_at_once_and_as_a_block_and_decorator():
    try:
        tl.set_grad_enabled(False)                    # a plain call switches at once
        assert not tl.is_grad_enabled() and not recorded()
        with tl.set_grad_enabled(True):
            assert recorded()
        assert not tl.is_grad_enabled()               # the block put the previous mode back
    finally:
        tl.set_grad_enabled(True)

    @tl.set_grad_enabled(False)
    def f() -> bool:
        return tl.is_grad_enabled()

    assert tl.is_grad_enabled()                       # decorating changes nothing yet
    assert f() is False and tl.is_grad_enabled()


def test_set_grad_enabled_restores_after_an_error():
    with pytest.raises(RuntimeError, match="inside"):
        with tl.set_grad_enabled(False):
            raise RuntimeError("inside")
    assert tl.is_grad_enabled()


@pytest.mark.parametrize("make", [lambda: tl.inference_mode(), lambda: tl.inference_mode(True)])
def test_inference_mode_records_nothing(make):
    with make():
        assert not recorded()
    assert tl.is_grad_enabled()


def test_inference_mode_false_leaves_the_mode_and_decorates():
    with tl.inference_mode(False):
        assert recorded()
    with tl.no_grad(), tl.inference_mode(False):
        assert not recorded()

    @tl.inference_mode
    def bare() -> bool:
        return tl.is_grad_enabled()

    @tl.inference_mode()
    def called() -> bool:
        return tl.is_grad_enabled()

    assert bare() is False and called() is False and tl.is_grad_enabled()


@pytest.mark.parametrize("name", ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8"])
def test_dtype_names_are_numpy_dtypes(name):
    assert np.dtype(getattr(tl, name)) == np.dtype(name)
    t = tl.zeros(2, dtype=getattr(tl, name))
    assert t.dtype == np.dtype(name)


def test_bool_dtype_name():
    assert np.dtype(tl.bool) == np.dtype(bool)
    assert (tl.tensor([1, 0]) > 0).dtype == np.dtype(tl.bool)


def test_tensor_predicates_and_sizes():
    x = tl.zeros(2, 3)
    assert x.is_contiguous() and not x.T.is_contiguous()
    assert x.is_floating_point() and not tl.tensor([1, 2]).is_floating_point()
    assert x.element_size() == 4 and tl.zeros(2, dtype=tl.float64).element_size() == 8
    assert x.nelement() == tl.numel(x) == 6 and x.ndimension() == 2
    assert tl.is_tensor(x) and not tl.is_tensor(x.data)


def test_grad_fn_is_the_node_or_none():
    a = tl.tensor([1.0, 2.0], requires_grad=True)
    assert a.grad_fn is None
    b = a * 3
    assert b.grad_fn is not None and b.grad_fn is b._ctx
    with tl.no_grad():
        assert (a * 3).grad_fn is None


def test_from_numpy_shares_memory_and_keeps_the_dtype():
    arr = np.arange(4.0)
    t = tl.from_numpy(arr)
    assert t.dtype == np.float64
    arr[0] = 7.0
    assert float(t[0]) == 7.0
    with pytest.raises(TypeError, match="numpy.ndarray"):
        tl.from_numpy([1.0, 2.0])


@surface_case("Tensor.square", "Tensor.where", "Tensor.tile")
def test_square_where_and_tile_gradients_against_finite_differences():
    rng = np.random.default_rng(3)
    x = tl.tensor(rng.standard_normal((2, 3)), dtype=tl.float64, requires_grad=True)
    y = tl.tensor(rng.standard_normal((2, 3)), dtype=tl.float64, requires_grad=True)
    cond = rng.standard_normal((2, 3)) > 0
    tl.gradcheck(lambda a: a.square(), x)
    tl.gradcheck(lambda a, b: a.where(cond, b), x, y)
    tl.gradcheck(lambda a: a.tile(2) * a.tile(2), x)
    tl.gradcheck(lambda a: a.tile((3, 1, 2)), x)


def test_square_where_and_tile_have_gradients():
    x = tl.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=tl.float64, requires_grad=True)
    (x.square().sum() + x.where(x > 0, 0.0).sum() + x.tile(2).sum() + x.tile((2, 1, 1)).sum()).backward()
    expected = 2 * x.data + (x.data > 0) + 2 + 2
    np.testing.assert_allclose(x.grad, expected)
    assert x.tile(2).shape == (2, 4) and x.tile((2, 1, 1)).shape == (2, 2, 2)
