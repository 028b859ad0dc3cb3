"""Learning-rate schedules: boundary values, nanoGPT's get_lr, monotonicity."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinyllm.optim import (SCHEDULES, Constant, LinearWarmup, WarmupCosine, WarmupLinear,
                           make_schedule)


def nanogpt_get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    """nanoGPT's train.py get_lr (linear warmup from 0), written out independently."""
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def test_boundaries():
    s = WarmupCosine(max_lr=6e-4, min_lr=6e-5, warmup=10, decay_iters=100)
    assert s(0) == 0.0 and s(5) == pytest.approx(3e-4, rel=1e-15) and s(10) == 6e-4
    assert s(55) == pytest.approx((6e-4 + 6e-5) / 2, rel=1e-12)
    assert s(100) == pytest.approx(6e-5, rel=1e-15) and s(10**6) == 6e-5
    s = WarmupLinear(max_lr=1.0, min_lr=0.1, warmup=4, decay_iters=14)
    assert [s(i) for i in (0, 2, 4, 9, 14, 99)] == pytest.approx([0.0, 0.5, 1.0, 0.55, 0.1, 0.1], rel=1e-15)
    s = LinearWarmup(max_lr=2.0, warmup=4)
    assert [s(i) for i in (0, 1, 4, 1000)] == [0.0, 0.5, 2.0, 2.0]
    assert Constant(3e-4)(0) == Constant(3e-4)(10**9) == 3e-4
    assert WarmupCosine(1.0, 0.0, 0, 10)(0) == 1.0  # no warmup: start at the peak
    assert WarmupCosine(1.0, 0.25, 5, 5)(5) == 0.25  # no decay phase: straight to the floor


@given(max_lr=st.floats(1e-6, 1.0), frac=st.floats(0.0, 1.0), warmup=st.integers(0, 50),
       decay=st.integers(1, 200), it=st.integers(0, 400))
def test_cosine_is_nanogpt_get_lr(max_lr, frac, warmup, decay, it):
    min_lr, decay_iters = max_lr * frac, warmup + decay
    expected = nanogpt_get_lr(it, max_lr, min_lr, warmup, decay_iters)
    assert WarmupCosine(max_lr, min_lr, warmup, decay_iters)(it) == pytest.approx(expected, rel=1e-12, abs=1e-18)


@given(name=st.sampled_from(SCHEDULES), max_lr=st.floats(1e-6, 1.0), frac=st.floats(0.0, 1.0),
       warmup=st.integers(0, 30), decay=st.integers(0, 100))
def test_rises_during_warmup_then_never_rises_and_stays_in_range(name, max_lr, frac, warmup, decay):
    min_lr = max_lr * frac
    s = make_schedule(name, max_lr, min_lr=min_lr, warmup=warmup, decay_iters=warmup + decay)
    lrs = [s(it) for it in range(warmup + decay + 20)]
    up, down = lrs[:warmup + 1], lrs[warmup:]
    assert all(a <= b for a, b in zip(up, up[1:])), "warmup must not decrease"
    assert all(a >= b for a, b in zip(down, down[1:])), "after warmup the lr must not increase"
    floor = max_lr if name in ("constant", "warmup") else min_lr
    assert all(0.0 <= lr <= max_lr for lr in lrs) and all(lr >= floor for lr in down)
    if name != "constant":
        assert lrs[-1] == floor and (warmup == 0 or lrs[0] == 0.0)


def test_factory_and_errors():
    assert isinstance(make_schedule("cosine", 1.0, decay_iters=10), WarmupCosine)
    assert isinstance(make_schedule("linear", 1.0, warmup=2, decay_iters=10), WarmupLinear)
    assert isinstance(make_schedule("warmup", 1.0, warmup=2), LinearWarmup)
    assert make_schedule("constant", 0.5)(7) == 0.5
    assert make_schedule("warmup", 1.0, warmup=4)(np.int64(2)) == 0.5  # NumPy integers are fine
    assert "WarmupCosine(max_lr=1.0" in repr(make_schedule("cosine", 1.0, decay_iters=10))
    with pytest.raises(ValueError, match="unknown schedule 'cos'; choose one of constant, warmup"):
        make_schedule("cos", 1.0)
    with pytest.raises(ValueError, match="needs decay_iters"):
        make_schedule("linear", 1.0, warmup=3)
    with pytest.raises(ValueError, match="min_lr .* must not exceed max_lr"):
        WarmupCosine(1.0, 2.0, 0, 10)
    with pytest.raises(ValueError, match="decay_iters .* must be >= warmup"):
        WarmupCosine(1.0, 0.0, 10, 5)
    with pytest.raises(ValueError, match="max_lr must be >= 0"):
        LinearWarmup(-1.0, 3)
    with pytest.raises(ValueError, match="warmup must be an integer >= 0"):
        LinearWarmup(1.0, 2.5)
    with pytest.raises(ValueError, match="iteration must be an integer >= 0"):
        Constant(1.0)(-1)
