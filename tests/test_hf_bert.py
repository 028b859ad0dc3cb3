"""Hugging Face BERT directories: randomly initialised ``transformers`` models of odd shapes are the
oracle (float64: logits to 1e-10, every parameter gradient to 1e-9 relative, for each head), the
round trip tinyllm -> HF -> tinyllm is bit-identical, bad configs are one clear error, WordPiece
tokenizers load from tokenizer.json and vocab.txt; the exact GELU is gradient-checked."""
import json

import numpy as np
import pytest

import tinyllm
from gradcases import grad_case
from tinyllm.gradcheck import gradcheck
from tinyllm.models import BERT, BertConfig, SequenceClassifier
from tinyllm.models.exact_gelu import exact_gelu
from tinyllm.models.hf_bert import bert_config_from_hf, hf_tensors, load_bert, save_bert
from tinyllm.models.hf_wordpiece import WordPieceTokenizer, load_wordpiece
from tinyllm.models.qa import SpanExtractor
from tinyllm.models.tagging import TokenClassifier

ARCHS = ["BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification",
         "BertForQuestionAnswering"]
SHAPE = dict(vocab_size=37, hidden_size=12, num_hidden_layers=3, num_attention_heads=3, intermediate_size=48,
             max_position_embeddings=11, type_vocab_size=2, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0, num_labels=3, pad_token_id=0)


@grad_case("ExactGelu")
def test_exact_gelu_values_and_gradient():
    import math
    x = np.linspace(-5, 5, 41)
    want = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(exact_gelu(tinyllm.tensor(x)).data, want, rtol=0, atol=1e-15)
    assert exact_gelu(tinyllm.tensor(x.astype(np.float32))).dtype == np.float32
    gradcheck(exact_gelu, tinyllm.tensor(np.random.default_rng(0).normal(0, 2, (3, 5)), requires_grad=True))


def test_exact_gelu_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).normal(0, 3, 200)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.gelu(tx).sum().backward()
    ours = tinyllm.tensor(x, requires_grad=True)
    y = exact_gelu(ours)
    y.sum().backward()
    np.testing.assert_allclose(y.data, torch.nn.functional.gelu(tx).detach().numpy(), atol=1e-14)
    np.testing.assert_allclose(ours.grad, tx.grad.numpy(), atol=1e-14)


def _hf_model(arch, tmp_path, **changes):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    if arch == "BertForQuestionAnswering":
        changes = {"num_labels": 2, **changes}
    cfg = transformers.BertConfig(**{**SHAPE, **changes})
    model = getattr(transformers, arch)(cfg).double()
    with torch.no_grad():                                   # move LayerNorm gains/biases off 1/0
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(tmp_path, safe_serialization=True)
    return model, torch


def _inputs(arch):
    rng = np.random.default_rng(3)
    idx = rng.integers(1, 37, (2, 9))
    seg = np.array([[0] * 4 + [1] * 5, [0] * 6 + [1] * 3])
    mask = np.ones((2, 9), dtype=np.int64)
    if arch in ("BertForMaskedLM", "BertForTokenClassification", "BertForSequenceClassification"):
        mask[1, 7:] = 0
    if arch == "BertForMaskedLM":
        labels = np.where(rng.random((2, 9)) < 0.4, rng.integers(0, 37, (2, 9)), -100)
        labels[0, 0] = 5
    elif arch == "BertForTokenClassification":
        labels = np.where(mask == 1, rng.integers(0, 3, (2, 9)), -100)
    elif arch == "BertForSequenceClassification":
        labels = np.array([2, 0])
    else:
        labels = (np.array([4, 6]), np.array([5, 8]))
    return idx, seg, mask, labels


@pytest.mark.parametrize("arch", ARCHS)
def test_logits_and_gradients_match_transformers(arch, tmp_path):
    hf, torch = _hf_model(arch, tmp_path)
    tinyllm.set_default_dtype("float64")
    ours, _, info = load_bert(tmp_path)
    assert info["architecture"] == arch
    idx, seg, mask, labels = _inputs(arch)
    t = {k: torch.tensor(v) for k, v in dict(input_ids=idx, token_type_ids=seg, attention_mask=mask).items()}
    hf.eval()
    if arch == "BertForQuestionAnswering":
        out = hf(**t, start_positions=torch.tensor(labels[0]), end_positions=torch.tensor(labels[1]))
        want = [out.start_logits, out.end_logits]
        got, loss = ours(idx, labels[0], labels[1], mask, segment_ids=seg)
    else:
        out = hf(**t, labels=torch.tensor(labels))
        want = [out.logits]
        if arch == "BertForMaskedLM":
            got, loss = ours(idx, labels, mask, seg)
        else:
            got, loss = ours(idx, labels, mask, segment_ids=seg)
        got = [got]
    for g, w in zip(got, want):
        assert np.abs(g.data - w.detach().numpy()).max() <= 1e-10
    assert abs(float(loss.data) - float(out.loss.detach())) <= 1e-10
    out.loss.backward()
    loss.backward()
    grads = {n: p.grad for n, p in ours.named_parameters(remove_duplicate=False) if p.grad is not None}
    _, ours_hf = hf_tensors(ours, grads | {n: np.zeros(p.shape) for n, p in ours.named_parameters(remove_duplicate=False)
                                           if n not in grads})
    hf_grads = {n: p.grad.numpy() for n, p in hf.named_parameters() if p.grad is not None}
    largest = max(np.abs(g).max() for g in hf_grads.values())
    assert set(hf_grads) <= set(ours_hf) | {"cls.predictions.decoder.weight"}
    for name, g in hf_grads.items():
        if name == "cls.predictions.decoder.weight":
            continue                                        # tied: the same tensor as the word embeddings
        mine = ours_hf[name]
        # relative to the gradient's own size; some vanish in exact arithmetic (key biases: softmax ignores a
        # shift; for QA the last LayerNorm bias shifts every logit alike) and are rounding noise, measured
        # against a millionth of the largest gradient instead
        scale = max(np.abs(g).max(), 1e-6 * largest)
        assert np.abs(mine - g).max() / scale <= 1e-9, name


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_is_bit_identical_and_transformers_reads_our_export(arch, tmp_path):
    hf, torch = _hf_model(arch, tmp_path / "hf")
    tinyllm.set_default_dtype("float64")
    ours, _, _ = load_bert(tmp_path / "hf")
    save_bert(ours, tmp_path / "ours", labels=["A", "B", "C"] if arch not in ARCHS[::3] else None)
    again, _, info = load_bert(tmp_path / "ours")
    a, b = ours.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    for k in a:                      # a head's layout has no MLM head: the backbone's stays freshly initialised
        assert np.array_equal(a[k], b[k]) or k.startswith("backbone.mlm."), k
    import transformers
    back = getattr(transformers, arch).from_pretrained(tmp_path / "ours", torch_dtype=torch.float64)
    ref = {k: v for k, v in hf.state_dict().items() if "position_ids" not in k}
    got = back.state_dict()
    for k, v in ref.items():
        assert torch.equal(got[k], v), k
    if arch in ("BertForSequenceClassification", "BertForTokenClassification"):
        assert info["labels"] == ["A", "B", "C"] and back.config.id2label[2] == "C"


@pytest.mark.parametrize("tie", [True, False])
def test_tinyllm_bert_round_trip_through_hf_is_bit_identical(tie, tmp_path):
    tinyllm.set_default_dtype("float32")
    model = BERT(BertConfig(vocab_size=29, block_size=8, n_layer=2, n_head=3, n_embd=6, exact_gelu=True,
                            tie_weights=tie))
    for p in model.parameters():
        p.data += np.random.default_rng(0).normal(0, 0.1, p.shape).astype(p.dtype)
    save_bert(model, tmp_path)
    again, _, info = load_bert(tmp_path)
    assert info["architecture"] == "BertForMaskedLM" and again.config == model.config
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def test_bare_bert_model_and_sharded_files(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    tinyllm.set_default_dtype("float64")
    hf = transformers.BertModel(transformers.BertConfig(**SHAPE)).double().eval()
    hf.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    ours, tok, info = load_bert(tmp_path)
    assert isinstance(ours, BERT) and info["architecture"] == "BertModel" and tok is None
    idx = np.array([[2, 5, 7, 9]])
    h = ours.encode(idx)
    assert np.abs(h.data - hf(torch.tensor(idx)).last_hidden_state.detach().numpy()).max() <= 1e-10


@pytest.mark.parametrize("key, value, match", [
    ("hidden_act", "relu", "hidden_act 'relu'"),
    ("position_embedding_type", "relative_key", "position_embedding_type"),
    ("intermediate_size", 40, "intermediate_size 40"),
    ("is_decoder", True, "is_decoder"),
    ("attention_probs_dropout_prob", 0.3, "attention_probs_dropout_prob"),
    ("model_type", "roberta", "model_type 'roberta'"),
    ("num_attention_heads", 5, "divisible"),
    ("hidden_size", "big", "hidden_size must be a positive integer"),
])
def test_unsupported_configs_name_the_key(key, value, match):
    cfg = {"model_type": "bert", **SHAPE, key: value}
    with pytest.raises(ValueError, match=match):
        bert_config_from_hf(cfg)


def test_config_mapping_keeps_eps_and_gelu():
    c = bert_config_from_hf({"model_type": "bert", **SHAPE, "layer_norm_eps": 1e-7, "hidden_act": "gelu_new"})
    assert (c.eps, c.exact_gelu, c.block_size, c.n_embd) == (1e-7, False, 11, 12)
    assert bert_config_from_hf({"model_type": "bert", **SHAPE}).exact_gelu


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    pytest.importorskip("transformers")
    from safetensors.numpy import load_file, save_file
    _hf_model("BertForTokenClassification", tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    del tensors["bert.encoder.layer.1.output.dense.bias"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="layer.1.output.dense.bias is missing"):
        load_bert(tmp_path)
    tensors["bert.encoder.layer.1.output.dense.bias"] = np.zeros(12)
    tensors["bert.extra.weight"] = np.zeros(3)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="bert.extra.weight do not belong"):
        load_bert(tmp_path)


def test_export_refuses_what_hf_cannot_hold(tmp_path):
    bert = BERT(BertConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=4))
    with pytest.raises(ValueError, match="CRF"):
        save_bert(TokenClassifier(bert, 3, crf=True), tmp_path)
    with pytest.raises(ValueError, match="pooling 'pooler'"):
        save_bert(SequenceClassifier(bert, 2, "cls"), tmp_path)
    other = tinyllm.nn.Module()
    other.backbone = bert
    with pytest.raises(TypeError, match="no Hugging Face BERT layout"):
        save_bert(other, tmp_path)
    with pytest.raises(TypeError, match="heads on a BERT"):
        save_bert(bert.mlm, tmp_path)
    assert not any(tmp_path.iterdir())                     # nothing written


def test_wordpiece_from_vocab_txt_and_tokenizer_json(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "first", "citizen", "cit", "##izen", "speak", ",", "."]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = load_wordpiece(tmp_path)
    assert isinstance(tok, WordPieceTokenizer) and tok.vocab_size == len(vocab)
    assert tok.encode("First Citizen, speak.") == [5, 6, 10, 9, 11]
    assert (tok.pad_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 2, 3, 4)
    ids, offsets = tok.encode_with_offsets("Speak citizen")
    assert offsets == [(0, 5), (6, 13)]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    assert load_wordpiece(tmp_path).encode("First") == [1]
    (tmp_path / "tokenizer.json").write_text(tok.to_json())
    assert load_wordpiece(tmp_path).encode("first citizen") == [5, 6]
    transformers = pytest.importorskip("transformers")
    (tmp_path / "tokenizer.json").unlink()
    (tmp_path / "tokenizer_config.json").unlink()
    ref = transformers.BertTokenizerFast.from_pretrained(tmp_path)
    assert ref("First Citizen, speak.", add_special_tokens=False)["input_ids"] == tok.encode("First Citizen, speak.")
