"""Module: the parameter registry and names, tied weights, modes, state dicts,
dtype conversion, freezing, the printed tree, functional_call and init."""
import math

import numpy as np
import pytest

import tinyllm
from tinyllm import nn
from tinyllm.nn import functional_call


class TinyGPT(nn.Module):
    """GPT-2's layout in miniature: wte, wpe, h (a ModuleList of blocks), ln_f, a tied lm_head."""

    def __init__(self, vocab: int = 10, n_embd: int = 4, n_layer: int = 2, tie: bool = True) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.LearnedPositionalEmbedding(8, n_embd)
        self.h = nn.ModuleList([nn.TransformerBlock(n_embd, 2) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        if tie:
            self.lm_head.weight = self.wte.weight

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(idx.shape[1])                    # (B, T, C)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))                              # (B, T, V)


BLOCK_NAMES = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
               "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
               "mlp.c_proj.weight", "mlp.c_proj.bias"]


# ----------------------------------------------------------------------------- registry and names

def test_named_parameters_are_dotted_and_in_assignment_order():
    m = TinyGPT()
    expected = ["wte.weight", "wpe.weight"] + [f"h.{i}.{n}" for i in range(2) for n in BLOCK_NAMES] + \
        ["ln_f.weight", "ln_f.bias"]
    assert [n for n, _ in m.named_parameters()] == expected            # the tied lm_head.weight once
    assert [n for n, _ in TinyGPT().named_parameters()] == expected    # the same for every instance
    assert [n for n, _ in TinyGPT(tie=False).named_parameters()] == expected + ["lm_head.weight"]
    assert [n for n, _ in m.named_parameters(remove_duplicate=False)][-1] == "lm_head.weight"
    assert m.parameters() == [p for _, p in m.named_parameters()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    names = [n for n, _ in m.named_modules()]
    assert names[:4] == ["", "wte", "wpe", "h"] and "h.1.attn.c_attn" in names and names[-1] == "lm_head"
    assert [type(c).__name__ for c in m.children()] == ["Embedding", "LearnedPositionalEmbedding", "ModuleList",
                                                         "LayerNorm", "Linear"]
    assert len(list(m.modules())) == len(names)


def test_reassigning_and_deleting_attributes_updates_the_registry():
    lin = nn.Linear(3, 2)
    lin.bias = None                                                     # no bias any more
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    lin.extra = nn.Parameter(np.zeros(2, dtype=np.float32))
    lin.weight = nn.Parameter(np.ones((2, 3), dtype=np.float32))       # re-registered in its new place
    assert [n for n, _ in lin.named_parameters()] == ["extra", "weight"]
    del lin.extra
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    with pytest.raises(TypeError, match="'weight'.*Parameter"):
        lin.weight = tinyllm.tensor(np.ones((2, 3), dtype=np.float32))  # a plain tensor would drop out silently


def test_module_without_super_init_or_forward_fails_clearly():
    class NoInit(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1, dtype=np.float32))

    with pytest.raises(AttributeError, match=r"super\(\)\.__init__\(\)"):
        NoInit()
    with pytest.raises(TypeError, match="does not define forward"):
        nn.Module()(1)


def test_tied_weights_are_counted_once_and_share_gradients():
    tied, untied = TinyGPT(), TinyGPT(tie=False)
    assert untied.num_parameters() - tied.num_parameters() == 10 * 4
    expected = sum(p.size for p in tied.parameters())
    assert tied.num_parameters() == expected
    assert tied.lm_head.weight is tied.wte.weight
    idx = np.array([[1, 2, 3]])
    tied(idx).sum().backward()
    assert tied.wte.weight.grad is not None
    # the shared matrix gets both gradients: from the lookup and from the output layer
    untied.load_state_dict(tied.state_dict())
    untied(idx).sum().backward()
    np.testing.assert_allclose(tied.wte.weight.grad, untied.wte.weight.grad + untied.lm_head.weight.grad,
                               rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- modes, freezing, dtype

def test_train_and_eval_reach_every_submodule():
    m = TinyGPT()
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m and not any(mod.training for mod in m.modules())
    m.h[1].train()
    assert m.h[1].attn.resid_dropout.training and not m.h[0].attn.training
    m.train()
    assert all(mod.training for mod in m.modules())


def test_requires_grad_false_freezes_and_zero_grad_clears():
    m = TinyGPT()
    m.h[0].requires_grad_(False)
    frozen = {id(p) for p in m.h[0].parameters()}
    assert m.num_parameters(trainable_only=True) == m.num_parameters() - sum(p.size for p in m.h[0].parameters())
    m(np.array([[1, 2]])).sum().backward()
    for name, p in m.named_parameters():
        assert (p.grad is None) == (id(p) in frozen), name
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.requires_grad_(True)
    assert m.num_parameters(trainable_only=True) == m.num_parameters()


def test_to_float64_converts_every_parameter_and_buffer_in_place():
    m = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.LayerNorm(4))
    pe = nn.SinusoidalPositionalEncoding(5, 4)
    params = m.parameters()
    before = [p.numpy().copy() for p in params]
    assert m.to("float64") is m
    assert m.parameters() == params                                     # the same Parameter objects
    for p, b in zip(params, before):
        assert p.dtype == np.float64 and isinstance(p, nn.Parameter)
        np.testing.assert_array_equal(p.numpy(), b)
    y = m(tinyllm.tensor(np.ones((2, 3))))
    assert y.dtype == np.float64
    assert pe.to(np.float64)(2).dtype == np.float64
    m.to(np.float32)
    assert all(p.dtype == np.float32 for p in m.parameters())


# ----------------------------------------------------------------------------- state dicts

def test_state_dict_round_trip_into_a_fresh_model():
    tinyllm.manual_seed(1)
    a = TinyGPT()
    tinyllm.manual_seed(2)
    b = TinyGPT()
    idx = np.array([[1, 5, 7, 2]])
    assert not np.allclose(a(idx).numpy(), b(idx).numpy())
    sd = a.state_dict()
    assert "lm_head.weight" in sd and sd["lm_head.weight"] is sd["wte.weight"]   # tied: under each name
    assert list(sd)[:2] == ["wte.weight", "wpe.weight"]
    views = [p.data for p in b.parameters()]
    assert b.load_state_dict({k: v.copy() for k, v in sd.items()}) == []
    assert all(p.data is v for p, v in zip(b.parameters(), views))     # copied in place: views stay valid
    np.testing.assert_array_equal(a(idx).numpy(), b(idx).numpy())
    assert b.lm_head.weight is b.wte.weight


def test_state_dict_includes_buffers():
    class WithBuffer(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("scale", tinyllm.tensor(np.ones(2, dtype=np.float32)))

    m = WithBuffer()
    assert list(m.state_dict()) == ["lin.weight", "lin.bias", "scale"]
    assert [n for n, _ in m.named_parameters()] == ["lin.weight", "lin.bias"]
    m.load_state_dict({"lin.weight": np.zeros((2, 2)), "lin.bias": np.zeros(2), "scale": np.full(2, 3.0)})
    np.testing.assert_array_equal(m.scale.numpy(), 3.0)
    assert m.scale.dtype == np.float32                                  # values are cast to the model's dtype
    m.scale = tinyllm.tensor(np.full(2, 5.0, dtype=np.float32))         # reassigned: still a buffer
    assert list(m.state_dict()) == ["lin.weight", "lin.bias", "scale"]
    np.testing.assert_array_equal(m.state_dict()["scale"], 5.0)
    m.scale = None                                                      # an empty buffer is left out
    assert list(m.state_dict()) == ["lin.weight", "lin.bias"]


def test_load_state_dict_errors_name_the_entry():
    m = TinyGPT()
    sd = {k: v.copy() for k, v in m.state_dict().items()}
    missing = dict(sd)
    del missing["h.1.mlp.c_fc.bias"]
    with pytest.raises(KeyError, match=r"missing h\.1\.mlp\.c_fc\.bias"):
        m.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected h\.2\.ln_1\.weight"):
        m.load_state_dict({**sd, "h.2.ln_1.weight": np.ones(4)})
    before = {k: v.copy() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match=r"'h\.0\.attn\.c_attn\.weight' has shape \(12, 5\).*\(12, 4\)"):
        m.load_state_dict({**{k: v + 1 for k, v in sd.items()}, "h.0.attn.c_attn.weight": np.ones((12, 5))})
    for k, v in m.state_dict().items():                                 # nothing was half loaded
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    # not strict: missing and unexpected entries are allowed, the missing ones returned; shapes still checked
    assert m.load_state_dict({**missing, "extra": np.ones(1)}, strict=False) == ["h.1.mlp.c_fc.bias"]
    with pytest.raises(ValueError, match="ln_f.bias"):
        m.load_state_dict({"ln_f.bias": np.ones(5)}, strict=False)


def test_load_state_dict_accepts_tensors():
    a, b = nn.Linear(2, 3), nn.Linear(2, 3)
    b.load_state_dict({k: tinyllm.tensor(v) for k, v in a.state_dict().items()})
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())


# ----------------------------------------------------------------------------- display

def test_repr_is_an_indented_tree():
    text = repr(TinyGPT(n_layer=1))
    lines = text.splitlines()
    assert lines[0] == "TinyGPT("
    assert "  (wte): Embedding(10, 4)" in lines
    assert "  (h): ModuleList(" in lines
    assert "    (0): TransformerBlock(pre-LN" in lines
    assert "        (c_attn): Linear(4, 12, bias=True)" in lines
    assert "  (lm_head): Linear(4, 10, bias=False)" in lines
    assert lines[-1] == ")"
    assert repr(nn.LayerNorm(3)) == "LayerNorm(3, eps=1e-05)"
    assert repr(nn.Linear(2, 2).weight) == "Parameter(shape=(2, 2), dtype=float32)"


# ----------------------------------------------------------------------------- containers

def test_sequential_and_module_list():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = tinyllm.tensor(np.ones((4, 2), dtype=np.float32))
    np.testing.assert_array_equal(seq(x).numpy(), seq[2](seq[1](seq[0](x))).numpy())
    ml = nn.ModuleList()
    ml.append(nn.Linear(1, 1))
    assert [type(m).__name__ for m in ml] == ["Linear"] and list(ml.state_dict()) == ["0.weight", "0.bias"]


# ----------------------------------------------------------------------------- functional_call

def test_functional_call_substitutes_tied_weights_and_restores():
    tinyllm.set_default_dtype("float64")
    m = TinyGPT(n_layer=1)
    idx = np.array([[1, 2, 3]])
    original = m.wte.weight
    new = tinyllm.tensor(np.random.default_rng(0).standard_normal((10, 4)), requires_grad=True)
    out = functional_call(m, {"wte.weight": new}, idx)
    out.sum().backward()
    assert m.wte.weight is original and m.lm_head.weight is original    # restored
    assert original.grad is None and new.grad is not None               # the gradient went to the substitute
    # the substitute was used in both tied places: the result equals a model holding it
    other = TinyGPT(n_layer=1)
    other.load_state_dict({**m.state_dict(), "wte.weight": new.data, "lm_head.weight": new.data})
    np.testing.assert_allclose(out.numpy(), other(idx).numpy(), rtol=1e-12)
    with pytest.raises(KeyError, match="no parameter named lm_head.weight"):  # tied: only the first name
        functional_call(m, {"lm_head.weight": new}, idx)


def test_functional_call_restores_the_module_when_forward_raises():
    m = TinyGPT(n_layer=1)
    before = {n: p for n, p in m.named_parameters()}
    bad = {n: tinyllm.tensor(p.numpy()) for n, p in m.named_parameters()}
    with pytest.raises(IndexError):
        functional_call(m, bad, np.array([[1, 99]]))                    # token 99 is out of range
    assert {n: p for n, p in m.named_parameters()} == before
    assert all(type(p) is nn.Parameter for p in m.parameters())


def test_functional_call_gradcheck_of_a_whole_model():
    tinyllm.set_default_dtype("float64")
    m = TinyGPT(vocab=5, n_layer=1)
    names, params = zip(*m.named_parameters())
    idx = np.array([[1, 4, 0]])
    tinyllm.gradcheck(lambda *ws: nn.cross_entropy(functional_call(m, dict(zip(names, ws)), idx),
                                                   np.array([[4, 0, 2]])), *params, max_elements=32)


# ----------------------------------------------------------------------------- init

def test_gpt2_init_scales_the_residual_projections():
    tinyllm.manual_seed(0)
    m = TinyGPT(vocab=50, n_embd=64, n_layer=8)
    nn.init.gpt2_init_(m, n_layer=8)
    std = lambda p: float(p.numpy().std())  # noqa: E731
    assert std(m.wte.weight) == pytest.approx(0.02, rel=0.05)
    assert std(m.h[0].mlp.c_fc.weight) == pytest.approx(0.02, rel=0.05)
    assert std(m.h[0].mlp.c_proj.weight) == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert std(m.h[3].attn.c_proj.weight) == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert np.all(m.h[0].attn.c_attn.bias.numpy() == 0) and np.all(m.ln_f.weight.numpy() == 1)
    t = nn.Parameter(np.zeros((200, 300), dtype=np.float32))
    nn.init.xavier_uniform_(t)
    bound = math.sqrt(6 / 500)
    assert np.abs(t.numpy()).max() <= bound and np.abs(t.numpy()).max() > 0.95 * bound
    tinyllm.manual_seed(5)
    a = nn.Linear(3, 3).weight.numpy()
    tinyllm.manual_seed(5)
    np.testing.assert_array_equal(nn.Linear(3, 3).weight.numpy(), a)    # init follows the seed
