"""The public gradient checker: it passes right gradients, catches wrong ones
and says where, and refuses functions that modify their inputs."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tinyllm
from tinyllm import Function, GradcheckError, gradcheck
from tinyllm.gradcheck import check_gradients


class _BrokenSquare(Function):
    """Test fixture: y = x^2 with the factor 2 forgotten in backward."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return (g * self.x,)


class _NanBackward(Function):
    """Test fixture: y = 2x whose backward returns nan."""

    def forward(self, x):
        return 2.0 * x

    def backward(self, g):
        return (g * np.nan,)


def leaf(values) -> tinyllm.Tensor:
    return tinyllm.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def test_correct_functions_pass() -> None:
    a, b = leaf([[0.3, -1.2], [2.0, 0.7]]), leaf([0.5, 1.5])
    assert gradcheck(lambda a, b: (a * b).tanh() @ b, a, b)
    assert gradcheck(lambda a: (a.exp(), a.sum(axis=0)), a)          # several outputs
    assert gradcheck(lambda a, k: a * k, a, 3)                        # non-tensor arguments pass through


def test_a_wrong_backward_is_caught_with_input_worst_element_and_both_values() -> None:
    x = leaf([[0.1, -3.0], [0.5, 1.0]])
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: _BrokenSquare.apply(x).sum(), x)
    msg = str(info.value)
    assert "input 0" in msg and "shape (2, 2)" in msg
    assert "index (0, 1)" in msg                      # the largest error: at |x| = 3
    analytic, numeric = (float(v) for v in re.search(r"analytic (\S+), numeric (\S+?)\s", msg).groups())
    assert numeric == pytest.approx(2 * analytic, rel=1e-6)


def test_the_failing_input_is_named_among_several() -> None:
    a, b = leaf([1.0, 2.0]), leaf([0.5, -0.5])
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(2,\)\)"):
        gradcheck(lambda a, b: a * 2.0 + _BrokenSquare.apply(b), a, b)


def test_nan_gradients_never_pass() -> None:
    with pytest.raises(GradcheckError, match="analytic nan"):
        gradcheck(lambda x: _NanBackward.apply(x), leaf([1.0, 2.0]))


def test_a_function_that_modifies_its_input_in_place_is_refused() -> None:
    def sneaky(x):
        x.data += 1.0
        return x * 2.0

    with pytest.raises(GradcheckError, match="modified input 0 in place"):
        gradcheck(sneaky, leaf([1.0, 2.0]))


def test_large_inputs_are_checked_along_random_directions() -> None:
    calls = []

    def fn(x):
        calls.append(1)
        return (x * x).sum()

    x = leaf(np.linspace(-1, 1, 600))
    assert gradcheck(fn, x, max_elements=512, directions=3)
    assert len(calls) == 1 + 2 * 3                     # one backward pass, two evaluations per direction
    calls.clear()
    assert gradcheck(fn, leaf(np.linspace(-1, 1, 10)), max_elements=512)
    assert len(calls) == 1 + 2 * 10                    # small inputs: every element
    with pytest.raises(GradcheckError, match="random direction"):
        gradcheck(lambda x: _BrokenSquare.apply(x).sum(), x, max_elements=512)


def test_check_gradients_reports_without_raising() -> None:
    a, b = leaf([1.0, 2.0]), leaf([0.5, 1.5])
    report = check_gradients(lambda a, b: a * 3.0 + _BrokenSquare.apply(b), a, b)
    assert not report.passed
    good, bad = report.inputs
    assert good.passed and good.max_abs_err < 1e-8
    assert not bad.passed and bad.max_abs_err > 0.1 and bad.shape == (2,) and "index" in bad.worst


def test_inputs_are_checked_in_float64_and_silent_casts_are_refused() -> None:
    seen = []

    def fn(x):
        seen.append(x.dtype)
        return x * x

    assert gradcheck(fn, tinyllm.tensor(np.ones(3, dtype=np.float32), requires_grad=True))
    assert set(seen) == {np.dtype("float64")}
    with pytest.raises(GradcheckError, match="dtype float32"):
        gradcheck(lambda x: x.astype("float32"), leaf([1.0]))


def test_only_requested_inputs_are_checked() -> None:
    a, b = leaf([1.0]), tinyllm.tensor([2.0], dtype="float64")   # b does not require grad
    report = check_gradients(lambda a, b: a * _BrokenSquare.apply(b), a, b)
    assert report.passed and [r.index for r in report.inputs] == [0]
    with pytest.raises(GradcheckError, match="does not depend"):
        gradcheck(lambda a: tinyllm.tensor([1.0], dtype="float64"), a)
