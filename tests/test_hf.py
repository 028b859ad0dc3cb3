"""Hugging Face GPT-2 interop: a randomly initialized ``transformers.GPT2LMHeadModel``
saved with ``save_pretrained`` loads into tinyllm and gives the same logits,
loss and greedy tokens; our ``save_pretrained`` output loads back into
transformers; bad directories give clear errors. Tests that need
transformers/torch skip without them; the loader itself needs neither."""
import json

import numpy as np
import pytest

import tinyllm
from tinyllm import backend
from tinyllm.decoding import generate
from tinyllm.models import GPT, GPTConfig
from tinyllm.models.hf import load_pretrained, save_pretrained

VOCAB, POSITIONS = 99, 32


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A small random GPT-2 (weights jittered so biases and LayerNorm gains are not trivial), saved by HF."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_positions=POSITIONS, n_embd=32, n_layer=2, n_head=4,
                                  bos_token_id=None, eos_token_id=None)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("hf_gpt2")
    model.save_pretrained(path)
    return path


def hf_model(path, dtype):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = transformers.GPT2LMHeadModel.from_pretrained(path).eval()
    return model.to(torch.float64) if dtype == "float64" else model


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-4), ("float64", 1e-9)])
def test_logits_and_loss_match_transformers(hf_dir, dtype, tol, record_property):
    torch = pytest.importorskip("torch")
    tinyllm.set_default_dtype(dtype)
    ours = GPT.from_pretrained(hf_dir)
    assert not ours.training and ours.wte.weight.dtype == np.dtype(dtype)
    theirs = hf_model(hf_dir, dtype)
    idx = np.random.default_rng(0).integers(0, VOCAB, size=(3, POSITIONS))
    with torch.no_grad():
        ref = theirs(torch.tensor(idx)).logits
        ref_loss = torch.nn.functional.cross_entropy(ref[:, :-1].reshape(-1, VOCAB), torch.tensor(idx[:, 1:]).reshape(-1))
    targets = np.full_like(idx, -100)
    targets[:, :-1] = idx[:, 1:]
    logits, loss = ours(idx, targets)
    diff = float(np.abs(logits.numpy() - ref.numpy()).max())
    loss_diff = abs(loss.item() - ref_loss.item())
    print(f"\n{dtype}: max |logits - HF logits| = {diff:.3g}, |loss - HF loss| = {loss_diff:.3g}")
    record_property(f"max_logit_diff_{dtype}", diff)
    record_property(f"loss_diff_{dtype}", loss_diff)
    assert logits.dtype == np.dtype(dtype)
    assert diff <= tol and loss_diff <= tol
    assert float(np.abs(ref.numpy()).max()) > 1.0          # the comparison is not between near-zero numbers


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generation_matches_transformers(hf_dir, use_cache):
    torch = pytest.importorskip("torch")
    ours = GPT.from_pretrained(hf_dir)
    theirs = hf_model(hf_dir, "float32")
    prompt = np.random.default_rng(1).integers(0, VOCAB, size=(2, 6))
    with torch.no_grad():
        ref = theirs.generate(torch.tensor(prompt), attention_mask=torch.ones(prompt.shape, dtype=torch.long),
                              do_sample=False, max_new_tokens=20, min_new_tokens=20, pad_token_id=0).numpy()
    out = generate(ours, prompt, 20, greedy=True, use_cache=use_cache)
    assert ref.shape == out.shape == (2, 26)
    np.testing.assert_array_equal(out, ref)
    assert len(set(out[0, 6:].tolist())) > 1


def test_our_save_pretrained_loads_into_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tinyllm.manual_seed(0)
    ours = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16))
    for p in ours.parameters():
        p.data += backend.asarray(np.random.default_rng(0).normal(0, 0.1, p.shape).astype(p.dtype))
    save_pretrained(ours, tmp_path)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = np.random.default_rng(2).integers(0, 50, size=(2, 16))
    with torch.no_grad():
        ref = theirs(torch.tensor(idx)).logits.numpy()
    assert np.abs(ours(idx)[0].numpy() - ref).max() <= 1e-4


# ----------------------------------------------------------------------------- without transformers

def saved_model(tmp_path, **overrides):
    cfg = dict(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8)
    cfg.update(overrides)
    model = GPT(GPTConfig(**cfg))
    save_pretrained(model, tmp_path)
    return model


@pytest.mark.parametrize("tied", [True, False])
def test_save_and_load_roundtrip(tmp_path, tied):
    model = saved_model(tmp_path, tie_weights=tied)
    loaded, tokenizer = load_pretrained(tmp_path)
    assert tokenizer is None and loaded.config == model.config
    for (n, a), (m, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n == m
        np.testing.assert_array_equal(a, b)
    assert (loaded.lm_head.weight is loaded.wte.weight) == tied


def test_missing_transformer_prefix_and_old_buffers_are_tolerated(tmp_path):
    from safetensors.numpy import load_file, save_file
    model = saved_model(tmp_path)
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(tmp_path / "model.safetensors").items()}
    tensors["h.0.attn.bias"] = np.tril(np.ones((1, 1, 8, 8), dtype=np.float32))   # GPT-2's old mask buffer
    tensors["h.0.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    save_file(tensors, tmp_path / "model.safetensors")
    loaded = GPT.from_pretrained(tmp_path)
    np.testing.assert_array_equal(loaded.h[0].attn.c_attn.weight.numpy(), model.h[0].attn.c_attn.weight.numpy())


def test_tokenizer_is_attached(tmp_path):
    import tokenizers

    from tinyllm.data import BPETokenizer
    text = ["the cat sat on the mat", "the dog sat on the log"] * 20
    bpe = BPETokenizer.train(text, vocab_size=280)
    saved_model(tmp_path, vocab_size=bpe.vocab_size)
    bpe.save(tmp_path / "tokenizer.json")
    model = GPT.from_pretrained(tmp_path)
    assert model.tokenizer is not None and model.tokenizer.decode(model.tokenizer.encode("the cat")) == "the cat"
    # the older layout: vocab.json + merges.txt
    (tmp_path / "tokenizer.json").unlink()
    tokenizers.Tokenizer.from_str(bpe.to_json()).model.save(str(tmp_path))
    old = GPT.from_pretrained(tmp_path).tokenizer
    assert old.encode("the dog sat") == bpe.encode("the dog sat")
    assert old.decode(old.encode("the dog sat")) == "the dog sat"


def test_loader_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no config.json"):
        load_pretrained(tmp_path)
    saved_model(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "model.safetensors").rename(tmp_path / "weights.bak")
    with pytest.raises(ValueError, match="no model.safetensors"):
        load_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="safetensors"):
        load_pretrained(tmp_path)
    (tmp_path / "weights.bak").rename(tmp_path / "model.safetensors")
    for change, match in [({"model_type": "bert"}, "unsupported model_type 'bert'"),
                          ({"activation_function": "relu"}, "activation_function 'relu'"),
                          ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon"),
                          ({"n_embd": 16}, r"tensor h.0.attn.c_attn.bias has shape \(24,\) .* implies \(48,\)"),
                          ({"n_layer": 2}, "missing"),
                          ({"n_head": 3}, "divisible")]:
        (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(ValueError, match=match):
            load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        load_pretrained(tmp_path)
