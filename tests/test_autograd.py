"""The autograd engine itself: accumulation, deep graphs, freeing the graph,
no_grad, and the errors a user can hit."""
from __future__ import annotations

import gc
import time
import weakref

import numpy as np
import pytest

import tinyllm
import tinyllm.functional as F
from tinyllm import Function, Tensor


def leaf(values, dtype="float64") -> Tensor:
    return tinyllm.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# ----------------------------------------------------------------------------- accumulation

def test_gradients_accumulate_across_backward_calls_until_zeroed() -> None:
    x = leaf([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0 + 2.0, 3.0 + 4.0])
    x.zero_grad()
    assert x.grad is None


def test_a_tensor_reached_by_several_paths_gets_their_sum() -> None:
    x = leaf([2.0])
    a, b = x * x, x.exp()            # diamond: y = x^2 * e^x + x^2
    y = a * b + a
    y.backward(np.ones(1))
    np.testing.assert_allclose(x.grad, 2 * 2.0 * np.exp(2.0) + 4.0 * np.exp(2.0) + 4.0)


def test_gradient_buffers_are_never_aliased() -> None:
    """Leaf gradients are owned, writable arrays: never the incoming gradient or each other."""
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    g = np.ones(2)
    (a + b).backward(g)
    assert a.grad is not g and b.grad is not g and not np.shares_memory(a.grad, b.grad)
    a.grad += 1.0
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    np.testing.assert_array_equal(g, [1.0, 1.0])
    c = leaf(np.ones((2, 3)))
    c.sum().backward()               # the gradient of sum is a broadcast view: it must be copied
    c.grad += 1.0
    np.testing.assert_array_equal(c.grad, 2.0)


def test_retain_grad_detach_and_backward_on_a_leaf() -> None:
    x = leaf([1.0, -2.0])
    h = x * 2.0
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_array_equal(h.grad, [4.0, -8.0])
    y = leaf([5.0])
    (y.detach() * y).backward(np.ones(1))      # only the second factor is differentiated
    np.testing.assert_array_equal(y.grad, [5.0])
    z = leaf([1.0, 2.0])
    z.backward(np.array([0.5, 0.25]))
    np.testing.assert_array_equal(z.grad, [0.5, 0.25])


def test_only_tensors_that_need_it_record_history() -> None:
    c = tinyllm.tensor([1.0, 2.0])
    assert (c * 2.0)._ctx is None and not (c * 2.0).requires_grad
    x = leaf([1.0, 2.0])
    y = x * c
    assert y.requires_grad and y._ctx is not None and y._ctx.needs_grad == (True, False)


# ----------------------------------------------------------------------------- deep graphs

def test_a_chain_of_100000_ops_needs_no_recursion() -> None:
    x = leaf([1.0, 2.0])
    y = x
    start = time.perf_counter()
    for _ in range(100_000):
        y = -y
    y.backward(np.ones(2), retain_graph=True)
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    del y                        # dropping the whole (retained) deep graph is safe too
    assert time.perf_counter() - start < 20.0


# ----------------------------------------------------------------------------- freeing the graph

def _two_layer_graph() -> tuple:
    x = leaf(np.linspace(-1, 1, 6).reshape(2, 3))
    h = x.exp()
    h2 = h * h
    y = h2.sum()
    return x, y, [weakref.ref(h), weakref.ref(h2), weakref.ref(h.data), weakref.ref(h2._ctx)]


def test_backward_frees_intermediate_tensors_and_saved_arrays() -> None:
    x, y, refs = _two_layer_graph()
    assert all(r() is not None for r in refs)          # the graph keeps them alive...
    y.backward()
    assert all(r() is None for r in refs)              # ...until backward (no gc pass needed)
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()


def test_retain_graph_keeps_it_for_a_second_pass() -> None:
    x, y, refs = _two_layer_graph()
    y.backward(retain_graph=True)
    assert all(r() is not None for r in refs)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * np.exp(2 * x.numpy()))
    assert all(r() is None for r in refs)


def _live() -> tuple[int, int]:
    """How many Tensor and Function objects exist."""
    gc.collect()
    kinds = [type(o) for o in gc.get_objects()]
    return sum(issubclass(k, Tensor) for k in kinds), sum(issubclass(k, Function) for k in kinds)


def test_no_tensor_or_function_outlives_a_training_step() -> None:
    """Count live objects, as tinygrad's test_gc: after backward only the parameters,
    their gradients and the loss (with its emptied Function record) remain."""
    rng = np.random.default_rng(0)
    w1, w2 = leaf(rng.standard_normal((4, 8))), leaf(rng.standard_normal((8, 3)))
    tensors, functions = _live()
    x = tinyllm.tensor(rng.standard_normal((5, 4)))
    loss = F.cross_entropy(F.layer_norm(F.gelu(x @ w1, approximate="tanh")) @ w2, np.array([0, 1, 2, 0, 1]))
    assert _live()[1] == functions + 5                 # matmul, gelu, layer_norm, matmul, cross_entropy
    loss.backward()
    del x
    assert _live() == (tensors + 1, functions + 1)
    ctx = loss._ctx
    assert ctx.inputs is None and not ctx.__dict__
    del loss, ctx
    assert _live() == (tensors, functions)
    assert w1.grad.shape == (4, 8) and w2.grad.shape == (8, 3)


class _NoGradForInput(Function):
    """Test fixture: a Function whose backward sends nothing to its input."""

    def forward(self, x):
        self.saved = x * 2.0
        return self.saved

    def backward(self, g):
        return (None,)


def test_nodes_that_receive_no_gradient_are_freed_too() -> None:
    x = leaf([1.0])
    m = x * 3.0
    y = _NoGradForInput.apply(m) + x
    y.backward(np.ones(1))
    np.testing.assert_array_equal(x.grad, [1.0])
    assert m._ctx.inputs is None and not m._ctx.__dict__      # m got no gradient, yet is freed


# ----------------------------------------------------------------------------- no_grad

def test_no_grad_records_nothing_as_context_manager() -> None:
    x = leaf([1.0, 2.0])
    functions = _live()[1]
    with tinyllm.no_grad():
        assert not tinyllm.is_grad_enabled()
        y = F.softmax(x * 2.0 + 1.0)
        with tinyllm.no_grad():
            pass
        assert not tinyllm.is_grad_enabled()
    assert tinyllm.is_grad_enabled()
    assert y._ctx is None and not y.requires_grad and _live()[1] == functions


def test_no_grad_as_decorator_with_or_without_parentheses() -> None:
    @tinyllm.no_grad()
    def f(x):
        return x * 2.0

    @tinyllm.no_grad
    def g(x):
        """docstring kept"""
        return x * 2.0

    x = leaf([1.0])
    for fn in (f, g):
        y = fn(x)
        assert y._ctx is None and not y.requires_grad
    assert g.__doc__ == "docstring kept" and tinyllm.is_grad_enabled()


def test_no_grad_restores_grad_mode_after_an_exception() -> None:
    with pytest.raises(ZeroDivisionError):
        with tinyllm.no_grad():
            1 / 0  # noqa: B018
    assert tinyllm.is_grad_enabled()
    assert (leaf([1.0]) * 2.0).requires_grad


# ----------------------------------------------------------------------------- errors

def test_backward_on_a_non_scalar_without_a_gradient_says_what_to_do() -> None:
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(RuntimeError, match=r"one-element tensor, got shape \(2,\): pass grad="):
        y.backward()


def test_backward_twice_through_a_freed_graph_says_retain_graph() -> None:
    y = (leaf([1.0]) * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="already freed: pass retain_graph=True"):
        y.backward()


def test_backward_on_a_tensor_without_history_and_a_mismatched_gradient() -> None:
    with pytest.raises(RuntimeError, match="does not require grad"):
        tinyllm.tensor([1.0]).backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\), tensor has \(2,\)"):
        (leaf([1.0, 2.0]) * 2.0).backward(np.ones(3))
    with pytest.raises(TypeError, match="only floating tensors"):
        tinyllm.tensor([1, 2]).requires_grad_()
