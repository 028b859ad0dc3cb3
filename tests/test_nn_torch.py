"""Layers and losses against PyTorch: the same weights and inputs in float64
give the same outputs and the same gradients (inputs and every parameter)."""
import math

import numpy as np
import pytest

import tinyllm
from tinyllm import backend
from tinyllm import nn

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL, ATOL = 1e-9, 1e-11


@pytest.fixture(autouse=True)
def _float64():
    tinyllm.set_default_dtype("float64")


def T(a, grad=True):
    """A float64 torch leaf holding a copy of ``a``."""
    return torch.tensor(np.array(a, dtype=np.float64), requires_grad=grad)


def torch_params(module):
    """name -> torch leaf copy of every parameter of a tinyllm module."""
    return {n: T(p.numpy()) for n, p in module.named_parameters()}


def compare(ours, theirs, x=None, tx=None, module=None, params=None, seed=0):
    """Outputs equal; then backward the same random cotangent through both and compare every gradient."""
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = np.random.default_rng(seed).standard_normal(ours.shape)
    ours.backward(g) if ours.ndim else ours.backward()
    theirs.backward(torch.tensor(g)) if theirs.ndim else theirs.backward()
    if x is not None:
        np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    if module is not None:
        for name, p in module.named_parameters():
            np.testing.assert_allclose(p.grad, params[name].grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)


def inputs(*shape, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape)
    return tinyllm.tensor(a, requires_grad=True), T(a)


# ----------------------------------------------------------------------------- layers

@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    layer = nn.Linear(5, 3, bias=bias)
    tp = torch_params(layer)
    x, tx = inputs(2, 4, 5)
    compare(layer(x), F.linear(tx, tp["weight"], tp.get("bias")), x, tx, layer, tp)


def test_embedding_with_padding_idx():
    emb = nn.Embedding(7, 3, padding_idx=2)
    tp = torch_params(emb)
    idx = np.array([[0, 2, 6, 6], [2, 1, 0, 3]])
    compare(emb(idx), F.embedding(torch.tensor(idx), tp["weight"], padding_idx=2), module=emb, params=tp)


@pytest.mark.parametrize("affine", ["none", "weight", "weight+bias"])
def test_layer_norm(affine):
    ln = nn.LayerNorm(6, eps=1e-5, elementwise_affine=affine != "none", bias=affine == "weight+bias")
    for p in ln.parameters():
        p.data[...] = backend.asarray(np.random.default_rng(1).standard_normal(p.shape))
    tp = torch_params(ln)
    x, tx = inputs(2, 3, 6)
    compare(ln(x), F.layer_norm(tx, (6,), tp.get("weight"), tp.get("bias"), eps=1e-5), x, tx, ln, tp)


def test_gelu_tanh_and_relu():
    x, tx = inputs(3, 7)
    compare(nn.GELU(approximate="tanh")(x), F.gelu(tx, approximate="tanh"), x, tx)
    compare(nn.GELU()(x), F.gelu(tx), x, tx)                   # PyTorch's default: the exact form
    x, tx = inputs(3, 7, seed=1)
    compare(nn.ReLU()(x), F.relu(tx), x, tx)


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_mlp(activation):
    mlp = nn.MLP(4, 10, activation=activation)
    tp = torch_params(mlp)
    x, tx = inputs(2, 3, 4)
    act = (lambda h: F.gelu(h, approximate="tanh")) if activation == "gelu" else F.relu
    ref = F.linear(act(F.linear(tx, tp["c_fc.weight"], tp["c_fc.bias"])), tp["c_proj.weight"], tp["c_proj.bias"])
    compare(mlp(x), ref, x, tx, mlp, tp)


# ----------------------------------------------------------------------------- attention and the block

def torch_attention(tx, tp, prefix, n_head, causal, pad):
    """Multi-head self-attention in PyTorch with scaled_dot_product_attention and the same boolean mask."""
    b, t, c = tx.shape
    qkv = F.linear(tx, tp[f"{prefix}c_attn.weight"], tp.get(f"{prefix}c_attn.bias"))
    q, k, v = (z.view(b, t, n_head, c // n_head).transpose(1, 2) for z in qkv.split(c, dim=-1))
    allowed = torch.ones(b, 1, t, t, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(t, t, dtype=torch.bool).tril()
    if pad is not None:
        allowed = allowed & torch.tensor(pad)[:, None, None, :]
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)       # (B, nh, T, hs)
    y = y.transpose(1, 2).reshape(b, t, c)
    return F.linear(y, tp[f"{prefix}c_proj.weight"], tp.get(f"{prefix}c_proj.bias"))


PAD = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=bool)          # right padding: row 1 has 3 tokens


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_multi_head_attention(causal, padded, bias):
    mha = nn.MultiHeadAttention(8, 2, bias=bias, causal=causal)
    tp = torch_params(mha)
    x, tx = inputs(2, 5, 8)
    pad = PAD if padded else None
    compare(mha(x, padding_mask=pad), torch_attention(tx, tp, "", 2, causal, pad), x, tx, mha, tp)


@pytest.mark.parametrize("t", [64, 150])
def test_causal_attention_over_several_query_blocks(t):
    """Sequences longer than QUERY_BLOCK run causal attention block by block: still the same as PyTorch."""
    mha = nn.MultiHeadAttention(8, 2, causal=True)
    tp = torch_params(mha)
    x, tx = inputs(2, t, 8)
    pad = np.arange(t)[None, :] < np.array([[t], [t - 20]])
    compare(mha(x, padding_mask=pad), torch_attention(tx, tp, "", 2, True, pad), x, tx, mha, tp)


def torch_block(tx, tp, n_head, causal, norm_first, eps, pad=None):
    """A Transformer block in PyTorch, written out: pre-LN (GPT-2) or post-LN (BERT)."""
    def ln(name, z):
        return F.layer_norm(z, z.shape[-1:], tp[f"{name}.weight"], tp[f"{name}.bias"], eps)

    def attn(z):
        return torch_attention(z, tp, "attn.", n_head, causal, pad)

    def mlp(z):
        h = F.gelu(F.linear(z, tp["mlp.c_fc.weight"], tp["mlp.c_fc.bias"]), approximate="tanh")
        return F.linear(h, tp["mlp.c_proj.weight"], tp["mlp.c_proj.bias"])

    if norm_first:
        tx = tx + attn(ln("ln_1", tx))
        return tx + mlp(ln("ln_2", tx))
    tx = ln("ln_1", tx + attn(tx))
    return ln("ln_2", tx + mlp(tx))


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("causal", [True, False])
def test_transformer_block(norm_first, causal):
    eps = 1e-5 if norm_first else 1e-12
    block = nn.TransformerBlock(8, 2, causal=causal, norm_first=norm_first, eps=eps)
    rng = np.random.default_rng(3)
    for p in (block.ln_1.weight, block.ln_1.bias, block.ln_2.weight, block.ln_2.bias):
        p.data[...] = backend.asarray(rng.uniform(0.5, 1.5, p.shape))
    tp = torch_params(block)
    x, tx = inputs(2, 5, 8)
    compare(block(x), torch_block(tx, tp, 2, causal, norm_first, eps), x, tx, block, tp)


def test_transformer_block_with_padding():
    block = nn.TransformerBlock(8, 2, causal=False, norm_first=False)
    tp = torch_params(block)
    x, tx = inputs(2, 5, 8)
    compare(block(x, padding_mask=PAD), torch_block(tx, tp, 2, False, False, 1e-5, PAD), x, tx, block, tp)


# ----------------------------------------------------------------------------- losses

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy(reduction, smoothing):
    z, tz = inputs(3, 4, 6)
    targets = np.random.default_rng(1).integers(0, 6, (3, 4))
    targets[0, 0] = targets[2, 3] = -100
    ours = nn.cross_entropy(z, targets, ignore_index=-100, label_smoothing=smoothing, reduction=reduction)
    theirs = F.cross_entropy(tz.reshape(-1, 6), torch.tensor(targets.reshape(-1)), ignore_index=-100,
                             label_smoothing=smoothing, reduction=reduction)
    compare(ours, theirs.reshape(3, 4) if reduction == "none" else theirs, z, tz)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_with_logits(reduction, weighted):
    x, tx = inputs(4, 3)
    x.data *= 8
    tx.data *= 8
    y_np = np.random.default_rng(2).uniform(0, 1, (4, 3))
    y, ty = tinyllm.tensor(y_np, requires_grad=True), T(y_np)
    w = np.array([0.5, 1.0, 3.0]) if weighted else None
    ours = nn.binary_cross_entropy_with_logits(x, y, reduction, pos_weight=w)
    theirs = F.binary_cross_entropy_with_logits(tx, ty, reduction=reduction,
                                                pos_weight=None if w is None else torch.tensor(w))
    compare(ours, theirs, x, tx)
    np.testing.assert_allclose(y.grad, ty.grad.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse(reduction):
    p, tp = inputs(3, 5)
    t, tt = inputs(3, 5, seed=1)
    compare(nn.mse_loss(p, t, reduction), F.mse_loss(tp, tt, reduction=reduction), p, tp)
    np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-8)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_contrastive_loss(symmetric, normalize):
    a, ta = inputs(5, 4)
    b, tb = inputs(5, 4, seed=1)
    tau = 0.1

    def reference(za, zb):
        if normalize:
            za, zb = F.normalize(za, dim=-1), F.normalize(zb, dim=-1)
        logits = za @ zb.T / tau
        labels = torch.arange(za.shape[0])
        loss = F.cross_entropy(logits, labels)
        return (loss + F.cross_entropy(logits.T, labels)) / 2 if symmetric else loss

    compare(nn.contrastive_loss(a, b, tau, symmetric, normalize), reference(ta, tb), a, ta)
    np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-8, atol=1e-10)
    assert math.isfinite(a.grad.sum())
