"""The GPT decode step (``GPT.decode_step``: one new token on arrays, the KV cache written in place) and
the cache policy past the context: greedy tokens equal the uncached crop-and-forward loop, token for token."""
import numpy as np
import pytest

import tinyllm
from tinyllm import backend
from tinyllm.decoding import generate
from tinyllm.models import GPT, GPTConfig
from tinyllm.nn import Linear
from tinyllm.nn.attention import TRANSPOSED_ROWS, array_linear


def peaked_gpt(block_size=8, vocab=17, n_layer=2, bias=True, seed=2):
    tinyllm.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=block_size, n_layer=n_layer, n_head=2, n_embd=16,
                          dropout=0.0, bias=bias))
    for p in model.parameters():  # larger weights than GPT-2's init: peaked, varied next-token distributions
        p.data += backend.asarray(np.random.default_rng(seed).normal(0, 0.5, p.shape).astype(p.dtype))
    return model


def crop_and_forward(model, prompt, n):
    """The reference loop (nanoGPT's): crop to the last block_size tokens, run the full forward, argmax."""
    tokens = np.asarray(prompt)
    model.eval()
    with tinyllm.no_grad():
        for _ in range(n):
            logits, _ = model(tokens[:, -model.config.block_size:])
            nxt = logits.numpy()[:, -1].argmax(axis=-1)
            tokens = np.concatenate([tokens, nxt[:, None]], axis=1)
    return tokens


@pytest.mark.parametrize("batch,prompt_len,n", [(1, 3, 5), (1, 3, 21), (3, 2, 6), (3, 5, 19), (2, 8, 4),
                                                (1, 11, 6), (8, 3, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_cached_greedy_tokens_equal_the_uncached_reference(batch, prompt_len, n, bias):
    # within the context (prompt + n <= 8), reaching it exactly (8 + 4 > 8 from the start: prompt of 8),
    # far past it (the window slides for most steps), and a prompt longer than the context
    model = peaked_gpt(bias=bias, seed=2 if bias else 3)                # seeds whose greedy tokens vary
    prompt = np.random.default_rng(prompt_len).integers(0, 17, (batch, prompt_len))
    out = generate(model, prompt, n, greedy=True)
    np.testing.assert_array_equal(out, crop_and_forward(model, prompt, n))
    assert len(set(out[:, prompt_len:].ravel().tolist())) > 1       # not one token repeated


def test_decode_step_equals_the_full_forward_and_writes_the_cache_in_place():
    tinyllm.set_default_dtype("float64")
    model = peaked_gpt(block_size=10)
    model.eval()
    ids = np.random.default_rng(0).integers(0, 17, (2, 10))
    with tinyllm.no_grad():
        full = model(ids)[0].numpy()                                 # (2, 10, V)
        cache = model.new_cache(2)
        buffers = [(c.k, c.v) for c in cache.layers]
        prefill = model.next_logits(ids[:, :4], cache)               # the prefill, on arrays too
        np.testing.assert_allclose(prefill, full[:, 3], rtol=1e-10, atol=1e-12)
        for pos in range(4, 10):
            logits = model.next_logits(ids[:, pos:pos + 1], cache)   # the decode step
            np.testing.assert_allclose(logits, full[:, pos], rtol=1e-10, atol=1e-12)
    assert cache.pos == 10
    assert all(c.k is k and c.v is v for c, (k, v) in zip(cache.layers, buffers))   # no new buffers
    with tinyllm.no_grad(), pytest.raises(ValueError, match="exceeds block_size 10"):
        model.next_logits(ids[:, :1], cache)                         # a full cache: one clear error


def test_the_cache_path_refuses_to_record_gradients():
    model = peaked_gpt()
    model.eval()
    with pytest.raises(RuntimeError, match="inference"):
        model.next_logits(np.array([[1, 2]]), model.new_cache(1))


def test_decode_step_runs_any_other_layer_through_its_own_forward():
    class ScaledLinear(Linear):                                      # a layer that is not a plain Linear
        def forward(self, x):
            return super().forward(x) * 0.5

    model = peaked_gpt()
    ids = np.array([[1, 2, 3, 4, 5]])
    old = model.h[1].mlp.c_fc
    new = ScaledLinear(old.in_features, old.out_features)
    new.weight.data[...] = old.weight.data
    new.bias.data[...] = old.bias.data
    model.h[1].mlp.c_fc = new
    model.eval()
    with tinyllm.no_grad():
        full = model(ids)[0].numpy()[:, -1]
        cache = model.new_cache(1)
        model.next_logits(ids[:, :4], cache)
        step = model.next_logits(ids[:, 4:], cache)
    np.testing.assert_allclose(step, full, rtol=1e-5, atol=1e-5)


def test_generation_leaves_training_mode_and_the_graph_alone():
    model = peaked_gpt()
    model.train()
    model.h[0].eval()                                                # a mixed mode, restored as it was
    generate(model, np.array([[1, 2]]), 9, greedy=True)
    assert model.training and not model.h[0].training and model.h[1].training
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-6), ("float64", 1e-14)])
@pytest.mark.parametrize("rows", [1, 3, 8, 16, 64])
@pytest.mark.parametrize("bias", [True, False])
def test_array_linear_equals_the_layer_in_either_operand_order(dtype, tol, rows, bias):
    # 8, 16 and 64 rows take the swapped order (W x^T)^T, 1 and 3 the plain x W^T: both are the layer's product
    assert {8, 16, 64} <= TRANSPOSED_ROWS and not {1, 3} & TRANSPOSED_ROWS
    tinyllm.set_default_dtype(dtype)
    tinyllm.manual_seed(rows)
    layer = Linear(48, 80, bias=bias)
    if bias:
        layer.bias.data[...] = np.random.default_rng(1).normal(size=80)
    shape = (rows, 1, 48) if rows < 8 else (8, rows // 8, 48)                  # one token, or a prefill
    x = np.random.default_rng(rows).normal(size=shape).astype(dtype)
    with tinyllm.no_grad():
        want = layer(tinyllm.Tensor(x)).numpy()
    got = array_linear(layer, x)
    assert got.shape == want.shape == (*x.shape[:2], 80) and got.dtype == x.dtype
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
