"""Quantize, prune and LoRA beyond a plain GPT run, from the command line and the Python API: a tinyllm
BERT run, Hugging Face BERT (with and without a head) and GPT-2 directories, and fine-tuned
classifier, tagger (linear and CRF) and span-extractor runs; ``tinyllm eval`` and ``restore_model``
take every result as they take the float model."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinyllm.cli import cli
from tinyllm.compress.prune import MASK, masked_layers
from tinyllm.compress.quantize import QuantizedLinear
from tinyllm.models import SequenceClassifier
from tinyllm.models.qa import SpanExtractor
from tinyllm.models.tagging import TokenClassifier
from tinyllm.train.restore import restore_model
from test_lora_tasks import TAGGED, _bert_run, _hf_bert, _hf_gpt2

CTX = "first citizen before we proceed any further hear me speak all resolved rather to die "
QA = [{"context": CTX * 2, "question": q, "answer": a, "answer_start": (CTX * 2).index(a)}
      for q, a in [("who speaks", "first citizen"), ("what", "hear me speak"), ("all", "all resolved"),
                   ("die", "rather to die")]]
CLASSES = [("first citizen", "a"), ("hear me speak", "b")] * 4
TASKS = {"classify": ("cls.jsonl", []), "tag": ("ner.conll", []), "tag-crf": ("ner.conll", ["--crf"]),
         "qa": ("qa.jsonl", ["--stride", "8"])}
SHORT = ["--iters", "2", "--eval-interval", "2", "--eval-iters", "1", "--lr", "1e-2"]
# what `tinyllm eval` prints for each kind of model
REPORT = {"classify": r"accuracy\s+[\d.]+%", "tag": r"entities\s+precision", "tag-crf": r"entities\s+precision",
          "qa": r"exact match", "bert": r"perplexity\s+[\d.]+", "gpt": r"perplexity\s+[\d.]+"}


def run(*args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.output and result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def where(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three bases and the task data, made once."""
    root = tmp_path_factory.mktemp("bases")
    _bert_run(root / "bert-run")
    _hf_bert(root / "hf-bert")
    _hf_gpt2(root / "hf-gpt2")
    (root / "ner.conll").write_text(TAGGED)
    (root / "cls.jsonl").write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in CLASSES))
    (root / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in QA))
    (root / "corpus.txt").write_text(TAGGED * 4)
    return root


def _figure(text: str, pattern: str) -> str:
    m = re.search(pattern, text)
    assert m, text
    return m.group(0)


def _check_compressed(src: Path, data: Path, kind: str, out: Path) -> None:
    """quantize and prune ``src`` by the CLI; eval reads both; restore_model gives close outputs."""
    run("quantize", "--ckpt", src, "--out", out / "q")
    run("prune", "--ckpt", src, "--out", out / "p", "--sparsity", "0.3")
    float_report = run("eval", "--ckpt", src, "--data", data)
    for name in ("q", "p"):
        _figure(run("eval", "--ckpt", out / name, "--data", data), REPORT[kind])
    _figure(float_report, REPORT[kind])
    ref, q, p = (restore_model(x) for x in (src, out / "q", out / "p"))
    assert type(q.model) is type(ref.model) and q.tokenizer.to_json() == ref.tokenizer.to_json()
    backbone = getattr(q.model, "backbone", q.model)
    assert isinstance(backbone.h[0].attn.c_attn, QuantizedLinear)
    assert masked_layers(p.model) and all(getattr(m, MASK) is not None for _, m in masked_layers(p.model))
    idx = np.array([[2, 5, 6, 7, 8, 3]])
    want, got = _first(ref.model(idx)[0]), _first(q.model(idx)[0])
    assert np.abs(got - want).max() <= 0.05 * max(1.0, np.abs(want).max())


def _first(out):
    return (out[0] if isinstance(out, tuple) else out).data


@pytest.mark.parametrize("base,kind", [("bert-run", "bert"), ("hf-bert", "bert"), ("hf-gpt2", "gpt")])
def test_quantize_and_prune_a_pretrained_base(where: Path, tmp_path: Path, base: str, kind: str) -> None:
    _check_compressed(where / base, where / "corpus.txt", kind, tmp_path)


# every task on every base would be 12 runs; each base and each task at least once, both BERTs with heads
CASES = [("bert-run", "classify"), ("bert-run", "tag-crf"), ("hf-bert", "tag"), ("hf-bert", "qa"),
         ("hf-gpt2", "qa"), ("hf-gpt2", "tag-crf")]


@pytest.mark.parametrize("base,task", CASES)
def test_quantize_and_prune_a_finetuned_head(where: Path, tmp_path: Path, base: str, task: str) -> None:
    data, extra = TASKS[task]
    run("finetune", "--ckpt", where / base, "--data", where / data, "--task", task.split("-")[0], *extra, *SHORT,
        "--out", tmp_path / "ft")
    _check_compressed(tmp_path / "ft", where / data, task, tmp_path)


@pytest.mark.parametrize("head,task", [(lambda b: SequenceClassifier(b, 2, "pooler"), "classify"),
                                       (lambda b: TokenClassifier(b, 3), "tag"), (SpanExtractor, "qa")])
def test_quantize_and_prune_a_hf_bert_with_its_head(where: Path, tmp_path: Path, head, task: str) -> None:
    from tinyllm.models.hf_bert import load_bert, save_bert
    bert, tok, _ = load_bert(where / "hf-bert")
    labels = {"classify": ["a", "b"], "tag": ["O", "B-PER", "I-PER"]}.get(task)
    save_bert(head(bert), tmp_path / "hf", tokenizer=tok, labels=labels)
    _check_compressed(tmp_path / "hf", where / TASKS[task][0], task, tmp_path)


LORA = {"classify": "query,value,dense", "tag": "query,key,value,attention.output.dense,intermediate.dense",
        "tag-crf": "value,output.dense", "qa": "query,value"}


@pytest.mark.parametrize("base,task", [("hf-bert", "classify"), ("bert-run", "tag"), ("hf-bert", "tag-crf"),
                                       ("bert-run", "qa"), ("hf-gpt2", "classify"), ("hf-gpt2", "lm")])
def test_cli_lora_finetune_on_each_task_then_info_eval_and_compression(where: Path, tmp_path: Path, base: str,
                                                                       task: str) -> None:
    if task == "lm":
        data, extra = where / "pairs.jsonl", []
        data.write_text("".join(json.dumps({"prompt": "first citizen", "response": " hear me"}) + "\n"
                                for _ in range(6)))
    else:
        data, extra = where / TASKS[task][0], TASKS[task][1]
    targets = LORA.get(task, "query,value") if base != "hf-gpt2" else "q,v,c_proj"
    text = run("finetune", "--ckpt", where / base, "--data", data, "--task", task.split("-")[0], *extra, *SHORT,
               "--out", tmp_path / "ft", "--lora-r", "2", "--lora-targets", targets)
    trained = int(_figure(text, r"([\d,]+) of [\d,]+ parameters trained").split()[0].replace(",", ""))
    info = run("info", "--ckpt", tmp_path / "ft")
    assert f"lora         r=2 alpha=4 on {targets}: {trained:,} of" in info, info
    assert f"{trained:,} trainable" in info and "lora base" in info, info
    facts = json.loads(run("info", "--ckpt", tmp_path / "ft", "--json"))
    assert facts["trainable_parameters"] == trained < facts["parameters"] / 2
    assert len(facts["lora"]["base_sha256"]) == 64
    if task == "lm":                                                  # a LoRA run generates like any GPT run
        assert "first citizen" in run("generate", "--ckpt", tmp_path / "ft", "--prompt", "first citizen",
                                      "--max-new-tokens", "3", "--greedy")
        return
    _check_compressed(tmp_path / "ft", data, task, tmp_path)          # adapters merged, then int8 / pruned


def test_what_cannot_be_done_is_one_line(where: Path, tmp_path: Path) -> None:
    def fails(*args) -> str:
        result = CliRunner().invoke(cli, [str(a) for a in args])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        return lines[0]

    assert "matches no Linear" in fails("finetune", "--ckpt", where / "hf-gpt2", "--data", where / "cls.jsonl",
                                        "--task", "classify", "--out", tmp_path / "x", "--lora-r", "2",
                                        "--lora-targets", "intermediate.dense")
    assert "GPT" in fails("finetune", "--ckpt", where / "hf-bert", "--data", where / "qa.jsonl", "--task", "lm",
                          "--out", tmp_path / "y", "--lora-r", "2")
    run("quantize", "--ckpt", where / "hf-bert", "--out", tmp_path / "q")
    assert "int8-quantized" in fails("finetune", "--ckpt", tmp_path / "q", "--data", where / "ner.conll",
                                     "--task", "tag", "--out", tmp_path / "z", "--lora-r", "2")
    assert "int8-quantized already" in fails("prune", "--ckpt", tmp_path / "q", "--out", tmp_path / "qp")
