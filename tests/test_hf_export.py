"""``tinyllm export``: runs trained and fine-tuned by the CLI become Hugging Face directories that
transformers reads with the same logits (and the same ids from the exported tokenizer), that every
tinyllm command reads back with the same results, written atomically, never over a non-empty
directory without --force; what has no layout is one clear error."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import tinyllm
from tinyllm.cli import cli
from tinyllm.train.restore import restore_model

GPT = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
       "--eval-interval", "2", "--eval-iters", "1"]
REVIEWS = [("a fine and noble speech", "pos"), ("a vile and wicked deed", "neg")] * 4


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A character-level GPT run and a classifier fine-tuned from it, both by the CLI."""
    tinyllm.set_default_dtype("float32")
    root = tmp_path_factory.mktemp("export")
    code, text = run("train", *GPT, "--iters", "2", "--out", root / "lm")
    assert code == 0, text
    data = root / "reviews.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in REVIEWS))
    code, text = run("finetune", "--ckpt", root / "lm", "--data", data, "--task", "classify", "--iters", "2",
                     "--eval-interval", "2", "--out", root / "clf")
    assert code == 0, text
    return root


def test_gpt_run_exports_as_gpt2_lm_head_model(runs, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    code, text = run("export", "--ckpt", runs / "lm", "--out", tmp_path / "hf")
    assert code == 0 and "GPT2LMHeadModel" in text and "tokenizer.json" in text, text
    ours = restore_model(runs / "lm")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "hf" / "tokenizer.json"))
    text = "Citizen:\nWe are"
    ids = ours.tokenizer.encode(text)
    assert hf_tok(text)["input_ids"] == ids and hf_tok.decode(ids) == text
    with torch.no_grad():
        ref = theirs(torch.tensor([ids])).logits.numpy()
    assert np.abs(ours.model(np.array([ids]))[0].numpy() - ref).max() <= 1e-5
    again = restore_model(tmp_path / "hf")                    # and tinyllm reads it back: same weights, tokenizer
    assert again.tokenizer.kind == "char" and again.tokenizer.encode(text) == ids
    a, b = ours.model.state_dict(), again.model.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_gpt_classifier_exports_and_pools_as_transformers_does(runs, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    code, text = run("export", "--ckpt", runs / "clf", "--out", tmp_path / "hf")
    assert code == 0 and "GPT2ForSequenceClassification" in text and "labels neg, pos" in text, text
    ours = restore_model(runs / "clf")
    theirs = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    assert theirs.config.pad_token_id == ours.model.pad_id and theirs.config.id2label == {0: "neg", 1: "pos"}
    from tinyllm.train.data import classification_arrays
    batch = classification_arrays([t for t, _ in REVIEWS[:2]] + ["a speech"], np.zeros(3, int), ours.tokenizer,
                                  16, "gpt")                  # padded as tinyllm pads: the same rows for both
    with torch.no_grad():
        ref = theirs(input_ids=torch.tensor(batch["idx"]), attention_mask=torch.tensor(batch["attention_mask"]))
    logits, _ = ours.model(batch["idx"], attention_mask=batch["attention_mask"])
    assert np.abs(logits.numpy() - ref.logits.numpy()).max() <= 1e-5
    data = runs / "reviews.jsonl"
    assert run("eval", "--ckpt", tmp_path / "hf", "--data", data)[1].splitlines()[-3:] == \
        run("eval", "--ckpt", runs / "clf", "--data", data)[1].splitlines()[-3:]


def test_out_is_never_overwritten_without_force(runs, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, text = run("export", "--ckpt", runs / "lm", "--out", out)
    assert code == 1 and "is not empty; pass --force" in text and text.count("\n") == 1, text
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    code, text = run("export", "--ckpt", runs / "lm", "--out", out, "--force")     # not an export: kept
    assert code == 1 and "which an export does not write" in text and text.count("\n") == 1, text
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "notes.txt").unlink()
    for _ in range(2):                                                         # an export replaced by --force
        code, text = run("export", "--ckpt", runs / "lm", "--out", out, "--force")
        assert code == 0, text
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]      # no temporary directory left


def test_a_failed_export_leaves_out_as_it_was(runs, tmp_path):
    out = tmp_path / "hf"
    code, text = run("export", "--ckpt", runs / "lm", "--out", out)
    assert code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, text = run("quantize", "--ckpt", runs / "lm", "--out", tmp_path / "q")
    assert code == 0, text
    code, text = run("export", "--ckpt", tmp_path / "q", "--out", out, "--force")
    assert code == 1 and "int8-quantized" in text and text.count("\n") == 1, text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_seq2seq_runs_are_refused(tmp_path):
    pairs = tmp_path / "copy.tsv"
    pairs.write_text("".join(f"{w}\t{' '.join(w.upper())}\n" for w in ["ab", "bca", "cab", "abc"] * 5))
    code, text = run("train", "--model", "seq2seq", "--data", pairs, *GPT[:6], "--block-size", "8", "--iters", "1",
                     "--eval-interval", "1", "--eval-iters", "1", "--out", tmp_path / "s2s")
    assert code == 0, text
    code, text = run("export", "--ckpt", tmp_path / "s2s", "--out", tmp_path / "hf")
    assert code == 1 and "seq2seq" in text and text.count("\n") == 1, text
    assert not (tmp_path / "hf").exists()


def test_bert_crf_tagger_round_trips_through_export(tmp_path):
    from test_hf_bert import TAGGED, tiny_bert_dir
    src = tiny_bert_dir(tmp_path / "hf-bert")
    data = tmp_path / "ner.conll"
    data.write_text(TAGGED)
    code, text = run("finetune", "--ckpt", src, "--data", data, "--task", "tag", "--crf", "--iters", "3",
                     "--eval-interval", "3", "--lr", "1e-2", "--out", tmp_path / "tagger")
    assert code == 0, text
    code, text = run("export", "--ckpt", tmp_path / "tagger", "--out", tmp_path / "hf")
    assert code == 0 and "BertForTokenClassification" in text and "crf.safetensors" in text, text
    ours, exported = (run("eval", "--ckpt", p, "--data", data)[1] for p in (tmp_path / "tagger", tmp_path / "hf"))
    def same(report):                                          # all but the header (paths) and the timing
        return [line for line in report.splitlines()[1:] if not line.startswith("time")]
    assert "F1" in ours and same(ours) == same(exported)
    a, b = restore_model(tmp_path / "tagger").model, restore_model(tmp_path / "hf").model
    assert b.use_crf and b.crf.scheme == a.crf.scheme
    sa, sb = a.state_dict(), b.state_dict()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa if not k.startswith("backbone.mlm."))


def test_a_lora_run_exports_with_its_adapters_merged(runs, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": "ROMEO:\n", "response": "But soft\n"}) + "\n" for _ in range(8)))
    code, text = run("finetune", "--ckpt", runs / "lm", "--data", pairs, "--task", "lm", "--iters", "2",
                     "--eval-interval", "2", "--lr", "1e-2", "--lora-r", "2", "--out", tmp_path / "ft")
    assert code == 0, text
    code, text = run("export", "--ckpt", tmp_path / "ft", "--out", tmp_path / "hf")
    assert code == 0 and "GPT2LMHeadModel" in text, text
    ours, merged = restore_model(tmp_path / "ft"), restore_model(tmp_path / "hf")
    idx = np.array([ours.tokenizer.encode("ROMEO:\nBut")])
    assert np.abs(ours.model(idx)[0].numpy() - merged.model(idx)[0].numpy()).max() <= 1e-5
    base = restore_model(runs / "lm").model(idx)[0].numpy()
    assert np.abs(ours.model(idx)[0].numpy() - base).max() > 1e-3          # the adapters did change the model
