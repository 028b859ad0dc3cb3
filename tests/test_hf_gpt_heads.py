"""GPT-2 with task heads in Hugging Face's layouts: randomly initialised ``transformers`` models of odd
shapes (vocab 37, 3 heads, 3 layers) are the oracle in float64 (logits to 1e-10, every parameter
gradient to 1e-9 relative) for GPT2ForSequenceClassification, GPT2ForTokenClassification and
GPT2ForQuestionAnswering; tinyllm -> HF directory -> tinyllm is bit-identical for every head (a CRF
tagger's scores included, through crf.safetensors); transformers reads our export and gives the same
logits; what has no layout is refused before anything is written."""
import json

import numpy as np
import pytest

import tinyllm
from tinyllm.models import GPT, GPTConfig, SequenceClassifier
from tinyllm.models.hf_crf import CRF_FILE, read_crf
from tinyllm.models.hf_heads import gpt2_hf_tensors, load_gpt2, save_hf
from tinyllm.models.qa import SpanExtractor
from tinyllm.models.tagging import TokenClassifier

HEADS = ["GPT2ForSequenceClassification", "GPT2ForTokenClassification", "GPT2ForQuestionAnswering"]
SHAPE = dict(vocab_size=37, n_positions=11, n_embd=12, n_layer=3, n_head=3, resid_pdrop=0.0, embd_pdrop=0.0,
             attn_pdrop=0.0, pad_token_id=0, bos_token_id=None, eos_token_id=None)
TAGS = ["O", "B-PER", "I-PER"]


def _hf_model(arch, path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(**SHAPE, num_labels=2 if arch == "GPT2ForQuestionAnswering" else 3,
                                  classifier_dropout=0.0)
    model = getattr(transformers, arch)(cfg).double()
    with torch.no_grad():                                   # move LayerNorm gains/biases off 1/0
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(path, safe_serialization=True)
    return model, torch


def _inputs(arch):
    rng = np.random.default_rng(3)
    idx = rng.integers(1, 37, (2, 9))
    mask = np.ones((2, 9), dtype=np.int64)
    if arch != "GPT2ForQuestionAnswering":
        idx[0, 3] = 0                                       # the pad id inside a text: both skip only trailing ones
        idx[1, 6:], mask[1, 6:] = 0, 0                      # right padding with the pad id
    if arch == "GPT2ForSequenceClassification":
        labels = np.array([2, 0])
    elif arch == "GPT2ForTokenClassification":
        labels = np.where(mask == 1, rng.integers(0, 3, (2, 9)), -100)
    else:
        labels = (np.array([4, 6]), np.array([5, 8]))
    return idx, mask, labels


@pytest.mark.parametrize("arch", HEADS)
def test_logits_and_gradients_match_transformers(arch, tmp_path):
    hf, torch = _hf_model(arch, tmp_path)
    tinyllm.set_default_dtype("float64")
    ours, _, info = load_gpt2(tmp_path)
    assert info["architecture"] == arch
    idx, mask, labels = _inputs(arch)
    t = {"input_ids": torch.tensor(idx), "attention_mask": torch.tensor(mask)}
    hf.eval()
    if arch == "GPT2ForQuestionAnswering":
        out = hf(**t, start_positions=torch.tensor(labels[0]), end_positions=torch.tensor(labels[1]))
        want = [out.start_logits, out.end_logits]
        got, loss = ours(idx, labels[0], labels[1], mask)
    else:
        out = hf(**t, labels=torch.tensor(labels))
        want = [out.logits]
        got, loss = ours(idx, labels, mask)
        got = [got]
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        assert np.abs(g.data - w.detach().numpy()).max() <= 1e-10
        assert np.abs(g.data).max() > 0.1                   # not a comparison of near-zero numbers
    assert abs(float(loss.data) - float(out.loss.detach())) <= 1e-10
    out.loss.backward()
    loss.backward()
    params = dict(ours.named_parameters(remove_duplicate=False))
    grads = {n: (p.grad if p.grad is not None else np.zeros(p.shape)) for n, p in params.items()}
    _, ours_hf = gpt2_hf_tensors(ours, grads)
    hf_grads = {n: p.grad.numpy() for n, p in hf.named_parameters() if p.grad is not None}
    assert set(hf_grads) == set(ours_hf)
    largest = max(np.abs(g).max() for g in hf_grads.values())
    for name, g in hf_grads.items():
        # relative to the gradient's own size; those that vanish in exact arithmetic (key biases: the
        # softmax ignores a shift) are rounding noise, measured against a millionth of the largest
        scale = max(np.abs(g).max(), 1e-6 * largest)
        assert np.abs(ours_hf[name] - g).max() / scale <= 1e-9, name


def _jittered(model, seed=0):
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data += rng.normal(0, 0.1, p.shape).astype(p.dtype)
    return model


def _tinyllm_heads():
    tinyllm.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=29, block_size=8, n_layer=2, n_head=3, n_embd=6))
    return {"GPT2LMHeadModel": lambda: _jittered(GPT(gpt.config)),
            "GPT2ForSequenceClassification": lambda: _jittered(SequenceClassifier(GPT(gpt.config), 3, "last",
                                                                                  bias=False, pad_id=0)),
            "GPT2ForTokenClassification": lambda: _jittered(TokenClassifier(GPT(gpt.config), 3)),
            "crf": lambda: _jittered(TokenClassifier(GPT(gpt.config), 3, crf=True, tags=TAGS, scheme="BIO")),
            "GPT2ForQuestionAnswering": lambda: _jittered(SpanExtractor(GPT(gpt.config)))}


@pytest.mark.parametrize("which", list(_tinyllm_heads()))
def test_tinyllm_round_trip_is_bit_identical(which, tmp_path):
    tinyllm.set_default_dtype("float32")
    model = _tinyllm_heads()[which]()
    arch = save_hf(model, tmp_path, labels=TAGS if which != "GPT2ForQuestionAnswering" else None)
    assert arch == ("GPT2ForTokenClassification" if which == "crf" else which)
    assert (tmp_path / CRF_FILE).exists() == (which == "crf")
    again, _, info = load_gpt2(tmp_path)
    assert info["architecture"] == arch and type(again) is type(model)
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    for k in a:                      # a head's layout has no lm_head: an untied one would stay fresh (tied here)
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    if which == "crf":
        assert again.use_crf and again.crf.scheme == "BIO"
        idx = np.array([[3, 4, 5, 6]])
        assert again.predict(idx, np.ones((1, 4), bool)) == model.predict(idx, np.ones((1, 4), bool))
    if which.endswith("Classification") or which == "crf":
        assert info["labels"] == TAGS


@pytest.mark.parametrize("which", ["GPT2ForSequenceClassification", "crf", "GPT2ForQuestionAnswering"])
def test_transformers_reads_our_export(which, tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    tinyllm.set_default_dtype("float64")
    model = _tinyllm_heads()[which]().eval()
    arch = save_hf(model, tmp_path, labels=TAGS if which != "GPT2ForQuestionAnswering" else None)
    theirs = getattr(transformers, arch).from_pretrained(tmp_path, torch_dtype=torch.float64).eval()
    idx = np.array([[5, 0, 7, 9, 2, 11, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8]])   # row 0: right-padded with pad id 0
    mask = (np.arange(8)[None] < np.array([[6], [8]])).astype(np.int64)
    with torch.no_grad():
        out = theirs(input_ids=torch.tensor(idx), attention_mask=torch.tensor(mask))
    if arch == "GPT2ForQuestionAnswering":
        (s, e), _ = model(idx, attention_mask=mask)
        got, want = np.stack([s.data, e.data]), np.stack([out.start_logits.numpy(), out.end_logits.numpy()])
    else:
        logits, _ = model(idx, attention_mask=mask)
        got, want = logits.data, out.logits.numpy()
    assert np.abs(got - want).max() <= 1e-10
    if which != "GPT2ForQuestionAnswering":
        assert theirs.config.id2label[1] == "B-PER"


def test_what_has_no_layout_is_refused_before_writing(tmp_path):
    gpt = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=4))
    with pytest.raises(ValueError, match="without bias; this classifier has pooling 'last', a bias"):
        save_hf(SequenceClassifier(gpt, 2, "last"), tmp_path)          # a bias: GPT-2's score has none
    with pytest.raises(ValueError, match="pooling 'mean'"):
        save_hf(SequenceClassifier(gpt, 2, "mean", bias=False), tmp_path)
    with pytest.raises(TypeError, match="no Hugging Face layout"):
        save_hf(tinyllm.nn.Linear(2, 2), tmp_path)
    with pytest.raises(ValueError, match="bias=False"):
        save_hf(GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=4, bias=False)), tmp_path)
    assert not any(tmp_path.iterdir())


def test_last_pooling_by_pad_id_is_hugging_faces_rule():
    gpt = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=4))
    by_mask, by_pad = SequenceClassifier(gpt, 2, "last"), SequenceClassifier(gpt, 2, "last", pad_id=0)
    h = tinyllm.tensor(np.arange(2 * 5 * 4, dtype=np.float64).reshape(2, 5, 4))
    idx = np.array([[3, 0, 4, 0, 0], [0, 0, 0, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(by_pad.pool(h, mask, idx).data, h.data[[0, 1], [2, 0]])   # rightmost non-pad
    np.testing.assert_array_equal(by_mask.pool(h, mask, idx).data, h.data[[0, 1], [3, 4]])  # the mask's last
    with pytest.raises(ValueError, match="pad_id"):
        SequenceClassifier(gpt, 2, "mean", pad_id=0)


@pytest.mark.parametrize("change, match", [
    ({"architectures": ["GPT2ForSequenceClassification"], "pad_token_id": None}, "needs pad_token_id"),
    ({"architectures": ["GPT2DoubleHeadsModel"]}, "holds none of"),
])
def test_bad_head_configs_name_the_key(change, match, tmp_path):
    model = SequenceClassifier(GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=4)), 2,
                               "last", bias=False, pad_id=0)
    save_hf(model, tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, **change}))
    with pytest.raises(ValueError, match=match):
        load_gpt2(tmp_path)


def test_bad_crf_side_files_are_refused(tmp_path):
    from safetensors.numpy import save_file
    model = TokenClassifier(GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=4)), 3,
                            crf=True, tags=TAGS, scheme="BIO")
    save_hf(model, tmp_path, labels=TAGS)
    assert read_crf(tmp_path, 3)[0] == "BIO"
    with pytest.raises(ValueError, match=r"shape \(4,\) for 4 tags"):
        read_crf(tmp_path, 4)
    good = {"start_transitions": np.zeros(3), "end_transitions": np.zeros(3), "transitions": np.zeros((3, 3))}
    for tensors, meta, match in [({**good, "transitions": np.full((3, 3), np.nan)}, None, "not finite"),
                                 (good, {"format": "tinyllm-crf", "version": "1", "scheme": "IOB9"}, "scheme"),
                                 (good, {"format": "other"}, "not a tinyllm-crf"),
                                 ({"start_transitions": np.zeros(3)}, None, "expected the tensors")]:
        save_file(tensors, str(tmp_path / CRF_FILE), metadata=meta or {"format": "tinyllm-crf", "version": "1",
                                                                        "scheme": ""})
        with pytest.raises(ValueError, match=match):
            load_gpt2(tmp_path)
