"""GPT, BERT, the sequence classifier and the sentence encoder: configs,
end-to-end gradient checks, learning, parameter counts, FLOPs, optimizer
groups, padding and causality, and the examples (smoke runs)."""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyllm
from tinyllm import backend
from tinyllm.models import (BERT, GPT, MODEL_KINDS, Backbone, BertConfig, GPTConfig, SentenceEncoder,
                            SequenceClassifier, build_model, config_class, mean_pool)
from tinyllm.nn import functional_call
from tinyllm.optim import configure_adamw

ROOT = Path(__file__).resolve().parents[1]


def perturb(model, std=0.3, seed=0):
    """Add noise to every weight, so gradients are far from zero and LayerNorm gains/biases matter."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data += backend.asarray(rng.normal(0, std, p.shape).astype(p.dtype))
    return model


# ----------------------------------------------------------------------------- configs

def test_config_roundtrip_and_defaults():
    cfg = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=8)
    assert cfg.to_dict() == {"vocab_size": 50, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 8,
                             "dropout": 0.0, "bias": True, "tie_weights": True}
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    bcfg = BertConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=8)
    assert (bcfg.dropout, bcfg.type_vocab_size, bcfg.pad_id, bcfg.eps) == (0.1, 2, 0, 1e-12)
    assert BertConfig.from_dict(bcfg.to_dict()) == bcfg
    assert config_class("gpt") is GPTConfig and config_class("bert") is BertConfig
    assert set(MODEL_KINDS) == {"gpt", "bert", "seq2seq"}
    assert isinstance(build_model("gpt", cfg.to_dict()), GPT)
    assert isinstance(build_model("bert", bcfg.to_dict()), BERT)


@pytest.mark.parametrize("changes, match", [
    (dict(n_embd=100, n_head=3), r"n_embd \(100\) must be divisible by n_head \(3\)"),
    (dict(n_layer=0), "n_layer must be a positive integer"),
    (dict(vocab_size=-5), "vocab_size must be a positive integer"),
    (dict(block_size=2.5), "block_size must be a positive integer"),
    (dict(n_head=True), "n_head must be a positive integer"),
    (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
    (dict(dropout=-0.1), "dropout"),
    (dict(bias="yes"), "bias must be true or false"),
])
def test_gpt_config_validation(changes, match):
    base = dict(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8)
    with pytest.raises(ValueError, match=match):
        GPTConfig(**{**base, **changes})


@pytest.mark.parametrize("changes, match", [
    (dict(pad_id=10), r"pad_id must be a token id in \[0, 10\)"),
    (dict(type_vocab_size=0), "type_vocab_size"),
    (dict(eps=0.0), "eps"),
    (dict(n_embd=6, n_head=4), r"n_embd \(6\) must be divisible by n_head \(4\)"),
])
def test_bert_config_validation(changes, match):
    base = dict(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8)
    with pytest.raises(ValueError, match=match):
        BertConfig(**{**base, **changes})


def test_config_from_dict_errors_and_revalidation():
    with pytest.raises(ValueError, match="unknown GPTConfig key 'n_layers'"):
        GPTConfig.from_dict(dict(vocab_size=10, block_size=8, n_layers=1, n_head=2, n_embd=8))
    with pytest.raises(ValueError, match="missing the key 'n_layer'"):
        GPTConfig.from_dict(dict(vocab_size=10, block_size=8, n_head=2, n_embd=8))
    with pytest.raises(ValueError, match="unknown model kind 'rnn'"):
        build_model("rnn", {})
    cfg = GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8)
    cfg.n_head = 3
    with pytest.raises(ValueError, match="divisible"):
        cfg.validate()
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT(dataclasses.asdict(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8)))


# ----------------------------------------------------------------------------- gradient checks (float64)

def test_gpt_gradcheck_all_parameters():
    tinyllm.set_default_dtype("float64")
    model = perturb(GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=2, n_head=2, n_embd=4)))
    idx = np.array([[1, 2, 3, 6], [0, 5, 5, 1]])
    targets = np.array([[2, 3, 6, -100], [5, 5, 1, 4]])
    names, params = zip(*model.named_parameters())
    assert "lm_head.weight" not in names          # tied: listed once, as wte.weight

    def fn(*ws):
        return functional_call(model, dict(zip(names, ws)), idx, targets)   # (logits, loss)
    assert tinyllm.gradcheck(fn, *params)


def test_gpt_untied_no_bias_gradcheck():
    tinyllm.set_default_dtype("float64")
    model = perturb(GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=4, bias=False,
                                  tie_weights=False)))
    idx = np.array([[1, 2, 3], [0, 5, 5]])
    names, params = zip(*model.named_parameters())
    assert "lm_head.weight" in names and not any(n.endswith("bias") for n in names)
    assert tinyllm.gradcheck(lambda *ws: functional_call(model, dict(zip(names, ws)), idx)[0], *params)


def test_bert_gradcheck_all_parameters():
    tinyllm.set_default_dtype("float64")
    model = perturb(BERT(BertConfig(vocab_size=7, block_size=4, n_layer=2, n_head=2, n_embd=4, dropout=0.0,
                                    pad_id=0)))
    idx = np.array([[1, 2, 3, 6], [4, 5, 5, 1]])           # no pad token: the pad row's lookup gets no gradient
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]])
    segments = np.array([[0, 0, 1, 1], [0, 1, 1, 1]])
    targets = np.array([[-100, 2, -100, 6], [4, -100, -100, -100]])
    names, params = zip(*model.named_parameters())
    assert "mlm.decoder.weight" not in names

    def fn(*ws):
        return functional_call(model, dict(zip(names, ws)), idx, targets, mask, segments)
    assert tinyllm.gradcheck(fn, *params)


def test_classifier_and_sentence_encoder_gradcheck():
    tinyllm.set_default_dtype("float64")
    gpt = perturb(GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=4)))
    clf = perturb(SequenceClassifier(gpt, 3), seed=1)
    idx, mask, labels = np.array([[1, 2, 3, 6], [0, 5, 5, 1]]), np.array([[1, 1, 1, 1], [1, 1, 0, 0]]), [2, 0]
    names, params = zip(*clf.named_parameters())
    assert tinyllm.gradcheck(lambda *ws: functional_call(clf, dict(zip(names, ws)), idx, labels, mask), *params)
    enc = SentenceEncoder(perturb(BERT(BertConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=4,
                                                  dropout=0.0))))
    names, params = zip(*enc.named_parameters())
    a_idx, b_idx = np.array([[1, 2, 3, 6], [3, 5, 5, 0]]), np.array([[2, 1, 3, 3], [4, 4, 5, 6]])  # 0: [PAD]
    assert tinyllm.gradcheck(lambda *ws: functional_call(enc, dict(zip(names, ws)), a_idx, mask), *params)

    class PairLoss(tinyllm.nn.Module):  # functional_call runs forward: wrap the InfoNCE loss in one
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, a, b, ma):
            return self.encoder.loss(a, b, ma, None, temperature=0.5)
    pair = PairLoss(enc)
    names, params = zip(*pair.named_parameters())
    assert tinyllm.gradcheck(lambda *ws: functional_call(pair, dict(zip(names, ws)), a_idx, b_idx, mask), *params)
    loss = enc.loss(a_idx, b_idx, mask, None, temperature=0.5)
    assert loss.shape == () and np.isfinite(loss.item())


# ----------------------------------------------------------------------------- learning

def test_gpt_overfits_one_batch():
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=32))
    rng = np.random.default_rng(0)
    data = rng.integers(0, 11, size=(4, 17))
    x, y = data[:, :-1], data[:, 1:]
    opt = configure_adamw(model, lr=1e-2, weight_decay=0.0)
    first = None
    for _ in range(200):
        _, loss = model(x, y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 2.0 and loss.item() < 0.05, (first, loss.item())


def test_bert_overfits_one_masked_batch():
    tinyllm.manual_seed(0)
    model = BERT(BertConfig(vocab_size=12, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0))
    rng = np.random.default_rng(1)
    original = rng.integers(2, 12, size=(4, 16))
    masked = rng.random(original.shape) < 0.25
    idx = np.where(masked, 1, original)                   # token 1 plays [MASK]
    targets = np.where(masked, original, -100)
    opt = configure_adamw(model, lr=1e-2, weight_decay=0.0)
    first = None
    for _ in range(200):
        _, loss = model(idx, targets)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 2.0 and loss.item() < 0.05, (first, loss.item())


def test_classifier_learns_a_rule_with_a_frozen_backbone():
    tinyllm.manual_seed(0)
    bert = BERT(BertConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0))
    clf = SequenceClassifier(bert, 2, pooling="mean", freeze_backbone=True)
    rng = np.random.default_rng(0)
    idx = rng.integers(1, 10, size=(32, 8))
    labels = (idx == 3).any(axis=1).astype(np.int64)        # "does the text contain token 3?"
    opt = configure_adamw(clf, lr=5e-2, weight_decay=0.0)
    assert sum(len(g["params"]) for g in opt.param_groups) == 2    # the head's weight and bias only
    for _ in range(150):
        logits, loss = clf(idx, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is None for p in bert.parameters())
    assert (logits.numpy().argmax(axis=1) == labels).mean() >= 0.9


# ----------------------------------------------------------------------------- counts and FLOPs

def gpt_count(v, t, layers, c, bias=True, tied=True):
    """GPT-2 parameters in closed form: embeddings, L blocks of 12C^2 (+ 13C biases/LN), ln_f, head."""
    per_block = 12 * c * c + (13 * c if bias else 2 * c)
    return v * c + t * c + layers * per_block + (2 * c if bias else c) + (0 if tied else v * c)


@pytest.mark.parametrize("bias, tied", [(True, True), (False, True), (True, False), (False, False)])
def test_gpt_num_parameters_closed_form(bias, tied):
    cfg = GPTConfig(vocab_size=37, block_size=12, n_layer=3, n_head=4, n_embd=16, bias=bias, tie_weights=tied)
    model = GPT(cfg)
    assert model.num_parameters() == gpt_count(37, 12, 3, 16, bias, tied)
    assert model.num_parameters(non_embedding=True) == gpt_count(37, 12, 3, 16, bias, tied) - 12 * 16 - \
        (0 if tied else 37 * 16)


def test_gpt2_small_closed_form():
    assert gpt_count(50257, 1024, 12, 768) == 124_439_808      # the published size of GPT-2 small


def test_bert_num_parameters_closed_form():
    v, t, c, layers = 30, 10, 16, 2
    model = BERT(BertConfig(vocab_size=v, block_size=t, n_layer=layers, n_head=2, n_embd=c))
    mlm = c * c + c + 2 * c + v                                  # transform, its LayerNorm, decoder bias
    expected = v * c + t * c + 2 * c + 2 * c + layers * (12 * c * c + 13 * c) + mlm
    assert model.num_parameters() == expected
    assert model.num_parameters(non_embedding=True) == expected - t * c - 2 * c


def test_flops_per_token_formula():
    model = GPT(GPTConfig(vocab_size=37, block_size=12, n_layer=3, n_head=4, n_embd=16))
    n = model.num_parameters(non_embedding=True)
    assert model.flops_per_token() == 6 * n + 12 * 3 * 4 * 4 * 12
    assert model.flops_per_token(seq_len=5) == 6 * n + 12 * 3 * 4 * 4 * 5
    bert = BERT(BertConfig(vocab_size=30, block_size=10, n_layer=2, n_head=2, n_embd=16))
    assert bert.flops_per_token() == 6 * bert.num_parameters(non_embedding=True) + 12 * 2 * 2 * 8 * 10


# ----------------------------------------------------------------------------- structure and behaviour

def test_gpt2_names_and_tying():
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=8))
    names = [n for n, _ in model.named_parameters()]
    for n in ("wte.weight", "wpe.weight", "h.1.ln_1.weight", "h.0.attn.c_attn.weight", "h.0.attn.c_proj.bias",
              "h.0.ln_2.bias", "h.1.mlp.c_fc.weight", "h.1.mlp.c_proj.weight", "ln_f.weight"):
        assert n in names
    assert model.lm_head.weight is model.wte.weight
    assert "lm_head.weight" in model.state_dict()
    untied = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8, tie_weights=False))
    assert untied.lm_head.weight is not untied.wte.weight
    # GPT-2 init: residual projections are scaled down by sqrt(2 L)
    big = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=8, n_head=2, n_embd=64))
    assert abs(big.h[0].mlp.c_fc.weight.numpy().std() - 0.02) < 0.002
    assert abs(big.h[0].mlp.c_proj.weight.numpy().std() - 0.02 / 4) < 0.0005


def test_gpt_forward_shapes_loss_and_causality():
    model = perturb(GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=8)))
    idx = np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]])
    logits, loss = model(idx)
    assert logits.shape == (2, 5, 10) and loss is None
    changed = idx.copy()
    changed[:, 3:] = 0
    np.testing.assert_allclose(model(changed)[0].numpy()[:, :3], logits.numpy()[:, :3], rtol=1e-5, atol=1e-6)
    assert not np.allclose(model(changed)[0].numpy()[:, 3:], logits.numpy()[:, 3:])
    targets = np.array([[2, 3, 4, 5, -100], [4, 3, 2, 1, -100]])
    _, loss = model(idx, targets)
    lp = logits.numpy()[:, :4].astype(np.float64)
    lp = lp - np.log(np.exp(lp - lp.max(-1, keepdims=True)).sum(-1, keepdims=True)) - lp.max(-1, keepdims=True)
    expected = -np.take_along_axis(lp, targets[:, :4, None], axis=-1).mean()
    assert abs(loss.item() - expected) < 1e-5
    with pytest.raises(ValueError, match="integer"):
        model(idx.astype(np.float32))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model(idx[0])


def test_bert_padding_is_invisible_to_real_tokens():
    model = perturb(BERT(BertConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.0)))
    short = np.array([[3, 4, 5]])
    padded = np.array([[3, 4, 5, 0, 0, 0]])
    h_short = model.encode(short).numpy()
    h_pad = model.encode(padded, attention_mask=padded != 0).numpy()
    np.testing.assert_allclose(h_pad[:, :3], h_short, rtol=1e-4, atol=1e-5)
    assert not np.allclose(model.encode(padded).numpy()[:, :3], h_short, atol=1e-3)   # no mask: pads are seen
    h_seg = model.encode(short, segment_ids=np.array([[0, 1, 1]])).numpy()
    assert not np.allclose(h_seg, h_short)
    with pytest.raises(ValueError, match="segment_ids must be in"):
        model.encode(short, segment_ids=np.array([[0, 2, 1]]))
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        model.encode(short, attention_mask=np.ones((1, 4)))
    with pytest.raises(ValueError, match="exceeds block_size 8"):
        model.encode(np.ones((1, 9), dtype=np.int64))


def test_configure_adamw_groups():
    for model in (GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=8)),
                  BERT(BertConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))):
        opt = configure_adamw(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99), eps=1e-7)
        decay, no_decay = opt.param_groups
        assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
        assert decay["betas"] == (0.9, 0.99) and decay["eps"] == 1e-7
        assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
        assert any(p is model.wte.weight for p in decay["params"])
        ids = [id(p) for g in opt.param_groups for p in g["params"]]
        assert sorted(ids) == sorted(id(p) for p in model.parameters())


def test_state_dict_roundtrip_gives_the_same_model():
    cfg = GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8)
    a = perturb(GPT(cfg))
    tinyllm.manual_seed(99)
    b = GPT(cfg)
    b.load_state_dict(a.state_dict())
    idx = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(a(idx)[0].numpy(), b(idx)[0].numpy())
    assert b.lm_head.weight is b.wte.weight


def test_classifier_pooling_with_right_padding():
    gpt = perturb(GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8)))
    clf = SequenceClassifier(gpt, 3)
    assert clf.pooling == "last"
    clf.eval()
    alone, _ = clf(np.array([[4, 5, 6]]))
    padded, _ = clf(np.array([[4, 5, 6, 0, 9], [4, 5, 6, 7, 7]]), attention_mask=np.array([[1, 1, 1, 0, 0]] + [[1] * 5]))
    np.testing.assert_allclose(padded.numpy()[0], alone.numpy()[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(padded.numpy()[1], alone.numpy()[0])
    bert = perturb(BERT(BertConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0)))
    for pooling in ("cls", "mean", "pooler"):
        c = SequenceClassifier(bert, 2, pooling=pooling)
        one, _ = c(np.array([[1, 4, 5]]))
        two, loss = c(np.array([[1, 4, 5, 0]]), labels=[1], attention_mask=np.array([[1, 1, 1, 0]]))
        np.testing.assert_allclose(two.numpy(), one.numpy(), rtol=1e-4, atol=1e-5)
        assert loss.shape == ()
    with pytest.raises(ValueError, match="pooling must be one of"):
        SequenceClassifier(bert, 2, pooling="max")
    with pytest.raises(ValueError, match="num_classes"):
        SequenceClassifier(bert, 1)
    with pytest.raises(TypeError, match="Backbone interface"):
        SequenceClassifier(object(), 2)
    with pytest.raises(ValueError, match="a GPT backbone takes no segment_ids"):
        clf(np.array([[4, 5, 6]]), segment_ids=np.array([[0, 0, 1]]))
    assert isinstance(gpt, Backbone) and isinstance(bert, Backbone) and not isinstance(object(), Backbone)
    assert (gpt.default_pooling, bert.default_pooling) == ("last", "cls")


def test_classifier_from_backbone_state_and_freezing():
    cfg = GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8)
    trained = perturb(GPT(cfg))
    clf = SequenceClassifier.from_backbone_state("gpt", cfg.to_dict(), trained.state_dict(), 4,
                                                 freeze_backbone=True)
    idx = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(clf.backbone.encode(idx).numpy(), trained.encode(idx).numpy())
    _, loss = clf(idx, labels=[3])
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in clf.backbone.parameters())
    assert clf.classifier.weight.grad is not None
    assert clf.num_parameters(trainable_only=True) == 8 * 4 + 4
    with pytest.raises(KeyError, match="missing"):
        SequenceClassifier.from_backbone_state("gpt", cfg.to_dict(), {"wte.weight": trained.wte.weight.data}, 2)


def test_mean_pool_and_sentence_embeddings():
    h = tinyllm.tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    mask = np.array([[1, 1, 0], [0, 0, 0]])
    out = mean_pool(h, mask).numpy()
    np.testing.assert_allclose(out[0], h.numpy()[0, :2].mean(axis=0))
    np.testing.assert_array_equal(out[1], 0)                          # no real token: zero vector
    np.testing.assert_allclose(mean_pool(h).numpy(), h.numpy().mean(axis=1))
    enc = SentenceEncoder(perturb(GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))))
    enc.train()
    e = enc.embed(np.array([[1, 2, 3], [4, 5, 6]]))
    assert e.shape == (2, 8) and np.allclose(np.linalg.norm(e, axis=1), 1) and enc.training
    with pytest.raises(TypeError, match="encode"):
        SentenceEncoder(tinyllm.nn.Linear(2, 2))


# ----------------------------------------------------------------------------- examples

@pytest.mark.parametrize("script, expect", [
    ("char_gpt.py", "sample (temperature 0.8, top-k 20):"),
    ("bert_finetune.py", "test accuracy:"),
    ("contrastive.py", "paraphrase retrieval on unseen meanings"),
])
def test_example_runs_quick(script, expect):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--quick"], capture_output=True,
                          text=True, timeout=180, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expect in done.stdout
