"""Hugging Face BERT directories: randomly initialised ``transformers`` models of odd shapes are the
oracle (float64: logits to 1e-10, every parameter gradient to 1e-9 relative, for each head), the
round trip tinyllm -> HF -> tinyllm is bit-identical, bad configs are one clear error, WordPiece
tokenizers load from tokenizer.json and vocab.txt; BERT's exact GELU is functional's, checked against torch."""
import json

import numpy as np
import pytest

import tinyllm
from tinyllm import functional as F
from gradcases import grad_case
from tinyllm.gradcheck import gradcheck
from tinyllm.models import BERT, BertConfig, SequenceClassifier
from tinyllm.models.hf_bert import bert_config_from_hf, hf_tensors, load_bert, save_bert
from tinyllm.models.hf_wordpiece import WordPieceTokenizer, load_wordpiece
from tinyllm.models.tagging import TokenClassifier

ARCHS = ["BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification",
         "BertForQuestionAnswering"]
SHAPE = dict(vocab_size=37, hidden_size=12, num_hidden_layers=3, num_attention_heads=3, intermediate_size=48,
             max_position_embeddings=11, type_vocab_size=2, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0, num_labels=3, pad_token_id=0)


def test_bert_gelu_is_the_exact_one_of_functional_and_matches_torch():
    """BERT's "gelu" is ``functional.gelu(approximate="none")`` (gradient-checked with the op cases);
    its float32 kernel and its float64 reference both agree with torch's erf GELU, values and gradients."""
    torch = pytest.importorskip("torch")
    bert = BERT(BertConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=4, exact_gelu=True))
    assert bert.h[0].mlp.act.approximate == bert.mlm.act.approximate == "none"
    x = np.random.default_rng(1).normal(0, 3, 100_000)          # large enough for the kernel's thread blocks
    for dtype, tol in (("float64", 1e-14), ("float32", 2e-6)):
        tinyllm.set_default_dtype(dtype)
        tx = torch.tensor(x.astype(dtype), requires_grad=True)
        torch.nn.functional.gelu(tx).sum().backward()
        ours = tinyllm.tensor(x.astype(dtype), requires_grad=True)
        y = F.gelu(ours, approximate="none")
        y.sum().backward()
        assert y.dtype == np.dtype(dtype)
        np.testing.assert_allclose(y.data, torch.nn.functional.gelu(tx).detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(ours.grad, tx.grad.numpy(), rtol=tol, atol=tol)


@grad_case("GeluExact")
def test_exact_gelu_gradient_in_float64():
    x = tinyllm.tensor(np.random.default_rng(0).normal(0, 2, (3, 5)), requires_grad=True)
    gradcheck(lambda t: F.gelu(t, approximate="none"), x)


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


# ----------------------------------------------------------------------------- Hugging Face directories in the CLI

from click.testing import CliRunner  # noqa: E402

from tinyllm.cli import cli  # noqa: E402

WORDS = ("first citizen before we proceed any further hear me speak all resolved rather to die than famish "
         "caius marcius is chief enemy the people second one word good citizens who says ? , . : !").split()


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def tiny_bert_dir(path, head=None):
    """A small BERT with a WordPiece vocabulary of WORDS, saved as a Hugging Face directory (no torch needed)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = load_wordpiece(path)
    (path / "vocab.txt").unlink()
    tinyllm.manual_seed(0)
    model = BERT(BertConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=1, n_head=2, n_embd=16, dropout=0.0,
                            exact_gelu=True))
    model = head(model) if head else model
    save_bert(model, path, tokenizer=tok, labels=["O", "B-PER", "I-PER"] if head else None)
    return path


TAGGED = ("First B-PER\nCitizen I-PER\nspeak O\n\nall B-PER\nspeak O\n\nhear O\nme O\n, O\nCaius B-PER\n"
          "Marcius I-PER\n\nthe O\npeople O\nsay O\n\nSecond B-PER\nCitizen I-PER\n!\tO\n")


def test_finetune_tag_with_crf_from_a_hf_bert_dir_then_eval_and_info(tmp_path):
    src = tiny_bert_dir(tmp_path / "hf-bert")
    data = tmp_path / "ner.conll"
    data.write_text(TAGGED)
    out = tmp_path / "tagger"
    code, text = run("finetune", "--ckpt", src, "--data", data, "--task", "tag", "--crf", "--iters", "4",
                     "--eval-interval", "2", "--lr", "1e-2", "--out", out)
    assert code == 0, text
    assert "5 sentences, 16 words, 3 tags (O, B-PER, I-PER)" in text
    code, text = run("eval", "--ckpt", out, "--data", data)
    assert code == 0 and "entities    precision" in text and "F1" in text, text
    code, text = run("info", "--ckpt", out)
    assert code == 0 and "tagger" in text and "wordpiece" in text, text
    code, text = run("finetune", "--task", "tag", "--out", out, "--resume", "--iters", "6", "--data", data)
    assert code == 0 and "resuming at iteration 4" in text, text


def test_finetune_qa_from_a_hf_bert_dir_then_eval(tmp_path):
    src = tiny_bert_dir(tmp_path / "hf-bert")
    ctx = "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. " * 3
    rows = [{"context": ctx, "question": q, "answer": a, "answer_start": ctx.index(a, i * 10)}
            for i, (q, a) in enumerate([("who says speak?", "All"), ("who says hear me?", "First Citizen"),
                                        ("who says proceed?", "First Citizen"), ("who says speak , speak ?", "All")])]
    data = tmp_path / "qa.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "reader"
    code, text = run("finetune", "--ckpt", src, "--data", data, "--task", "qa", "--stride", "8", "--iters", "3",
                     "--eval-interval", "3", "--out", out)
    assert code == 0 and "4 questions" in text and "stride 8" in text, text
    code, text = run("eval", "--ckpt", out, "--data", data)
    assert code == 0 and "exact match" in text and "over 4 questions" in text, text


def test_eval_reads_a_hf_token_classification_dir(tmp_path):
    src = tiny_bert_dir(tmp_path / "hf-tagger", head=lambda b: TokenClassifier(b, 3))
    data = tmp_path / "ner.conll"
    data.write_text(TAGGED)
    code, text = run("eval", "--ckpt", src, "--data", data)
    assert code == 0 and "entities    precision" in text, text
    code, text = run("info", "--ckpt", src)
    assert code == 0 and "tagger" in text, text


def test_finetune_classify_from_a_hf_gpt2_dir(tmp_path):
    from tinyllm.data import BPETokenizer
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.models.hf import save_pretrained
    tok = BPETokenizer.train([" ".join(WORDS)] * 5, vocab_size=300)
    save_pretrained(GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)),
                    tmp_path / "gpt2", tokenizer=tok)
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                            for t, lab in [("good citizens", "pos"), ("chief enemy", "neg")] * 4))
    code, text = run("finetune", "--ckpt", tmp_path / "gpt2", "--data", data, "--task", "classify", "--iters", "2",
                     "--eval-interval", "2", "--out", tmp_path / "clf")
    assert code == 0, text


def test_bad_tag_file_in_the_cli_is_one_line(tmp_path):
    src = tiny_bert_dir(tmp_path / "hf-bert")
    data = tmp_path / "bad.conll"
    data.write_text("First B-PER\nlonely\n")
    code, text = run("finetune", "--ckpt", src, "--data", data, "--task", "tag", "--out", tmp_path / "x")
    assert code == 1 and f"{data}:2: expected 'token tag'" in text and text.count("\n") == 1, text
    assert not (tmp_path / "x").exists()
