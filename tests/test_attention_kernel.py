"""The CPU attention kernel (``tinyllm.kernels.cpu.attention``) against the formula in float64.

``tests/test_cpu_kernels.py`` compares the kernel with the reference class
through the autograd; here the kernel object is called directly, as
``SelfAttentionFunction`` calls it: with ``out=`` arrays that are strided
views and hold garbage (NaN) beforehand, so the kernel must write every
element of Y, dQ, dK and dV itself; with query spans of 3, 7 or 64 (T not a
multiple of the span, T = 1, more keys than queries as with a KV cache); and
with dropout over several spans, whose masks (one per span) are read back
from the kernel and put into the float64 formula.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator

import numpy as np
from hypothesis import given, settings, strategies as st
from test_cpu_kernels import attention_module, pytestmark  # noqa: F401  (skipped as those tests are)

import tinyllm

TOL = dict(rtol=1e-4, atol=1e-5)


@contextlib.contextmanager
def span(n: int) -> Iterator[None]:
    """Causal attention in query spans of ``n`` inside."""
    old, attention_module.QUERY_BLOCK = attention_module.QUERY_BLOCK, n
    try:
        yield
    finally:
        attention_module.QUERY_BLOCK = old


def formula(q, k, v, g, scale, causal, mask, drop):
    """Y, dQ, dK, dV and P in float64, with the dropout scale ``drop`` (..., Tq, Tk) or None."""
    q, k, v, g = (a.astype(np.float64) for a in (q, k, v, g))
    tq, tk = q.shape[-2], k.shape[-2]
    allowed = np.broadcast_to(np.tril(np.ones((tq, tk), bool), k=tk - tq) if causal else True, (tq, tk))
    if mask is not None:
        allowed = allowed & mask
    s = np.where(allowed, q @ k.swapaxes(-1, -2) * scale, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    sums = e.sum(-1, keepdims=True)
    p = e / np.where(sums == 0, 1, sums)
    pd = p if drop is None else p * drop
    dp = g @ v.swapaxes(-1, -2) * (1 if drop is None else drop)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True)) * scale
    return pd @ v, ds @ k, ds.swapaxes(-1, -2) @ q, pd.swapaxes(-1, -2) @ g, p


def kernel_drop(impl, shape: tuple) -> np.ndarray | None:
    """The kernel's dropout scale as one (..., Tq, Tk) array (0 where a span skipped keys)."""
    if impl.drops[0] is None:
        return None
    drop = np.zeros(shape, dtype=np.float64)
    for (a, b, kb), d in zip(impl.spans, impl.drops):
        drop[..., a:b, :kb] = d
    return drop


def garbage_heads(b: int, nh: int, t: int, hs: int) -> np.ndarray:
    """A (B, nh, T, hs) strided view of a (B, T, nh, hs) array of NaN: the merged heads of a result."""
    return np.full((b, t, nh, hs), np.nan, dtype=np.float32).transpose(0, 2, 1, 3)


@settings(deadline=None)
@given(b=st.integers(1, 2), nh=st.integers(1, 3), tq=st.integers(1, 30), extra=st.integers(0, 9),
       causal=st.booleans(), masked=st.booleans(), dropout=st.booleans(), size=st.sampled_from([3, 7, 64]),
       hs=st.sampled_from([1, 4, 9]), seed=st.integers(0, 99))
def test_kernel_matches_the_formula(b: int, nh: int, tq: int, extra: int, causal: bool, masked: bool, dropout: bool,
                                    size: int, hs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    tk = tq + extra
    q = rng.standard_normal((b, nh, tq, hs), dtype=np.float32) * 2
    kv = rng.standard_normal((b, tk, 2, nh, hs), dtype=np.float32).transpose(2, 0, 3, 1, 4)   # strided, as packed
    k, v = kv[0], kv[1]
    g = rng.standard_normal((b, nh, tq, hs), dtype=np.float32)
    mask = None
    if masked:                                                        # padded keys; batch 0 sees none
        mask = rng.random((b, 1, 1, tk)) > 0.3
        mask[0] = False
    scale = 1.0 / math.sqrt(hs)
    with span(size):
        tinyllm.manual_seed(seed)
        impl = attention_module.Attention()
        heads = garbage_heads(b, nh, tq, hs)
        y = impl.forward(q, k, v, scale, causal, mask, 0.3 if dropout else 0.0, out=heads)
        assert y is heads
        outs = tuple(garbage_heads(b, nh, n, hs) for n in (tq, tk, tk))
        grads = impl.backward(g, (True, True, True), out=outs)
        assert all(a is o for a, o in zip(grads, outs))
        want = formula(q, k, v, g, scale, causal, mask, kernel_drop(impl, (b, nh, tq, tk)))
    for name, got, ref in zip(("Y", "dQ", "dK", "dV", "P"), (y, *grads, impl.weights()), want):
        np.testing.assert_allclose(got, ref, **TOL, err_msg=name)


@settings(deadline=None)
@given(tq=st.integers(1, 20), extra=st.integers(0, 5), size=st.sampled_from([3, 64]),
       needs=st.tuples(st.booleans(), st.booleans(), st.booleans()), seed=st.integers(0, 99))
def test_backward_computes_only_what_is_asked_for(tq: int, extra: int, size: int, needs: tuple, seed: int) -> None:
    """Without ``out`` arrays, and with some gradients not wanted: the others come out the same."""
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((2, 3, n, 5), dtype=np.float32) for n in (tq, tq + extra, tq + extra))
    g = rng.standard_normal((2, 3, tq, 5), dtype=np.float32)
    with span(size):
        impl = attention_module.Attention()
        impl.forward(q, k, v, 0.4, True, None, 0.0)
        grads = impl.backward(g, needs)
    want = formula(q, k, v, g, 0.4, True, None, None)[1:4]
    for need, got, ref in zip(needs, grads, want):
        if need:
            np.testing.assert_allclose(got, ref, **TOL)
        else:
            assert got is None


@given(rows=st.integers(1, 5), width=st.integers(1, 40), scale=st.sampled_from([0.125, 1.0, -0.5]),
       offset=st.integers(0, 3), seed=st.integers(0, 99))
def test_softmax_loops_match_numpy(rows: int, width: int, scale: float, offset: int, seed: int) -> None:
    """Rows of any length (the row maximum runs eight at a time, then the rest), either sign of the
    scale; causal: row i sees keys 0 .. i + offset."""
    s = (np.random.default_rng(seed).standard_normal((rows, width)) * 30).astype(np.float32)
    x = s.astype(np.float64) * np.float32(scale)
    full = s.copy()
    attention_module.softmax_(full, np.float32(scale))
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(full, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    causal = s.copy()
    attention_module.causal_softmax_(causal, rows, offset, np.float32(scale))
    allowed = np.tril(np.ones((rows, width), bool), k=offset)
    x = np.where(allowed, x, -np.inf)
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(causal, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_softmax_loops_keep_nan_and_zero_empty_rows() -> None:
    """A NaN score stays NaN in the weights (the row's sum is NaN: the rest of the row gets 0),
    wherever it is in the row; a row of -inf gets all-zero weights."""
    s = np.random.default_rng(0).standard_normal((3, 19)).astype(np.float32)
    s[0, 13] = np.nan                                                 # in the tail past 16
    s[1, 2] = np.nan                                                  # among the first eight
    s[2] = -np.inf                                                    # a row of -inf: no key at all
    out = s.copy()
    attention_module.softmax_(out, np.float32(0.5))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(s))
    np.testing.assert_array_equal(out[~np.isnan(s)], 0.0)
    out = s[:2].copy()
    attention_module.causal_softmax_(out, 2, 18, np.float32(0.5))    # both rows see every key
    np.testing.assert_array_equal(np.isnan(out), np.isnan(s[:2]))
