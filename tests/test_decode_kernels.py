"""The compiled kernels of a decode step against their references: the attention of one new token
over its KV cache (``kernels/cpu/decode_attention.py`` against
:class:`tinyllm.nn.attention.DecodeAttentionReference`, itself checked against the formula written
out head by head) and the Linear products of 8..64 rows (``kernels/cpu/decode_linear.py`` against
:class:`tinyllm.nn.attention.ArrayLinearReference`). Kernel tests skip where Numba is not installed."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyllm
from tinyllm import kernels
from tinyllm.kernels import cpu as cpu_kernels
from tinyllm.models import GPT, GPTConfig
from tinyllm.models.gpt import AddLayerNormReference
from tinyllm.nn.attention import ArrayLinearReference, DecodeAttentionReference

needs_numba = pytest.mark.skipif(not cpu_kernels.enabled(), reason="needs Numba (the CPU kernels are off)")
TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-14)}


def cache_arrays(batch, heads, length, head_size, dtype, seed, spread=1.0):
    """A query (B, nh, hs) and cache buffers (B, nh, L, hs), the buffers' unused tail filled with NaN
    (attending over the first n positions must never read past them)."""
    rng = np.random.default_rng(seed)
    q = (spread * rng.normal(size=(batch, heads, head_size))).astype(dtype)
    k = rng.normal(size=(batch, heads, length + 2, head_size)).astype(dtype)
    v = rng.normal(size=(batch, heads, length + 2, head_size)).astype(dtype)
    k[:, :, length:] = v[:, :, length:] = np.nan
    return q, k, v


def per_head(q, k, v, n, scale):
    """The formula, one (sequence, head) at a time in float64: softmax(scale q K^T) V over n positions."""
    y = np.empty(q.shape)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            s = scale * (k[b, h, :n].astype(np.float64) @ q[b, h].astype(np.float64))
            p = np.exp(s - s.max())
            y[b, h] = (p / p.sum()) @ v[b, h, :n].astype(np.float64)
    return y


def cpu_kernels_module(name="decode_attention"):
    """A kernel's module, imported only where Numba is (it compiles at import)."""
    return importlib.import_module(f"tinyllm.kernels.cpu.{name}")


@st.composite
def decode_cases(draw):
    """(q, k, v, n, scale): batch 1..9, heads 1..4, cache length 1..12, head size 1..40, n from 1 to
    the whole cache, float32 or float64, scores from flat to peaked."""
    batch, heads, length, head_size = (draw(st.integers(1, m)) for m in (9, 4, 12, 40))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    spread = draw(st.sampled_from([0.1, 1.0, 8.0]))
    q, k, v = cache_arrays(batch, heads, length, head_size, dtype, draw(st.integers(0, 2 ** 16)), spread)
    return q, k, v, draw(st.integers(1, length)), 1 / np.sqrt(head_size)


@given(case=decode_cases())
def test_reference_is_the_formula_head_by_head(case):
    y = DecodeAttentionReference().forward(*case)
    assert y.shape == case[0].shape and y.dtype == case[0].dtype
    np.testing.assert_allclose(y, per_head(*case), **TOL[y.dtype.name])


@needs_numba
@given(case=decode_cases())
def test_kernel_equals_the_reference(case):
    want = DecodeAttentionReference().forward(*case)
    got = cpu_kernels_module().DecodeAttention().forward(*case)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, **TOL[want.dtype.name])


@needs_numba
def test_kernel_on_every_core_equals_the_reference():
    # enough work (2 B nh n hs elements x 0.5 ns > 0.4 ms) that run_kernel shares the rows between cores
    q, k, v = cache_arrays(4, 6, 1000, 64, "float32", seed=5)
    mod = cpu_kernels_module()
    assert 2 * 4 * 6 * 1000 * 64 * mod.NS_PER_ELEMENT >= cpu_kernels.threads.KERNEL_MIN_NS
    np.testing.assert_allclose(mod.DecodeAttention().forward(q, k, v, 1000, 0.125),
                               DecodeAttentionReference().forward(q, k, v, 1000, 0.125), **TOL["float32"])


@needs_numba
def test_kernel_extremes_one_position_equal_scores_and_underflow():
    mod = cpu_kernels_module()
    q, k, v = cache_arrays(2, 3, 5, 4, "float32", seed=1)
    one = mod.DecodeAttention().forward(q, k, v, 1, 0.5)                 # one position: its value, exactly
    np.testing.assert_array_equal(one, v[:, :, 0])
    flat = mod.DecodeAttention().forward(np.zeros_like(q), k, v, 5, 0.5)  # equal scores: the mean value
    np.testing.assert_allclose(flat, v[:, :, :5].mean(axis=2), rtol=1e-6, atol=1e-6)
    k[:, :, 2] = 100 * q                                                  # one key dominates: e^(-big) -> 0
    peaked = mod.DecodeAttention().forward(q, k, v, 5, 1.0)
    np.testing.assert_allclose(peaked, v[:, :, 2], rtol=1e-6, atol=1e-6)


@needs_numba
def test_selection_and_bad_calls():
    mod = cpu_kernels_module()
    q, k, v = cache_arrays(2, 3, 5, 4, "float32", seed=2)
    assert type(kernels.select("decode_attention", q, k, v, reference=DecodeAttentionReference)) is mod.DecodeAttention
    q64, k64, v64 = (a.astype(np.float64) for a in (q, k, v))
    assert type(kernels.select("decode_attention", q64, k64, v64,
                               reference=DecodeAttentionReference)) is DecodeAttentionReference   # float64: reference
    assert not mod.DecodeAttention.accepts(q, k[:, :, ::2], v[:, :, ::2])   # a strided cache
    assert not mod.DecodeAttention.accepts(q, k, v[:, :, :3])               # keys and values disagree
    assert not mod.DecodeAttention.accepts(q[:, :2], k, v)                  # heads disagree
    for n in (0, 8):
        with pytest.raises(ValueError, match="cached positions"):
            mod.DecodeAttention().forward(q, k, v, n, 0.5)


def test_decode_step_with_the_kernel_equals_the_full_forward():
    # batch 8 (the products' swapped operand order too), in float32 through the chosen kernels
    tinyllm.manual_seed(4)
    model = GPT(GPTConfig(vocab_size=23, block_size=12, n_layer=2, n_head=2, n_embd=16, dropout=0.0))
    model.eval()
    ids = np.random.default_rng(3).integers(0, 23, (8, 12))
    with tinyllm.no_grad():
        full = model(ids)[0].numpy()
        cache = model.new_cache(8)
        model.next_logits(ids[:, :5], cache)
        for pos in range(5, 12):
            np.testing.assert_allclose(model.next_logits(ids[:, pos:pos + 1], cache), full[:, pos],
                                       rtol=1e-4, atol=1e-5)
    chosen = {type(impl).__name__ for key, impl in cache.scratch.items() if key[0] in ("decode_attention", "linear")
              and key[1][0] == 8}                                     # the 8-row steps' choices
    assert chosen == ({"DecodeAttention", "DecodeLinear"} if cpu_kernels.enabled()
                      else {"DecodeAttentionReference", "ArrayLinearReference"})


@needs_numba
@given(rows=st.sampled_from([8, 16, 24, 64]), k_in=st.integers(1, 40), out=st.integers(1, 41),
       bias=st.booleans(), dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2 ** 16))
def test_linear_kernel_equals_the_reference(rows, k_in, out, bias, dtype, seed):
    # rows in blocks of 8, any widths (an odd number of outputs has one of its own), with and without bias
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=(rows, k_in)).astype(dtype), rng.normal(size=(out, k_in)).astype(dtype)
    b = rng.normal(size=out).astype(dtype) if bias else None
    mod = cpu_kernels_module("decode_linear")
    assert mod.DecodeLinear.accepts(x, w, b)
    got = mod.DecodeLinear().forward(x, w, b)
    want = ArrayLinearReference().forward(x, w, b)
    assert got.shape == (rows, out) and got.dtype == x.dtype
    np.testing.assert_allclose(got, want, **TOL[dtype])
    np.testing.assert_allclose(mod.DecodeLinear().forward(np.asfortranarray(x), w, b), want, **TOL[dtype])


@needs_numba
def test_linear_kernel_takes_only_what_it_is_for():
    mod = cpu_kernels_module("decode_linear")
    x, w = np.ones((8, 16), np.float32), np.ones((24, 16), np.float32)
    assert mod.DecodeLinear.accepts(x, w, None)
    assert type(kernels.select("decode_linear", x, w, None, reference=ArrayLinearReference)) is mod.DecodeLinear
    assert not any(mod.DecodeLinear.accepts(np.ones((n, 16), np.float32), w) for n in (1, 4, 12, 72))   # not 8k rows
    assert not mod.DecodeLinear.accepts(x, np.ones((16, 24), np.float32).T)                 # a transposed weight
    assert not mod.DecodeLinear.accepts(x, np.ones((24, 8), np.float32))                    # widths disagree
    assert not mod.DecodeLinear.accepts(np.ones((64, 1024), np.float32), np.ones((128, 1024), np.float32))  # BLAS's
    assert type(kernels.select("decode_linear", x.astype(np.float64), w.astype(np.float64), None,
                               reference=ArrayLinearReference)) is ArrayLinearReference    # float64: the reference


@needs_numba
@given(shape=st.sampled_from([(8, 1, 128), (3, 5, 7), (1, 1), (2, 33)]), affine=st.sampled_from(["wb", "w", "none"]),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2 ** 16))
def test_add_layer_norm_kernel_equals_the_reference(shape, affine, dtype, seed):
    # x += r in place, then LN(x): the same sums and the same output, with and without weight and bias
    rng = np.random.default_rng(seed)
    x, r = (rng.normal(size=shape).astype(dtype) for _ in range(2))
    c = shape[-1]
    w = rng.normal(size=c).astype(dtype) if affine != "none" else None
    b = rng.normal(size=c).astype(dtype) if affine == "wb" else None
    mod = cpu_kernels_module("decode_norm")
    assert mod.AddLayerNorm.accepts(x, r, w, b)
    x_ref, x_kernel = x.copy(), x.copy()
    want = AddLayerNormReference().forward(x_ref, r, w, b, 1e-5)
    got = mod.AddLayerNorm().forward(x_kernel, r, w, b, 1e-5)
    np.testing.assert_array_equal(x_kernel, x + r)                            # the residual stream, in place
    np.testing.assert_array_equal(x_ref, x + r)
    assert got.shape == shape and got.dtype == x.dtype
    np.testing.assert_allclose(got, want, **(TOL[dtype] if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)))


@needs_numba
def test_add_layer_norm_kernel_takes_only_what_it_is_for():
    mod = cpu_kernels_module("decode_norm")
    x = np.ones((4, 6), np.float32)
    assert type(kernels.select("add_layer_norm", x, x, None, None, reference=AddLayerNormReference)) is mod.AddLayerNorm
    assert not mod.AddLayerNorm.accepts(x, x[:, :3])                        # shapes disagree
    assert not mod.AddLayerNorm.accepts(np.ones((6, 4), np.float32).T, x)  # x not C-contiguous (updated in place)
    assert not mod.AddLayerNorm.accepts(x, x, np.ones(5, np.float32))       # a weight of another width
