"""Multi-head attention and the Transformer block: gradients of every weight in
float64, a NumPy reference, and what the masks and the KV cache mean."""
import contextlib
import importlib
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm import backend
from gradcases import grad_case, surface_case
from tinyllm import nn
from tinyllm.nn import KVCache, functional_call

# the module itself: the attribute tinyllm.functional.attention is the function of that name
attention_module = importlib.import_module("tinyllm.kernels.cpu.attention")


# A block has ~250 weights at these sizes and a gradient check runs two forward passes per weight.
HALF = settings(max_examples=max(8, settings().max_examples // 2))


def gradcheck_module(module, x, *args, **kwargs):
    names, params = zip(*module.named_parameters())
    tinyllm.gradcheck(lambda x, *ws: functional_call(module, dict(zip(names, ws)), x, *args, **kwargs),
                      x, *params)


@st.composite
def attention_sizes(draw):
    """(B, T, n_head, n_embd) kept tiny: heads 1..2, head size 1..2, T 1..4."""
    n_head = draw(st.integers(1, 2))
    return draw(st.integers(1, 2)), draw(st.integers(1, 4)), n_head, n_head * draw(st.integers(1, 2))


@contextlib.contextmanager
def query_block(size):
    """Run causal self-attention in query blocks of ``size`` (tiny, so short test sequences use several)."""
    old, attention_module.QUERY_BLOCK = attention_module.QUERY_BLOCK, size
    try:
        yield
    finally:
        attention_module.QUERY_BLOCK = old


def padding_masks(b, t, rng):
    """(B, T) True for real tokens: each row keeps a random-length prefix (at least one token)."""
    lengths = rng.integers(1, t + 1, size=b)
    return np.arange(t)[None, :] < lengths[:, None]


def np_attention(x, w_qkv, b_qkv, w_o, b_o, n_head, causal, pad):
    """Multi-head self-attention written out with NumPy, one head at a time."""
    b, t, c = x.shape
    hs = c // n_head
    q, k, v = np.split(x @ w_qkv.T + b_qkv, 3, axis=-1)
    allowed = np.ones((b, t, t), dtype=bool)
    if causal:
        allowed &= np.tril(np.ones((t, t), dtype=bool))
    if pad is not None:
        allowed &= pad[:, None, :]
    heads, weights = [], []
    for h in range(n_head):
        sl = slice(h * hs, (h + 1) * hs)
        s = q[..., sl] @ k[..., sl].transpose(0, 2, 1) / math.sqrt(hs)
        s = np.where(allowed, s, -np.inf)
        m = s.max(-1, keepdims=True)
        e = np.exp(s - np.where(np.isfinite(m), m, 0))
        p = e / np.maximum(e.sum(-1, keepdims=True), 1e-300)
        heads.append(p @ v[..., sl])
        weights.append(p)
    return np.concatenate(heads, -1) @ w_o.T + b_o, np.stack(weights, 1)


# ----------------------------------------------------------------------------- gradients

@grad_case("SelfAttentionFunction")
@given(sizes=attention_sizes(), causal=st.booleans(), padded=st.booleans(), block=st.sampled_from([1, 2, 64]),
       seed=st.integers(0, 2**16))
def test_multi_head_attention_gradients(sizes, causal, padded, block, seed):
    b, t, n_head, c = sizes
    tinyllm.set_default_dtype("float64")
    tinyllm.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mha = nn.MultiHeadAttention(c, n_head, causal=causal)
    x = tinyllm.tensor(rng.standard_normal((b, t, c)), requires_grad=True)
    pad = padding_masks(b, t, rng) if padded else None
    with query_block(block):
        gradcheck_module(mha, x, padding_mask=pad)


@grad_case("SelfAttentionFunction")
@surface_case("F.self_attention")
def test_self_attention_function_gradient_with_a_full_mask_and_an_empty_row():
    """The packed (B, T, 3C) input alone, with a (B, nh, T, T) mask that leaves query 0 of batch 0 nothing."""
    tinyllm.set_default_dtype("float64")
    rng = np.random.default_rng(1)
    qkv = tinyllm.tensor(rng.standard_normal((2, 3, 12)), requires_grad=True)
    mask = rng.uniform(size=(2, 2, 3, 3)) > 0.3
    mask[0, :, 0, :] = False
    out = nn.self_attention(qkv, 2, mask=mask)
    np.testing.assert_array_equal(out.numpy()[0, 0], 0)                # no key allowed: zero output
    tinyllm.gradcheck(lambda z: nn.self_attention(z, 2, causal=True, mask=mask), qkv)
    with query_block(2):
        tinyllm.gradcheck(lambda z: nn.self_attention(z, 2, causal=True, mask=mask), qkv)


@pytest.mark.parametrize("block", [1, 2, 3, 5])
@pytest.mark.parametrize("mask_shape", [None, (2, 1, 1, 5), (5, 5), (2, 2, 5, 5)])
def test_causal_query_blocks_give_the_same_values_and_gradients(block, mask_shape):
    """Skipping the masked upper-right blocks changes nothing but the work done."""
    tinyllm.set_default_dtype("float64")
    rng = np.random.default_rng(2)
    qkv_np, g = rng.standard_normal((2, 5, 12)), rng.standard_normal((2, 5, 4))
    mask = None if mask_shape is None else rng.uniform(size=mask_shape) > 0.3
    results = []
    for size in (block, 1000):                                         # blocked, then all at once
        qkv = tinyllm.tensor(qkv_np, requires_grad=True)
        with query_block(size):
            y = nn.self_attention(qkv, 2, causal=True, mask=mask)
        y.backward(g)
        results.append((y.numpy(), qkv.grad))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-14)


@HALF
@given(sizes=attention_sizes(), norm_first=st.booleans(), causal=st.booleans(),
       activation=st.sampled_from(["gelu", "relu"]), seed=st.integers(0, 2**16))
def test_transformer_block_gradients(sizes, norm_first, causal, activation, seed):
    b, t, n_head, c = sizes
    tinyllm.set_default_dtype("float64")
    tinyllm.manual_seed(seed)
    rng = np.random.default_rng(seed)
    block = nn.TransformerBlock(c, n_head, causal=causal, norm_first=norm_first, activation=activation)
    for p in (block.ln_1.weight, block.ln_1.bias, block.ln_2.weight, block.ln_2.bias):
        p.data[...] = backend.asarray(rng.uniform(0.5, 1.5, p.shape))                 # not the 1 / 0 start
    x = tinyllm.tensor(rng.standard_normal((b, t, c)), requires_grad=True)
    pad = padding_masks(b, t, rng)
    if activation == "relu":  # finite differences need the MLP's pre-activations away from relu's kink
        with tinyllm.no_grad():
            if norm_first:
                mlp_in = block.ln_2(x + block.attn(block.ln_1(x), pad))
            else:
                mlp_in = block.ln_1(x + block.attn(x, pad))
            assume(np.abs(block.mlp.c_fc(mlp_in).numpy()).min() > 1e-4)
    with query_block(2):
        gradcheck_module(block, x, padding_mask=pad)


# ----------------------------------------------------------------------------- forward meaning

@given(sizes=attention_sizes(), causal=st.booleans(), padded=st.booleans(), seed=st.integers(0, 2**16))
def test_multi_head_attention_matches_a_per_head_numpy_reference(sizes, causal, padded, seed):
    b, t, n_head, c = sizes
    tinyllm.set_default_dtype("float64")
    tinyllm.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mha = nn.MultiHeadAttention(c, n_head, causal=causal)
    x = rng.standard_normal((b, t, c))
    pad = padding_masks(b, t, rng) if padded else None
    y, w = mha(tinyllm.tensor(x), padding_mask=pad, return_weights=True)
    y_ref, w_ref = np_attention(x, mha.c_attn.weight.numpy(), mha.c_attn.bias.numpy(), mha.c_proj.weight.numpy(),
                                mha.c_proj.bias.numpy(), n_head, causal, pad)
    np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.numpy(), w_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("block", [2, 64])
def test_causal_output_at_t_ignores_every_later_token(block):
    tinyllm.set_default_dtype("float64")
    rng = np.random.default_rng(0)
    layer = nn.TransformerBlock(8, 2, causal=True)
    x = rng.standard_normal((2, 6, 8))
    with query_block(block):
        y = layer(tinyllm.tensor(x)).numpy()
        for t in range(6):
            x2 = x.copy()
            x2[:, t + 1:] = rng.standard_normal(x2[:, t + 1:].shape) * 10   # change the future
            y2 = layer(tinyllm.tensor(x2)).numpy()
            np.testing.assert_allclose(y2[:, :t + 1], y[:, :t + 1], rtol=1e-12, atol=1e-12)
            if t < 5:
                assert not np.allclose(y2[:, t + 1:], y[:, t + 1:])    # ... which the future does see
    bidirectional = nn.TransformerBlock(8, 2, causal=False)
    x2 = x.copy()
    x2[:, -1] += rng.standard_normal(x2[:, -1].shape)                   # (not a constant: LN would remove it)
    first = [bidirectional(tinyllm.tensor(a)).numpy()[:, 0] for a in (x, x2)]
    assert not np.allclose(*first)                                     # without the mask, position 0 sees it


@pytest.mark.parametrize("causal", [False, True])
def test_padded_keys_get_exactly_zero_weight_and_do_not_matter(causal):
    rng = np.random.default_rng(0)
    mha = nn.MultiHeadAttention(8, 2, causal=causal)
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    pad = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=bool)
    y, w = mha(tinyllm.tensor(x), padding_mask=pad, return_weights=True)
    w = w.numpy()
    assert w.shape == (3, 2, 5, 5)
    assert np.all(w[~np.broadcast_to(pad[:, None, None, :], w.shape)] == 0.0)   # exactly zero
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    x2 = x.copy()
    x2[~pad] = rng.standard_normal(x2[~pad].shape) * 100                        # change the padding
    y2 = mha(tinyllm.tensor(x2), padding_mask=pad).numpy()
    np.testing.assert_allclose(y2[pad], y.numpy()[pad], rtol=1e-5, atol=1e-5)   # real tokens unchanged


def test_attention_dropout_is_off_in_eval_and_random_in_train():
    tinyllm.manual_seed(0)
    mha = nn.MultiHeadAttention(8, 2, dropout=0.5)
    x = tinyllm.tensor(np.random.default_rng(0).standard_normal((2, 4, 8)).astype(np.float32))
    mha.eval()
    a, b = mha(x).numpy(), mha(x).numpy()
    np.testing.assert_array_equal(a, b)
    mha.train()
    assert not np.allclose(mha(x).numpy(), a)


# ----------------------------------------------------------------------------- KV cache

def _stack(norm_first, c=8, n_head=2, layers=2):
    return [nn.TransformerBlock(c, n_head, causal=True, norm_first=norm_first) for _ in range(layers)]


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("prefill", [1, 3])
def test_kv_cache_decoding_equals_full_recomputation(norm_first, prefill):
    tinyllm.set_default_dtype("float64")
    blocks = _stack(norm_first)
    rng = np.random.default_rng(0)
    b, t, c = 2, 6, 8
    x = rng.standard_normal((b, t, c))
    full = tinyllm.tensor(x)
    with query_block(4):                                               # the full pass in two query blocks
        for blk in blocks:
            full = blk(full)
    full = full.numpy()
    caches = [KVCache(b, 2, t, c // 2, np.float64) for _ in blocks]
    with tinyllm.no_grad():
        h = tinyllm.tensor(x[:, :prefill])                              # prefill the prompt at once
        for blk, cache in zip(blocks, caches):
            h = blk(h, cache=cache)
        np.testing.assert_allclose(h.numpy(), full[:, :prefill], rtol=1e-10, atol=1e-12)
        for pos in range(prefill, t):                                   # then one token at a time
            h = tinyllm.tensor(x[:, pos:pos + 1])
            for blk, cache in zip(blocks, caches):
                h = blk(h, cache=cache)
            np.testing.assert_allclose(h.numpy()[:, 0], full[:, pos], rtol=1e-10, atol=1e-12)
    assert all(cache.pos == t for cache in caches)


def test_kv_cache_with_padding_mask_and_its_limits():
    tinyllm.set_default_dtype("float64")
    mha = nn.MultiHeadAttention(4, 2, causal=True)
    x = np.random.default_rng(1).standard_normal((2, 4, 4))
    pad = np.array([[0, 1, 1, 1], [1, 1, 1, 1]], dtype=bool)            # left padding in row 0
    full = mha(tinyllm.tensor(x), padding_mask=pad).numpy()
    cache = KVCache(2, 2, 4, 2, np.float64)
    with tinyllm.no_grad():
        first = mha(tinyllm.tensor(x[:, :3]), padding_mask=pad[:, :3], cache=cache).numpy()
        last = mha(tinyllm.tensor(x[:, 3:]), padding_mask=pad, cache=cache).numpy()
        np.testing.assert_allclose(first[1:], full[1:, :3], rtol=1e-10)
        np.testing.assert_allclose(first[0, 1:], full[0, 1:3], rtol=1e-10)   # query 0 of row 0 sees nothing
        np.testing.assert_allclose(last[:, 0], full[:, 3], rtol=1e-10)
        with pytest.raises(ValueError, match="KV cache holds 4 positions"):
            mha(tinyllm.tensor(x[:, :1]), cache=cache)
    cache.reset()
    with pytest.raises(RuntimeError, match="no_grad"):
        mha(tinyllm.tensor(x[:, :1], requires_grad=True), cache=cache)


def test_attention_argument_checks_and_repr():
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiHeadAttention(6, 4)
    with pytest.raises(ValueError, match="qkv width"):
        nn.self_attention(tinyllm.tensor(np.zeros((1, 2, 7), dtype=np.float32)), 2)
    assert "n_head=2" in repr(nn.MultiHeadAttention(4, 2))
    assert "post-LN" in repr(nn.TransformerBlock(4, 2, norm_first=False))


# ----------------------------------------------------------------------------- cross-attention

@st.composite
def cross_sizes(draw):
    """(B, Tq, Tk, n_head, n_embd): Tq and Tk drawn apart, heads 1..3, head size 1..2."""
    n_head = draw(st.integers(1, 3))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 5)), n_head,
            n_head * draw(st.integers(1, 2)))


def gradcheck_cross(make, sizes, seed, **kwargs):
    """Finite differences for the queries, the memory and every weight of ``module(x, memory=...)``,
    with ``module = make(n_embd, n_head, rng)`` and float64 inputs drawn from ``seed``."""
    b, tq, tk, n_head, c = sizes
    tinyllm.set_default_dtype("float64")
    rng = np.random.default_rng(seed)
    tinyllm.manual_seed(seed)
    module = make(c, n_head, rng)
    x = tinyllm.tensor(rng.standard_normal((b, tq, c)), requires_grad=True)
    memory = tinyllm.tensor(rng.standard_normal((b, tk, c)), requires_grad=True)
    kwargs = {k: v(b, tk, rng) if callable(v) else v for k, v in kwargs.items()}
    names, params = zip(*module.named_parameters())
    tinyllm.gradcheck(lambda x, m, *ws: functional_call(module, dict(zip(names, ws)), x, memory=m, **kwargs),
                      x, memory, *params)


@grad_case("Attention")
@HALF
@given(sizes=cross_sizes(), padded=st.booleans(), seed=st.integers(0, 2**16))
def test_cross_attention_gradients(sizes, padded, seed):
    gradcheck_cross(lambda c, n_head, rng: nn.CrossAttention(c, n_head), sizes, seed,
                    memory_mask=padding_masks if padded else None)


@grad_case("Attention", "SelfAttentionFunction")
@HALF
@given(sizes=cross_sizes(), norm_first=st.booleans(), seed=st.integers(0, 2**16))
def test_transformer_block_with_cross_attention_gradients(sizes, norm_first, seed):
    def make(c, n_head, rng):
        block = nn.TransformerBlock(c, n_head, causal=True, norm_first=norm_first, cross_attention=True)
        for p in (block.ln_1.weight, block.ln_cross_attn.weight, block.ln_2.weight):
            p.data[...] = backend.asarray(rng.uniform(0.5, 1.5, p.shape))             # not the 1 start
        return block

    gradcheck_cross(make, sizes, seed, memory_mask=padding_masks)


@pytest.mark.parametrize("b, tq, tk, n_head, c", [(2, 3, 5, 3, 6), (1, 7, 2, 3, 9), (3, 1, 4, 1, 4)])
def test_cross_attention_matches_torch_multihead_attention(b, tq, tk, n_head, c):
    torch = pytest.importorskip("torch")
    tinyllm.set_default_dtype("float64")
    rng = np.random.default_rng(tq * 10 + tk)
    ca = nn.CrossAttention(c, n_head)
    for p in ca.parameters():
        p.data[...] = backend.asarray(rng.normal(0, 0.5, p.shape))
    ref = torch.nn.MultiheadAttention(c, n_head, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.tensor(np.concatenate([ca.q_proj.weight.numpy(), ca.kv_proj.weight.numpy()])))
        ref.in_proj_bias.copy_(torch.tensor(np.concatenate([ca.q_proj.bias.numpy(), ca.kv_proj.bias.numpy()])))
        ref.out_proj.weight.copy_(torch.tensor(ca.c_proj.weight.numpy()))
        ref.out_proj.bias.copy_(torch.tensor(ca.c_proj.bias.numpy()))
    xn, mn = rng.standard_normal((b, tq, c)), rng.standard_normal((b, tk, c))
    pad = padding_masks(b, tk, rng)
    x, m = tinyllm.tensor(xn, requires_grad=True), tinyllm.tensor(mn, requires_grad=True)
    tx, tm = torch.tensor(xn, requires_grad=True), torch.tensor(mn, requires_grad=True)
    ours, weights = ca(x, m, memory_mask=pad, return_weights=True)
    theirs, tw = ref(tx, tm, tm, key_padding_mask=torch.tensor(~pad), average_attn_weights=False)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weights.numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(ours.shape)
    ours.backward(g)
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m.grad, tm.grad.numpy(), rtol=1e-8, atol=1e-10)
    in_grad = np.concatenate([ca.q_proj.weight.grad, ca.kv_proj.weight.grad])
    np.testing.assert_allclose(in_grad, ref.in_proj_weight.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ca.c_proj.weight.grad, ref.out_proj.weight.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_padded_memory_positions_get_zero_weight_and_do_not_matter():
    tinyllm.set_default_dtype("float64")
    ca = nn.CrossAttention(4, 2)
    rng = np.random.default_rng(5)
    x, m = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    pad = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    y, w = ca(tinyllm.tensor(x), tinyllm.tensor(m), memory_mask=pad, return_weights=True)
    assert (w.numpy()[0, :, :, 2:] == 0).all()
    m2 = m.copy()
    m2[0, 2:] = 100.0                                                   # change only the padding
    np.testing.assert_allclose(ca(tinyllm.tensor(x), tinyllm.tensor(m2), memory_mask=pad).numpy(), y.numpy(),
                               rtol=1e-12)


@pytest.mark.parametrize("norm_first", [True, False])
def test_cross_attention_decoding_with_both_caches_equals_full_recomputation(norm_first):
    tinyllm.set_default_dtype("float64")
    blocks = [nn.TransformerBlock(6, 3, causal=True, norm_first=norm_first, cross_attention=True) for _ in range(2)]
    rng = np.random.default_rng(2)
    b, t, tk = 2, 5, 4
    x, memory = rng.standard_normal((b, t, 6)), tinyllm.tensor(rng.standard_normal((b, tk, 6)))
    pad = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
    full = tinyllm.tensor(x)
    for blk in blocks:
        full = blk(full, memory=memory, memory_mask=pad)
    caches = nn.KVCacheStack(KVCache(b, 3, t, 2, np.float64) for _ in blocks)
    memory_caches = [nn.MemoryKV() for _ in blocks]
    with tinyllm.no_grad():
        for pos in range(t):
            h = tinyllm.tensor(x[:, pos:pos + 1])
            for i, blk in enumerate(blocks):                             # the memory only on the first step
                h = blk(h, cache=caches[i], memory=memory if pos == 0 else None, memory_mask=pad,
                        memory_cache=memory_caches[i])
            np.testing.assert_allclose(h.numpy()[:, 0], full.numpy()[:, pos], rtol=1e-10, atol=1e-12)
    assert caches.pos == t and all(mc.filled for mc in memory_caches)
    caches.reset()
    assert caches.pos == 0


def test_cross_attention_argument_checks_and_repr():
    tinyllm.set_default_dtype("float64")
    x, m = tinyllm.tensor(np.zeros((2, 3, 4))), tinyllm.tensor(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="divisible"):
        nn.CrossAttention(6, 4)
    ca = nn.CrossAttention(4, 2)
    with pytest.raises(ValueError, match="needs a memory"):
        ca(x)
    with pytest.raises(ValueError, match=r"memory must have shape \(B, Tk, 4\)"):
        ca(x, tinyllm.tensor(np.zeros((2, 5, 3))))
    with pytest.raises(ValueError, match="batch size 1"):
        ca(x, tinyllm.tensor(np.zeros((1, 5, 4))))
    with pytest.raises(ValueError, match=r"memory_mask must have shape \(2, 5\)"):
        ca(x, m, memory_mask=np.ones((2, 4), dtype=bool))
    with pytest.raises(RuntimeError, match="no_grad"):
        ca(tinyllm.tensor(np.zeros((2, 3, 4)), requires_grad=True), m, cache=nn.MemoryKV())
    with pytest.raises(ValueError, match="no cross-attention"):
        nn.TransformerBlock(4, 2)(x, memory=m)
    with pytest.raises(ValueError, match="needs a memory"):
        nn.TransformerBlock(4, 2, cross_attention=True)(x)
    assert "post-LN, cross-attention" in repr(nn.TransformerBlock(4, 2, norm_first=False, cross_attention=True))
