"""Every differentiable engine op against central finite differences, in float64.

The cases (expression + input strategy) live in ``op_cases.py``; hypothesis
draws shapes from 0-d to 4-d, broadcastable pairs, and values kept away from
kinks. The tests below the table cover what a gradient check cannot see:
the value of a gradient AT a kink or tie, by definition.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyllm
import tinyllm.functional as F
from gradcases import grad_case
from op_cases import CASES, covered_ops
from tinyllm import gradcheck


@grad_case(*sorted(covered_ops()))
@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_gradient_matches_finite_differences(name: str, data: st.DataObject) -> None:
    case = CASES[name]
    arrays, params = data.draw(case.inputs, label="inputs")
    tensors = [tinyllm.tensor(a, requires_grad=True) for a in arrays]
    gradcheck(lambda *ts: case.fn(*ts, **params), *tensors, eps=case.eps)


def grad_of(fn, *values, dtype="float64") -> list:
    """Gradients of sum(fn(*tensors)) with respect to each input."""
    ts = [tinyllm.tensor(np.asarray(v, dtype=dtype), requires_grad=True) for v in values]
    fn(*ts).sum().backward()
    return [t.grad for t in ts]


# ----------------------------------------------------------------------------- kinks and ties

def test_max_and_min_split_the_gradient_between_ties() -> None:
    (g,) = grad_of(lambda x: x.max(), [1.0, 3.0, 3.0])
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])
    (g,) = grad_of(lambda x: x.min(axis=1), [[2.0, 2.0, 5.0], [1.0, 4.0, 0.0]])
    np.testing.assert_array_equal(g, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])


def test_maximum_and_minimum_split_ties_evenly() -> None:
    ga, gb = grad_of(tinyllm.maximum, [1.0, 2.0, 3.0], [1.0, 5.0, 0.0])
    np.testing.assert_array_equal(ga, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(gb, [0.5, 1.0, 0.0])
    ga, gb = grad_of(tinyllm.minimum, [1.0, 2.0], [1.0, 5.0])
    np.testing.assert_array_equal(ga, [0.5, 1.0])
    np.testing.assert_array_equal(gb, [0.5, 0.0])


def test_relu_abs_and_clip_at_their_kinks() -> None:
    """As PyTorch: relu'(0) = 0, |x|'(0) = 0, and clip passes the gradient at its bounds."""
    np.testing.assert_array_equal(grad_of(lambda x: x.relu(), [0.0, -1.0, 2.0])[0], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(grad_of(lambda x: x.abs(), [0.0, -1.0, 2.0])[0], [0.0, -1.0, 1.0])
    np.testing.assert_array_equal(grad_of(lambda x: x.clip(-1.0, 1.0), [-1.0, 1.0, 1.5, -3.0])[0],
                                  [1.0, 1.0, 0.0, 0.0])


def test_integer_indexing_sums_the_gradient_of_repeated_rows() -> None:
    (g,) = grad_of(lambda x: x[np.array([[0, 2], [2, -1]])], np.zeros((3, 2)))
    np.testing.assert_array_equal(g, [[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]])


# ----------------------------------------------------------------------------- fused-op specifics

def test_embedding_padding_row_gets_no_gradient() -> None:
    """By definition (as PyTorch): the padding row is a constant; other rows are unaffected."""
    idx = np.array([[0, 1, 1], [2, 0, 1]])
    (with_pad,) = grad_of(lambda w: F.embedding(w, idx, padding_idx=1) * 2.0, np.ones((4, 3)))
    (no_pad,) = grad_of(lambda w: F.embedding(w, idx) * 2.0, np.ones((4, 3)))
    np.testing.assert_array_equal(with_pad[1], 0.0)
    np.testing.assert_array_equal(np.delete(with_pad, 1, axis=0), np.delete(no_pad, 1, axis=0))
    np.testing.assert_array_equal(no_pad[:, 0], [4.0, 6.0, 2.0, 0.0])


def test_dropout_is_deterministic_under_a_fixed_seed() -> None:
    x = tinyllm.tensor(np.ones((50, 40)), requires_grad=True)
    tinyllm.manual_seed(5)
    a = F.dropout(x, 0.3).numpy()
    tinyllm.manual_seed(5)
    b = F.dropout(x, 0.3).numpy()
    c = F.dropout(x, 0.3).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
    assert set(np.unique(a)) == {0.0, 1.0 / 0.7}
    assert abs((a == 0).mean() - 0.3) < 0.05
    assert F.dropout(x, 0.3, training=False) is x and F.dropout(x, 0.0) is x


def test_dropout_gradient_uses_the_forward_mask() -> None:
    x = tinyllm.tensor(np.linspace(-1, 1, 60).reshape(6, 10), requires_grad=True)
    y = F.dropout(x, 0.5)
    y.backward(np.ones(y.shape))
    np.testing.assert_array_equal(x.grad, (y.numpy() != 0) * 2.0)


def test_attention_rows_with_no_allowed_key_are_zero_and_get_zero_gradient() -> None:
    rng = np.random.default_rng(0)
    shapes = [(2, 3, 4), (2, 5, 4), (2, 5, 2)]
    q, k, v = (tinyllm.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes)
    mask = np.ones((2, 3, 5), dtype=bool)
    mask[0, 1] = False                                   # batch 0, query 1 sees nothing
    y = F.attention(q, k, v, mask=mask)
    np.testing.assert_array_equal(y.numpy()[0, 1], 0.0)
    y.backward(rng.standard_normal(y.shape))
    np.testing.assert_array_equal(q.grad[0, 1], 0.0)
    assert np.isfinite(k.grad).all() and np.isfinite(v.grad).all()


def test_causal_attention_with_more_queries_than_keys_stays_finite() -> None:
    """Aligned at the end: the first Tq - Tk queries see no key, and get zeros rather than nan."""
    q, k, v = (tinyllm.tensor(np.ones(s), requires_grad=True) for s in [(4, 2), (2, 2), (2, 3)])
    y = F.attention(q, k, v, causal=True)
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy()[:2], 0.0)
    np.testing.assert_allclose(y.numpy()[2:], 1.0)
    assert np.isfinite(q.grad).all()


def test_cross_entropy_with_every_target_ignored_is_zero() -> None:
    z = tinyllm.tensor(np.ones((3, 4)), requires_grad=True)
    loss = F.cross_entropy(z, np.full(3, -100))
    loss.backward()
    assert loss.item() == 0.0
    np.testing.assert_array_equal(z.grad, 0.0)


def test_cross_entropy_gradient_on_the_batch_time_layout_matches_the_flat_one() -> None:
    rng = np.random.default_rng(1)
    z, t = rng.standard_normal((2, 3, 5)), rng.integers(0, 5, (2, 3))
    t[1, 2] = -100
    (g3,) = grad_of(lambda x: F.cross_entropy(x, t, label_smoothing=0.1), z)
    (g2,) = grad_of(lambda x: F.cross_entropy(x, t.reshape(-1), label_smoothing=0.1), z.reshape(6, 5))
    np.testing.assert_allclose(g3.reshape(6, 5), g2, rtol=1e-12, atol=1e-15)
