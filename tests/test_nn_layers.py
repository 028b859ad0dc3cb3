"""Basic layers: gradients against finite differences (float64, every parameter
through ``functional_call``) and properties of meaning (LayerNorm statistics,
dropout's expectation, the sinusoidal formula, the padding row of an embedding)."""
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinyllm
from tinyllm import backend
from gradcases import grad_case, surface_case
from tinyllm import nn
from tinyllm.nn import functional_call



def gradcheck_module(module: nn.Module, x: tinyllm.Tensor, *args, **kwargs) -> None:
    """gradcheck ``module(x, ...)`` with respect to ``x`` (when it requires grad) and every parameter."""
    names, params = zip(*module.named_parameters())
    tinyllm.gradcheck(lambda x, *ws: functional_call(module, dict(zip(names, ws)), x, *args, **kwargs),
                      x, *params)


def randn(seed: int, *shape: int, requires_grad: bool = True) -> tinyllm.Tensor:
    return tinyllm.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=requires_grad)


# ----------------------------------------------------------------------------- Linear

@grad_case("LinearFunction")
@given(n_in=st.integers(1, 4), n_out=st.integers(1, 4), lead=st.lists(st.integers(1, 3), max_size=2),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_gradients(n_in, n_out, lead, bias, seed):
    tinyllm.set_default_dtype("float64")
    tinyllm.manual_seed(seed)
    layer = nn.Linear(n_in, n_out, bias=bias)
    x = randn(seed, *lead, n_in)
    assert layer(x).shape == (*lead, n_out)
    gradcheck_module(layer, x)


@grad_case("LinearFunction")
@surface_case("F.linear")
def test_linear_function_gradient_of_each_input_alone():
    """needs_grad: asking for one input's gradient at a time gives the same values."""
    tinyllm.set_default_dtype("float64")
    x, w, b = randn(1, 2, 3, 4), randn(2, 5, 4), randn(3, 5)
    for wanted in range(3):
        ins = [tinyllm.tensor(t.data, requires_grad=(i == wanted)) for i, t in enumerate((x, w, b))]
        tinyllm.gradcheck(lambda x, w, b: nn.linear(x, w, b), *ins)


def test_linear_matches_numpy_and_has_pytorch_layout():
    layer = nn.Linear(3, 2)
    assert layer.weight.shape == (2, 3) and layer.bias.shape == (2,)
    bound = 1 / math.sqrt(3)
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    y = layer(tinyllm.tensor(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), x @ layer.weight.numpy().T + layer.bias.numpy(), rtol=1e-5, atol=1e-6)
    assert nn.Linear(3, 2, bias=False).bias is None
    assert [n for n, _ in nn.Linear(3, 2, bias=False).named_parameters()] == ["weight"]


# ----------------------------------------------------------------------------- Embedding

@given(num=st.integers(1, 5), dim=st.integers(1, 4), seed=st.integers(0, 2**16), data=st.data())
def test_embedding_gradients(num, dim, seed, data):
    tinyllm.set_default_dtype("float64")
    tinyllm.manual_seed(seed)
    emb = nn.Embedding(num, dim)
    idx = np.array(data.draw(st.lists(st.integers(0, num - 1), min_size=1, max_size=6)))
    gradcheck_module(emb, idx.reshape(1, -1))


def test_embedding_padding_row_is_zero_and_gets_no_gradient():
    emb = nn.Embedding(5, 3, padding_idx=1)
    assert np.all(emb.weight.numpy()[1] == 0) and np.any(emb.weight.numpy()[0] != 0)
    idx = np.array([[1, 0, 1], [4, 0, 1]])
    out = emb(idx)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.numpy()[0, 0], 0)
    g = np.random.default_rng(0).standard_normal(out.shape).astype(np.float32)
    out.backward(g)
    grad = emb.weight.grad
    np.testing.assert_array_equal(grad[1], 0)                          # padding row: no gradient
    np.testing.assert_allclose(grad[0], g[0, 1] + g[1, 1], rtol=1e-6)  # used twice: both gradients
    np.testing.assert_allclose(grad[4], g[1, 0], rtol=1e-6)
    np.testing.assert_array_equal(grad[[2, 3]], 0)                     # unused rows
    assert nn.Embedding(5, 3, padding_idx=-1).padding_idx == 4


def test_embedding_rejects_bad_indices():
    emb = nn.Embedding(4, 2)
    with pytest.raises(IndexError, match="out of range"):
        emb(np.array([0, 4]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([0.5]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(4, 2, padding_idx=4)


# ----------------------------------------------------------------------------- LayerNorm

@given(dim=st.integers(1, 4), rows=st.lists(st.integers(1, 3), min_size=1, max_size=2),
       affine=st.sampled_from(["none", "weight", "weight+bias"]), seed=st.integers(0, 2**16))
def test_layer_norm_gradients(dim, rows, affine, seed):
    tinyllm.set_default_dtype("float64")
    ln = nn.LayerNorm(dim, elementwise_affine=affine != "none", bias=affine == "weight+bias")
    for p in ln.parameters():                                          # move away from the 1 / 0 start
        p.data[...] = backend.asarray(np.random.default_rng(seed + 1).standard_normal(p.shape))
    x = randn(seed, *rows, dim)
    if affine == "none":
        assert ln.parameters() == []
        tinyllm.gradcheck(ln, x)
    else:
        gradcheck_module(ln, x)


@given(dim=st.integers(2, 16), seed=st.integers(0, 2**16), shift=st.floats(-100, 100), scale=st.floats(0.1, 50))
def test_layer_norm_rows_have_mean_zero_variance_one_before_the_affine(dim, seed, shift, scale):
    tinyllm.set_default_dtype("float64")
    x = np.random.default_rng(seed).standard_normal((3, dim)) * scale + shift
    assume(x.var(axis=-1).min() > 1e-3)           # so eps / var (1e-9 at most) stays under the tolerance
    ln = nn.LayerNorm(dim, eps=1e-12)
    xhat = nn.LayerNorm(dim, eps=1e-12, elementwise_affine=False)(tinyllm.tensor(x)).numpy()
    np.testing.assert_allclose(xhat.mean(axis=-1), 0, atol=1e-9)
    np.testing.assert_allclose(xhat.var(axis=-1), 1, rtol=1e-8)
    w, b = np.linspace(0.5, 2, dim), np.linspace(-1, 1, dim)
    ln.weight.data[...], ln.bias.data[...] = backend.asarray(w), backend.asarray(b)
    np.testing.assert_allclose(ln(tinyllm.tensor(x)).numpy(), xhat * w + b, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- MLP and activations

@given(dim=st.integers(1, 3), hidden=st.integers(1, 4), activation=st.sampled_from(["gelu", "relu"]),
       bias=st.booleans(), t=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_mlp_gradients(dim, hidden, activation, bias, t, seed):
    tinyllm.set_default_dtype("float64")
    tinyllm.manual_seed(seed)
    mlp = nn.MLP(dim, hidden, activation=activation, bias=bias)
    x = randn(seed, 2, t, dim)
    if activation == "relu":  # keep the hidden pre-activations away from relu's kink
        with tinyllm.no_grad():
            h = mlp.c_fc(x).numpy()
        assume(np.abs(h).min() > 1e-4)
    gradcheck_module(mlp, x)


def test_mlp_structure_and_formula():
    mlp = nn.MLP(4, activation="relu")
    assert [n for n, _ in mlp.named_parameters()] == ["c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias"]
    assert mlp.c_fc.weight.shape == (16, 4)                              # hidden = 4 * dim by default
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    h = np.maximum(x @ mlp.c_fc.weight.numpy().T + mlp.c_fc.bias.numpy(), 0)
    expected = h @ mlp.c_proj.weight.numpy().T + mlp.c_proj.bias.numpy()
    np.testing.assert_allclose(mlp(tinyllm.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="activation"):
        nn.MLP(4, activation="swish")


def test_gelu_is_exact_by_default_the_mlp_uses_the_tanh_form_and_relu_clips():
    x = np.linspace(-4, 4, 17)
    tinyllm.set_default_dtype("float64")
    expected = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(nn.GELU(approximate="tanh")(tinyllm.tensor(x)).numpy(), expected, rtol=1e-11)
    np.testing.assert_allclose(nn.layers.GELU()(tinyllm.tensor(x)).numpy(), expected, rtol=1e-11)  # GPU tanh: ulps
    exact = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    np.testing.assert_allclose(nn.GELU()(tinyllm.tensor(x)).numpy(), exact, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(tinyllm.tensor(x).gelu().numpy(), exact, rtol=1e-11, atol=1e-15)
    assert isinstance(nn.MLP(4).act, nn.layers.GELU) and not isinstance(nn.MLP(4).act, nn.GELU)
    np.testing.assert_array_equal(nn.ReLU()(tinyllm.tensor(x)).numpy(), np.maximum(x, 0))


# ----------------------------------------------------------------------------- Dropout

def test_dropout_is_identity_in_eval_and_keeps_the_expectation_in_train():
    drop = nn.Dropout(0.3)
    x = tinyllm.tensor(np.full((400, 500), 2.0, dtype=np.float32), requires_grad=True)
    drop.eval()
    assert drop(x) is x                                                 # identity, not even a copy
    drop.train()
    y = drop(x)
    vals = y.numpy()
    kept = vals != 0
    assert abs(kept.mean() - 0.7) < 0.005                               # 200k Bernoulli(0.7): sd 0.001
    np.testing.assert_allclose(vals[kept], 2.0 / 0.7, rtol=1e-6)        # survivors scaled by 1/(1-p)
    assert abs(vals.mean() - 2.0) < 0.015                               # E[y] = x (sd ~0.003)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad != 0, kept)                    # same mask in backward
    np.testing.assert_allclose(x.grad[kept], 1 / 0.7, rtol=1e-6)


def test_dropout_draws_from_the_seeded_generator_and_checks_p():
    x = tinyllm.tensor(np.ones((8, 8), dtype=np.float32))
    tinyllm.manual_seed(3)
    a = nn.Dropout(0.5)(x).numpy()
    tinyllm.manual_seed(3)
    np.testing.assert_array_equal(nn.Dropout(0.5)(x).numpy(), a)
    assert nn.Dropout(0.0)(x) is x
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout probability"):
            nn.Dropout(p)


# ----------------------------------------------------------------------------- positions

@pytest.mark.parametrize("dim", [1, 2, 5, 8])
def test_sinusoidal_encoding_matches_the_formula(dim):
    pe = nn.SinusoidalPositionalEncoding(max_len=12, dim=dim)
    table = pe(12).numpy()
    assert table.shape == (12, dim) and not pe.parameters()
    for pos in range(12):
        for j in range(dim):
            angle = pos / 10000 ** ((j - j % 2) / dim)                  # 2i = j rounded down to even
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert table[pos, j] == pytest.approx(expected, abs=1e-6)
    np.testing.assert_array_equal(pe(3, offset=4).numpy(), table[4:7])
    with pytest.raises(ValueError, match="max_len"):
        pe(5, offset=8)


def test_learned_positional_embedding_rows_and_gradient():
    wpe = nn.LearnedPositionalEmbedding(6, 3)
    out = wpe(2, offset=3)
    np.testing.assert_array_equal(out.numpy(), wpe.weight.numpy()[3:5])
    out.sum().backward()
    np.testing.assert_array_equal(wpe.weight.grad[3:5], 1)
    np.testing.assert_array_equal(wpe.weight.grad[[0, 1, 2, 5]], 0)
    with pytest.raises(ValueError, match="exceed"):
        wpe(4, offset=3)
