"""LoRA on every fine-tuning task and backbone: BERT's Hugging Face layer names, only the adapters and
the new head train, adapters of BERT and Hugging Face bases on disk (saved alone, loaded onto their
base, refusing another one), and a base that moved or changed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy as st

import tinyllm
from tinyllm.compress.adapter import (ADAPTER_CONFIG, AdapterError, add_lora, base_files, base_sha256,
                                      load_adapter, lora_settings)
from tinyllm.models import BERT, GPT, BertConfig, GPTConfig, SequenceClassifier
from tinyllm.models.qa import SpanExtractor
from tinyllm.models.tagging import TokenClassifier
from tinyllm.nn.lora import LoRALinear, apply_lora, hf_bert_name, is_lora_parameter, lora_layers
from tinyllm.optim import configure_adamw
from tinyllm.train.finetune import finetune

CFG = dict(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=16)
RNG = np.random.default_rng(0)
IDX = RNG.integers(1, 23, (3, 8))


# ----------------------------------------------------------------------------- BERT's names

def test_bert_hugging_face_names_pick_the_layers_peft_would() -> None:
    assert hf_bert_name("h.3.mlp.c_fc") == "encoder.layer.3.intermediate.dense"
    assert hf_bert_name("backbone.h.0.attn.c_proj") == "encoder.layer.0.attention.output.dense"
    assert hf_bert_name("h.1.mlp.c_proj") == "encoder.layer.1.output.dense"
    assert hf_bert_name("mlm.dense") is None and hf_bert_name("xh.0.mlp.c_fc") is None

    def adapted(targets: str) -> list[str]:
        return apply_lora(BERT(BertConfig(**CFG)), targets, r=2, bert_names=True)

    assert adapted("attention.output.dense") == ["h.0.attn.c_proj", "h.1.attn.c_proj"]
    assert adapted("intermediate.dense") == ["h.0.mlp.c_fc", "h.1.mlp.c_fc"]
    assert adapted("output.dense") == ["h.0.attn.c_proj", "h.0.mlp.c_proj", "h.1.attn.c_proj", "h.1.mlp.c_proj"]
    everything = adapted("query,key,value,attention.output.dense,intermediate.dense,output.dense")
    assert everything == [f"h.{i}.{n}" for i in (0, 1) for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc",
                                                                  "mlp.c_proj")]
    bert = BERT(BertConfig(**CFG))
    apply_lora(bert, "query,key,value", r=2)
    assert bert.h[0].attn.c_attn.slices == (0, 1, 2)
    with pytest.raises(ValueError, match="matches no Linear.*attention.output.dense"):
        adapted("attention.self.dense")
    with pytest.raises(ValueError, match="matches no Linear"):                   # a GPT has no such names
        add_lora(GPT(GPTConfig(**CFG)), lora_settings(2, targets="intermediate.dense"))
    assert len(add_lora(BERT(BertConfig(**CFG)), lora_settings(2, targets="intermediate.dense"))) == 2
    assert "mlm.dense" in add_lora(BERT(BertConfig(**CFG)), lora_settings(2, targets="dense"))
    assert not any(n.startswith("mlm.") for n in add_lora(SequenceClassifier(BERT(BertConfig(**CFG)), 2),
                                                          lora_settings(2, targets="dense")))     # unused there


# ----------------------------------------------------------------------------- only adapters and head train

def _bert() -> BERT:
    return BERT(BertConfig(**CFG))


TASKS = {   # name: (model, head parameter prefixes, a loss of one batch)
    "lm": (lambda: GPT(GPTConfig(**CFG)), (), lambda m: m(IDX[:, :-1], IDX[:, 1:])[1]),
    "classify": (lambda: SequenceClassifier(_bert(), 3, "pooler"), ("pooler.", "classifier."),
                 lambda m: m(IDX, np.array([0, 1, 2]))[1]),
    "tag": (lambda: TokenClassifier(_bert(), 3), ("classifier.",),
            lambda m: m(IDX, RNG.integers(0, 3, IDX.shape))[1]),
    "tag-crf": (lambda: TokenClassifier(_bert(), 3, crf=True), ("classifier.", "crf."),
                lambda m: m(IDX, np.where(np.arange(8) % 2 == 0, RNG.integers(0, 3, IDX.shape), -100))[1]),
    "qa": (lambda: SpanExtractor(GPT(GPTConfig(**CFG))), ("qa_outputs.",),
           lambda m: m(IDX, np.array([1, 2, 3]), np.array([2, 4, 3]))[1]),
}


@pytest.mark.parametrize("task", list(TASKS))
def test_only_the_adapters_and_the_new_head_get_gradients_and_optimizer_state(task: str) -> None:
    make, head, loss_of = TASKS[task]
    model = make()
    bert = isinstance(getattr(model, "backbone", model), BERT)
    add_lora(model, lora_settings(2, 4.0, 0.0, "query,value,dense" if bert else "q,v,c_proj"))
    for _, layer in lora_layers(model):
        layer.lora_B.data[...] = RNG.normal(0, 0.3, layer.lora_B.shape)
    names = [n for n, _ in model.named_parameters()]
    want = {n for n in names if is_lora_parameter(n) or n.startswith(head)}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == want
    assert any(n.startswith(head) for n in want) == bool(head) and any(is_lora_parameter(n) for n in want)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    opt = configure_adamw(model, lr=1e-2, weight_decay=0.1)
    assert {id(p) for g in opt.param_groups for p in g["params"]} == \
        {id(p) for n, p in model.named_parameters() if n in want}
    loss_of(model).backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == want
    opt.step()
    state = opt.state_dict()
    held = sum(int(np.prod(np.shape(a))) for a in _arrays(state))
    assert 0 < held <= 3 * sum(p.size for n, p in model.named_parameters() if n in want)   # m, v (+ a step)
    for n, p in model.named_parameters():
        assert np.array_equal(p.data, before[n]) != (n in want), n


def _arrays(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _arrays(v)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            yield from _arrays(v)
    elif hasattr(tree, "shape"):
        yield tree


# ----------------------------------------------------------------------------- adapters of BERT and HF bases

WORDS = "first citizen before we proceed any further hear me speak all resolved rather to die".split()
TAGGED = "First B-PER\nCitizen I-PER\nspeak O\n\nall B-PER\nspeak O\n\nhear O\nme O\n\nthe O\nfirst B-PER\n"


def _hf_bert(path: Path) -> Path:
    from tinyllm.models.hf_bert import save_bert
    from tinyllm.models.hf_wordpiece import load_wordpiece
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = load_wordpiece(path)
    (path / "vocab.txt").unlink()
    tinyllm.manual_seed(0)
    save_bert(BERT(BertConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16,
                              exact_gelu=True)), path, tokenizer=tok)
    return path


def _hf_gpt2(path: Path) -> Path:
    from tinyllm.data import BPETokenizer
    from tinyllm.models.hf import save_pretrained
    tok = BPETokenizer.train([" ".join(WORDS)] * 5, vocab_size=280)
    tinyllm.manual_seed(0)
    save_pretrained(GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=24, n_layer=1, n_head=2, n_embd=16)),
                    path, tokenizer=tok)
    return path


def _bert_run(path: Path) -> Path:
    """A tinyllm BERT pre-trained for two steps (``tinyllm train --model bert``)."""
    from click.testing import CliRunner
    from tinyllm.cli import cli
    corpus = path.parent / "corpus.txt"
    corpus.write_text((TAGGED + " ".join(WORDS) + "\n") * 10)
    args = ["train", "--data", corpus, "--out", path, "--model", "bert", "--n-layer", "1", "--n-head", "2",
            "--n-embd", "16", "--block-size", "48", "--batch-size", "4", "--iters", "2", "--eval-interval", "2",
            "--eval-iters", "1", "--sample-tokens", "0", "--warmup", "1"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return path


BASES = {"bert-run": _bert_run, "hf-bert": _hf_bert, "hf-gpt2": _hf_gpt2}
SETTINGS = {"iters": 2, "eval_interval": 2, "eval_iters": 1, "lr": 1e-2}


def _tagger_run(tmp_path: Path, base: str, crf: bool = True) -> tuple[Path, Path, Path]:
    src = BASES[base](tmp_path / base)
    data = tmp_path / "ner.conll"
    data.write_text(TAGGED)
    out = tmp_path / f"{base}-tag"
    finetune(str(src), str(data), "tag", dict(SETTINGS), out=str(out), head_options={"crf": crf},
             lora=lora_settings(2, 4.0, 0.0, "q,v,c_fc" if base == "hf-gpt2" else "query,value,intermediate.dense"))
    return src, data, out


@pytest.mark.parametrize("base", list(BASES))
def test_adapter_of_a_bert_or_hf_base_saves_alone_and_loads_onto_it(tmp_path: Path, base: str) -> None:
    from tinyllm.train.restore import restore_model
    src, _, out = _tagger_run(tmp_path, base)
    cfg = json.loads((out / "adapter" / ADAPTER_CONFIG).read_text())
    assert cfg["base"]["path"] == str(src.resolve() / ("best" if base == "bert-run" else ""))
    assert cfg["base"]["weights_sha256"] == base_sha256(src)
    names = set(st.load_file(str(out / "adapter" / "adapter.safetensors")))
    assert names and all(is_lora_parameter(n) or n.startswith(("classifier.", "crf.")) for n in names)
    run = restore_model(out)                                          # the run's own, whole checkpoint
    idx = np.array([[2, 5, 6, 7, 3]]) if base != "hf-gpt2" else np.array([[5, 6, 7, 8, 9]])
    want = run.model(idx)[0].data
    for model in (load_adapter(out / "adapter", src), load_adapter(out / "adapter", str(src))):
        assert isinstance(model.backbone.h[0].attn.c_attn, LoRALinear)
        np.testing.assert_allclose(model(idx)[0].data, want, rtol=1e-5, atol=1e-6)
    other = tmp_path / "other"
    other.mkdir()
    data = tmp_path / "ner.conll"
    finetune(str(src), str(data), "tag", dict(SETTINGS), out=str(other / "run"), head_options={"crf": True})
    with pytest.raises(AdapterError, match="SHA-256"):
        load_adapter(out / "adapter", other / "run")


def test_a_moved_or_changed_hf_base_is_reported_and_the_run_still_works(tmp_path: Path) -> None:
    from tinyllm.train.restore import restore_model
    src, data, out = _tagger_run(tmp_path, "hf-bert", crf=False)
    task = restore_model(out).checkpoint.config["task"]
    assert task["source_path"] == str(src.resolve())
    moved = tmp_path / "moved"
    shutil.move(str(src), str(moved))
    text = _info(out)                                                 # names the base, does not open it
    assert str(src.resolve()) in text and task["source_weights_sha256"][:12] in text
    assert load_adapter(out / "adapter", moved) is not None           # its new place, by SHA-256
    weights = moved / "model.safetensors"
    tensors = st.load_file(str(weights))
    tensors["bert.embeddings.LayerNorm.bias"] = tensors["bert.embeddings.LayerNorm.bias"] + 1.0
    st.save_file(tensors, str(weights))
    with pytest.raises(AdapterError, match="SHA-256"):
        load_adapter(out / "adapter", moved)
    assert restore_model(out).model is not None                       # the run holds the full weights


def _info(run: Path) -> str:
    from click.testing import CliRunner
    from tinyllm.cli import cli
    result = CliRunner().invoke(cli, ["info", "--ckpt", str(run)])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_lora_tag_run_resumes_with_its_adapters(tmp_path: Path) -> None:
    _, data, out = _tagger_run(tmp_path, "hf-bert")
    result = finetune(None, str(data), "tag", {"iters": 3}, out=str(out), resume=True)
    assert result.iteration == 3
    assert (out / "adapter" / "adapter.safetensors").is_file() and load_adapter(out / "adapter", tmp_path / "hf-bert")


def test_a_sharded_hf_base_hashes_the_index_and_every_shard(tmp_path: Path) -> None:
    src = _hf_bert(tmp_path / "hf")
    tensors = st.load_file(str(src / "model.safetensors"))
    names = sorted(tensors)
    parts = {"model-00001-of-00002.safetensors": names[:5], "model-00002-of-00002.safetensors": names[5:]}
    for file, part in parts.items():
        st.save_file({n: tensors[n] for n in part}, str(src / file))
    (src / "model.safetensors").unlink()
    index = {"metadata": {}, "weight_map": {n: f for f, part in parts.items() for n in part}}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    assert [p.name for p in base_files(src)] == ["model.safetensors.index.json", *parts]
    digest = base_sha256(src)
    data = tmp_path / "ner.conll"
    data.write_text(TAGGED)
    out = tmp_path / "tag"
    finetune(str(src), str(data), "tag", dict(SETTINGS), out=str(out), lora=lora_settings(2, 4.0, 0.0, "query"))
    assert json.loads((out / "adapter" / ADAPTER_CONFIG).read_text())["base"]["weights_sha256"] == digest
    assert load_adapter(out / "adapter", src) is not None
    second = src / "model-00002-of-00002.safetensors"
    t = st.load_file(str(second))
    st.save_file({n: a + 1.0 for n, a in t.items()}, str(second))
    assert base_sha256(src) != digest
    with pytest.raises(AdapterError, match="SHA-256"):
        load_adapter(out / "adapter", src)
