"""PyTorch's grad-mode helpers and dtype names: enable_grad, set_grad_enabled, inference_mode,
tinyllm.float32 and friends (what a PyTorch user writes, with PyTorch's meaning)."""
import numpy as np
import pytest

import tinyllm as tl


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
