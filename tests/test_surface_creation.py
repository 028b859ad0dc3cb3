"""Creation ops: shapes, dtypes, requires_grad, values, and seeding by ``tinyllm.manual_seed``."""
from __future__ import annotations

import numpy as np
import pytest

import tinyllm


def test_constant_tensors_take_sizes_dtypes_and_requires_grad() -> None:
    for make in (tinyllm.zeros, tinyllm.ones, tinyllm.empty):
        a, b = make(2, 3), make((2, 3), dtype="float64", requires_grad=True)
        assert a.shape == b.shape == (2, 3) and a.dtype == np.float32 and b.dtype == np.float64
        assert b.requires_grad and b.is_leaf and not a.requires_grad
    assert tinyllm.zeros(2, dtype="int64").tolist() == [0, 0] and tinyllm.ones([2, 1]).shape == (2, 1)
    assert tinyllm.zeros(()).shape == () and tinyllm.zeros(0, 3).shape == (0, 3)
    assert tinyllm.full((2, 2), 7).dtype == np.int64 and tinyllm.full((2,), 1.5).dtype == np.float32
    assert tinyllm.full(3, True).dtype == np.bool_ and tinyllm.full((2,), 2, dtype="float64").tolist() == [2.0, 2.0]
    np.testing.assert_array_equal(tinyllm.eye(3).numpy(), np.eye(3))
    assert tinyllm.eye(2, 3).shape == (2, 3)
    with pytest.raises(ValueError, match="negative"):
        tinyllm.zeros(-1)
    with pytest.raises(TypeError, match="only floating"):
        tinyllm.zeros(2, dtype="int64", requires_grad=True)


def test_arange_and_linspace() -> None:
    assert tinyllm.arange(5).tolist() == [0, 1, 2, 3, 4] and tinyllm.arange(5).dtype == np.int64
    assert tinyllm.arange(1, 7, 2).tolist() == [1, 3, 5]
    a = tinyllm.arange(0, 1, 0.25)
    assert a.dtype == np.float32 and a.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert tinyllm.arange(3, dtype="float64").dtype == np.float64
    lin = tinyllm.linspace(0, 1, 5)
    assert lin.dtype == np.float32
    np.testing.assert_allclose(lin.numpy(), [0, 0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ValueError, match="step"):
        tinyllm.arange(0, 3, 0)


def test_random_tensors_are_seeded_by_manual_seed() -> None:
    for make in (lambda: tinyllm.rand(3, 4), lambda: tinyllm.randn(3, 4),
                 lambda: tinyllm.randint(0, 10, (3, 4)), lambda: tinyllm.randperm(6)):
        tinyllm.manual_seed(11)
        a = make().numpy()
        tinyllm.manual_seed(11)
        b, c = make().numpy(), make().numpy()
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(b, c)
    r = tinyllm.rand(1000)
    assert r.dtype == np.float32 and 0 <= r.numpy().min() and r.numpy().max() < 1
    n = tinyllm.randn(4000, dtype="float64")
    assert n.dtype == np.float64 and abs(n.numpy().mean()) < 0.1 and abs(n.numpy().std() - 1) < 0.1
    i = tinyllm.randint(3, 5, (100,))
    assert i.dtype == np.int64 and set(i.tolist()) == {3, 4}
    assert set(tinyllm.randint(2, (50,)).tolist()) == {0, 1}
    assert sorted(tinyllm.randperm(5).tolist()) == [0, 1, 2, 3, 4]
    assert tinyllm.randn(2, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="floating"):
        tinyllm.rand(2, dtype="int64")
    with pytest.raises(ValueError, match="greater than low"):
        tinyllm.randint(5, 5, (2,))


def test_like_functions_copy_shape_and_dtype() -> None:
    x = tinyllm.tensor(np.ones((2, 3), dtype=np.float64))
    for make, check in [(tinyllm.zeros_like, 0.0), (tinyllm.ones_like, 1.0),
                        (lambda t, **k: tinyllm.full_like(t, 4.5, **k), 4.5)]:
        y = make(x)
        assert y.shape == (2, 3) and y.dtype == np.float64 and (y.numpy() == check).all()
        assert make(x, dtype="float32").dtype == np.float32
    for make in (tinyllm.rand_like, tinyllm.randn_like, tinyllm.empty_like):
        y = make(x, requires_grad=True)
        assert y.shape == (2, 3) and y.dtype == np.float64 and y.requires_grad
