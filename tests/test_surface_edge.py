"""The PyTorch surface at its edges, each case stated as the value or the error PyTorch 2.13
gives for the same call (so these run without torch; ``test_surface_edge_torch.py`` runs the
same kinds of calls on both): in-place operators and item assignment, one-element
conversions, reductions over empty sides, ``max(dim)`` ties, clamp with tensor bounds,
comparisons with non-numbers, shape errors, ``backward(gradient=)``, module state.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinyllm
from tinyllm import nn
from tinyllm.ops.axes import ShapeError


def t(values, **kw):
    return tinyllm.tensor(np.asarray(values, dtype=kw.pop("dtype", np.float32)), **kw)


# ----------------------------------------------------------------------------- in place: += and x[i] = v

def test_augmented_assignment_is_in_place_so_aliases_see_it() -> None:
    x = t([1.0, 2.0])
    alias, view = x, x[0:1]
    x += 1
    x *= 2
    x -= t([1.0, 1.0])
    x /= 2
    assert x is alias
    np.testing.assert_allclose(alias.numpy(), [1.5, 2.5])
    np.testing.assert_allclose(view.numpy(), [1.5])


def test_sgd_by_hand_under_no_grad_updates_the_parameter() -> None:
    """``p -= lr * p.grad`` under no_grad, the first loop every PyTorch user writes."""
    lin = nn.Linear(2, 1)
    nn.init.ones_(lin.weight)
    nn.init.zeros_(lin.bias)
    lin(t([[1.0, 2.0]])).sum().backward()
    with tinyllm.no_grad():
        for p in lin.parameters():
            p -= 0.5 * tinyllm.tensor(p.grad)
    np.testing.assert_allclose(lin.weight.numpy(), [[0.5, 0.0]])
    np.testing.assert_allclose(lin.bias.numpy(), [-0.5])


def test_augmented_assignment_on_a_leaf_that_requires_grad_raises_and_in_the_graph_rebinds() -> None:
    w = t([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in place"):
        w += 1
    h = w * 2
    h += 1                                           # a tensor made in the graph: same values as PyTorch
    h.sum().backward()
    np.testing.assert_allclose(h.numpy(), [3.0, 5.0])
    np.testing.assert_allclose(w.grad, [2.0, 2.0])


@pytest.mark.parametrize("start, other, message", [
    (np.ones((3, 1)), np.ones((3, 4)), r"output with shape \(3, 1\) doesn't match the broadcast shape \(3, 4\)"),
    (np.ones(2, dtype=np.int64), 1.5, "cannot be cast"),
])
def test_in_place_results_that_would_change_shape_or_kind_raise_runtime_error(start, other, message) -> None:
    x = tinyllm.tensor(start)
    with pytest.raises(RuntimeError, match=message):
        x.add_(other)
    with pytest.raises(RuntimeError, match=message):
        x += other
    np.testing.assert_array_equal(x.numpy(), start)  # untouched


@pytest.mark.parametrize("index, value, expected", [
    (0, 5.0, [[5, 5, 5], [3, 4, 5]]),
    ((slice(None), 0), [7.0, 8.0], [[7, 1, 2], [8, 4, 5]]),
    ((Ellipsis, -1), t([[9.0], [9.0]]).reshape(2), [[0, 1, 9], [3, 4, 9]]),
    ("mask", 0.0, [[0, 1, 2], [0, 0, 0]]),
    ("nomask", 0.0, [[0, 1, 2], [3, 4, 5]]),
    ((t([1, 1], dtype=np.int64), t([0, 2], dtype=np.int64)), -1.0, [[0, 1, 2], [-1, 4, -1]]),
    ([0, 0], 2.0, [[2, 2, 2], [3, 4, 5]]),
    ((1, slice(None, None, 2)), np.array([6.0, 6.0]), [[0, 1, 2], [6, 4, 6]]),
])
def test_setitem_broadcasts_the_value_into_the_indexed_place(index, value, expected) -> None:
    x = tinyllm.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    if index == "mask":
        index = x > 2
    elif index == "nomask":
        index = x > 100
    x[index] = value
    np.testing.assert_array_equal(x.numpy(), np.array(expected, dtype=np.float32))
    assert x.dtype == np.float32


def test_setitem_writes_through_views_converts_dtype_and_checks_like_torch() -> None:
    base = t([[1.0, 2.0]])
    base.reshape(2)[0] = 9
    assert base.numpy().tolist() == [[9.0, 2.0]]
    ints = tinyllm.tensor(np.array([1, 2]))
    ints[0] = 1.7                                    # PyTorch truncates, as copy_ does
    assert ints.numpy().tolist() == [1, 2] and ints.dtype == np.int64
    x = tinyllm.tensor(np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(RuntimeError, match=r"shape \(2,\) cannot be broadcast to the shape \(4,\)"):
        x[0] = t([1.0, 2.0])
    with pytest.raises(IndexError):
        x[3] = 1.0
    w = t([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        w[0] = 0.0
    with tinyllm.no_grad():
        w[0] = 0.0
    assert w.numpy().tolist() == [0.0, 2.0]


# ----------------------------------------------------------------------------- one-element conversions

@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_one_element_tensors_of_any_shape_convert_to_python_numbers(shape) -> None:
    x = t(np.full(shape, 2.5))
    assert float(x) == 2.5 and int(x) == 2 and bool(x) is True and x.item() == 2.5
    assert bool(t(np.zeros(shape))) is False


@pytest.mark.parametrize("shape", [(2,), (0,), (2, 3)])
def test_other_tensors_refuse_conversion_as_torch_does(shape) -> None:
    x = t(np.ones(shape))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(x)
    with pytest.raises(ValueError, match="one-element"):
        float(x)
    with pytest.raises(ValueError, match="one-element"):
        int(x)


# ----------------------------------------------------------------------------- comparisons with non-numbers

def test_comparing_with_none_or_a_string_is_false_not_a_crash() -> None:
    x = t([1.0, 2.0])
    assert (x == None) is False and (x != None) is True  # noqa: E711  (the comparison under test)
    assert (x == "a") is False and x not in [None, "a"]
    assert (x == 1.0).numpy().tolist() == [True, False]


# ----------------------------------------------------------------------------- clamp with tensor bounds

def test_clamp_with_tensor_bounds_broadcasts_promotes_and_differentiates() -> None:
    x = t([0.0, 1.0, 2.0, 3.0], requires_grad=True)
    lo = t([0.5, 0.5, 0.5, 0.5], requires_grad=True)
    y = x.clamp(min=lo, max=2.5)
    np.testing.assert_allclose(y.numpy(), [0.5, 1.0, 2.0, 2.5])
    assert y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 1.0, 1.0, 0.0])   # PyTorch: x where lo <= x <= hi
    np.testing.assert_allclose(lo.grad, [1.0, 0.0, 0.0, 0.0])  # and the bound where it won
    ints = tinyllm.tensor(np.array([1, 5])).clamp(max=tinyllm.tensor(np.array([2.5, 2.5])))
    assert ints.dtype == np.float64 and ints.numpy().tolist() == [1.0, 2.5]
    assert math.isnan(t([float("nan")]).clamp(min=t([0.0])).item())


# ----------------------------------------------------------------------------- reductions at the edges

@pytest.mark.parametrize("call, shape", [
    (lambda x: x.max(1).values, (0,)),
    (lambda x: x.max(1).indices, (0,)),
    (lambda x: x.amax(1), (0,)),
    (lambda x: x.amin(-1, keepdim=True), (0, 1)),
    (lambda x: x.argmax(1), (0,)),
    (lambda x: x.sum(), ()),
    (lambda x: x.sum(0), (3,)),
])
def test_reductions_of_an_empty_tensor_over_a_nonempty_side(call, shape) -> None:
    out = call(tinyllm.zeros(0, 3))
    assert out.shape == shape


@pytest.mark.parametrize("call, error", [
    (lambda x: x.max(), RuntimeError),
    (lambda x: x.amax(), RuntimeError),
    (lambda x: x.max(0), IndexError),
    (lambda x: x.amin(0), IndexError),
    (lambda x: x.argmax(0), IndexError),
    (lambda x: x.min(-2), IndexError),
])
def test_max_min_argmax_over_an_empty_side_raise_as_torch_does(call, error) -> None:
    with pytest.raises(error, match="empty|size 0"):
        call(tinyllm.zeros(0, 3))


def test_var_and_std_with_too_few_elements_are_nan_and_empty_sums_are_zero() -> None:
    assert math.isnan(t(2.0).var().item()) and math.isnan(t([2.0]).std().item())
    np.testing.assert_array_equal(tinyllm.zeros(0, 3).std(0).numpy(), [np.nan] * 3)
    assert t([1.0, 3.0]).var(correction=0).item() == 1.0
    assert tinyllm.zeros(0, 3).sum().item() == 0.0
    assert math.isnan(tinyllm.zeros(0, 3).mean().item())


def test_max_over_a_dim_sends_the_gradient_to_the_returned_index() -> None:
    """PyTorch: ``max(dim)``'s values take the gradient at ``indices`` only (the first of
    tied maxima); ``amax`` and the all-element ``max()`` split it between ties."""
    for big in (True, False):
        x = t([[3.0, 3.0, 1.0], [1.0, 1.0, 1.0]] if big else [[1.0, 1.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
        values, indices = x.max(1) if big else x.min(1)
        assert indices.numpy().tolist() == [0, 0] and values.shape == (2,)
        (values * t([1.0, 2.0])).sum().backward()
        np.testing.assert_allclose(x.grad, [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    x = t([[3.0, 3.0, 1.0]], requires_grad=True)
    values, indices = x.max(-1, keepdim=True)
    assert values.shape == indices.shape == (1, 1)
    x.amax(1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.5, 0.5, 0.0]])
    nan = t([[1.0, float("nan"), 3.0]]).max(1)
    assert math.isnan(nan.values.item()) and nan.indices.item() == 1


def test_sums_of_bool_and_small_integer_tensors_are_int64() -> None:
    for dt in (np.bool_, np.uint8, np.int8, np.int32):
        assert tinyllm.tensor(np.array([1, 1, 0], dtype=dt)).sum().dtype == np.int64
    assert tinyllm.tensor(np.array([1, 2], dtype=np.uint8)).sum(dtype=np.float32).dtype == np.float32


# ----------------------------------------------------------------------------- shapes that do not fit

@pytest.mark.parametrize("call", [
    lambda: t([1.0, 2.0]) + t([1.0, 2.0, 3.0]),
    lambda: t([1.0, 2.0]) @ t([1.0, 2.0, 3.0]),
    lambda: t(np.ones((2, 2))).reshape(3, -1),
    lambda: t(np.ones((2, 2))).expand(3, 2),
    lambda: t(np.ones((2, 3))).split([1, 1], 1),
    lambda: tinyllm.cat([t(np.ones((2, 3))), t(np.ones((2, 4)))]),
    lambda: tinyllm.stack([t(np.ones(2)), t(np.ones(3))]),
    lambda: t(np.ones((2, 1))).repeat(2),
    lambda: t(np.ones((2, 3))).permute(0, 0),
    lambda: nn.LayerNorm(3)(t(np.ones((2, 4)))),
])
def test_shape_mismatches_are_runtime_errors_as_in_torch_and_still_value_errors(call) -> None:
    with pytest.raises(RuntimeError) as info:
        call()
    assert isinstance(info.value, ValueError) and isinstance(info.value, ShapeError)


# ----------------------------------------------------------------------------- autograd API

def test_backward_takes_torchs_gradient_keyword() -> None:
    x = t([1.0, 2.0], requires_grad=True)
    (x * x).backward(gradient=tinyllm.ones(2))
    np.testing.assert_allclose(x.grad, [2.0, 4.0])
    with pytest.raises(RuntimeError, match="one-element"):
        (x * x).backward()


# ----------------------------------------------------------------------------- modules

def test_load_state_dict_reports_missing_and_unexpected_keys_as_torch() -> None:
    lin = nn.Linear(3, 2)
    state = dict(lin.state_dict())
    bias = state.pop("bias")
    result = lin.load_state_dict({**state, "extra": bias}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    assert result == ["bias"]                        # still the list of missing names
    assert nn.Linear(3, 2).load_state_dict(lin.state_dict()).missing_keys == []
    for bad, strict in (({**state}, True), ({**state, "bias": bias, "extra": bias}, True),
                        ({**state, "bias": np.ones((2, 3), np.float32)}, False)):
        with pytest.raises(RuntimeError):
            lin.load_state_dict(bad, strict=strict)


def test_module_dtype_casts_and_zero_grad_set_to_none() -> None:
    lin = nn.Linear(3, 2)
    assert lin.double() is lin and lin.weight.dtype == np.float64 and lin.bias.dtype == np.float64
    assert lin.float().weight.dtype == np.float32 and lin.half().weight.dtype == np.float16
    lin.float()(t([[1.0, 2.0, 3.0]])).sum().backward()
    lin.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(lin.weight.grad, np.zeros((2, 3)))
    lin.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


def test_one_element_integer_tensors_index_python_sequences() -> None:
    items = [10, 20, 30]
    assert items[tinyllm.tensor(np.array([1]))] == 20 and items[tinyllm.tensor(np.array(2))] == 30
    with pytest.raises(TypeError):
        items[tinyllm.tensor(np.array([0, 1]))]


def test_to_takes_device_and_dtype_keywords_and_copy_checks_the_shape() -> None:
    x = t([1.0, 2.0])
    assert x.to(device="cpu") is x and x.to(device="cpu", dtype=np.float64).dtype == np.float64
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        x.copy_(t([1.0, 2.0, 3.0]))
    assert x.copy_(t([5.0])).numpy().tolist() == [5.0, 5.0]


@pytest.mark.parametrize("call", [
    lambda a: a // 0, lambda a: a % 0, lambda a: a.fmod(0),
    lambda a: a.div(t([1, 0], dtype=np.int64), rounding_mode="trunc"),
])
def test_integer_division_by_zero_raises_instead_of_giving_zero(call) -> None:
    ints = tinyllm.tensor(np.array([5, -5]))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        call(ints)
    assert (ints // 2).numpy().tolist() == [2, -3] and (ints % 3).numpy().tolist() == [2, 1]


# ----------------------------------------------------------------------------- float64 finite differences

@pytest.mark.parametrize("name, fn, shape", [
    ("max over a dim", lambda x: x.max(1).values * tinyllm.arange(4.0, dtype=np.float64), (4, 5)),
    ("min over a dim, keepdim", lambda x: x.min(-2, keepdim=True).values.sum(0), (3, 4)),
    ("clamp with tensor bounds", lambda x: (x[0].clamp(min=x[1], max=x[2] + 1.5) * x[3]).sum(), (4, 6)),
    ("var, std", lambda x: x.var(1) + x.std(0).sum(), (3, 4)),
])
def test_gradients_of_the_changed_ops_match_finite_differences(name, fn, shape) -> None:
    rng = np.random.default_rng(sum(shape))
    x = rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape) * 4 - 2   # distinct: no ties, no kinks
    assert tinyllm.gradcheck(fn, tinyllm.tensor(x.astype(np.float64), requires_grad=True)), name


def test_next_of_parameters_is_the_first_parameter_as_with_torchs_generator() -> None:
    lin = nn.Linear(3, 2)
    params = lin.parameters()
    assert next(params) is lin.weight and next(params) is lin.bias
    with pytest.raises(StopIteration):
        next(params)
    assert next(lin.parameters()).dtype == np.float32 and lin.parameters() == [lin.weight, lin.bias]


def test_module_to_takes_a_device_as_torch_names_it() -> None:
    lin = nn.Linear(3, 2)
    weight = lin.weight.numpy().copy()
    for call in (lambda m: m.to("cpu"), lambda m: m.to(device="cpu"), lambda m: m.to("cpu:0")):
        assert call(lin) is lin and lin.weight.device == "cpu" and lin.weight.dtype == np.float32
    assert lin.to(np.float64).weight.dtype == np.float64 and lin.to(device="cpu", dtype=np.float32) is lin
    np.testing.assert_allclose(lin.weight.numpy(), weight)


def test_numpy_reads_a_tensor_as_its_values() -> None:
    x = t([1.0, 2.0])
    arr = np.asarray(x)
    assert arr.dtype == np.float32 and arr.tolist() == [1.0, 2.0] and np.array(x, dtype=np.float64).dtype == np.float64
    np.testing.assert_allclose(x, [1.0, 2.0])                     # the assertion third-party tests write
    stacked = tinyllm.tensor([tinyllm.tensor(1.0), tinyllm.tensor(2.0)])
    assert stacked.dtype == np.float32 and stacked.shape == (2,)
    assert isinstance(np.ones(2, np.float32) * x, tinyllm.Tensor)  # ndarray (op) Tensor still defers to Tensor
